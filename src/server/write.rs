//! The frame every write runs in: Idempotency-Key claim, one transaction,
//! the response recorded with the write.

use std::future::Future;

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;
use sqlx::{Any, Transaction};

use super::idempotency::{self, Claim};
use super::{AppError, AppState};
use crate::db::now_ms;

/// What a write needs to know about its request.
pub struct WriteRequest<'a> {
    pub user_id: &'a str,
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

pub type Tx = Transaction<'static, Any>;

/// Runs `work` in a transaction under the request's Idempotency-Key. `work`
/// gets the transaction and the request time, and hands the transaction
/// back with the response so the key is completed before the commit.
pub async fn run<F, Fut>(state: &AppState, req: WriteRequest<'_>, work: F) -> Result<Response, AppError>
where
    F: FnOnce(Tx, i64) -> Fut,
    Fut: Future<Output = Result<(Tx, StatusCode, Value), AppError>>,
{
    let now = now_ms();
    let db = &state.api.db;
    let key = idempotency::key_from(req.headers)?;
    let fp = idempotency::fingerprint(req.method.as_str(), req.uri.path(), req.body);
    let claim = idempotency::claim(db, req.user_id, key, &fp, now, state.api.settings.idempotency_ttl_ms).await?;
    if let Claim::Replay(status, body) = claim {
        return Ok((status, [("idempotent-replayed", "true")], Json(body)).into_response());
    }
    let result = async {
        let tx = db.pool.begin().await?;
        let (mut tx, status, body) = work(tx, now).await?;
        claim.complete(&mut tx, status, &body).await?;
        tx.commit().await?;
        Ok::<_, AppError>((status, body))
    }
    .await;
    match result {
        Ok((status, body)) => Ok((status, Json(body)).into_response()),
        Err(e) => {
            claim.release(db).await;
            Err(e)
        }
    }
}
