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
///
/// The claim, the write and its completion run in a task of their own: a
/// client that hangs up (a service worker killed mid-request) must not
/// cancel a write halfway and leave its key claimed but never completed.
/// The write finishes, and the client's retry gets the stored response.
pub async fn run<F, Fut>(state: &AppState, req: WriteRequest<'_>, work: F) -> Result<Response, AppError>
where
    F: FnOnce(Tx, i64) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(Tx, StatusCode, Value), AppError>> + Send + 'static,
{
    let now = now_ms();
    let key = idempotency::key_from(req.headers)?;
    let fp = idempotency::fingerprint(req.method.as_str(), req.uri.path(), req.body);
    let user_id = req.user_id.to_string();
    let state = state.clone();
    let task = tokio::spawn(async move {
        let db = &state.api.db;
        let claim = idempotency::claim(db, &user_id, key, &fp, now, state.api.settings.idempotency_ttl_ms).await?;
        if let Claim::Replay(status, body) = claim {
            return Ok((status, body, true));
        }
        let result = async {
            let _turn = db.writer_turn().await;
            let tx = db.begin_write().await?;
            let (mut tx, status, body) = work(tx, now).await?;
            claim.complete(&mut tx, status, &body).await?;
            tx.commit().await?;
            Ok::<_, AppError>((status, body))
        }
        .await;
        match result {
            Ok((status, body)) => Ok((status, body, false)),
            Err(e) => {
                claim.release(db).await;
                Err(e)
            }
        }
    });
    let (status, body, replayed) = task.await.map_err(|e| AppError::Internal(anyhow::anyhow!("write task: {e}")))??;
    let mut response = (status, Json(body)).into_response();
    if replayed {
        response.headers_mut().insert("idempotent-replayed", axum::http::HeaderValue::from_static("true"));
    }
    Ok(response)
}
