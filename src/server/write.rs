//! The frame every write runs in: Idempotency-Key claim, one transaction,
//! the response recorded with the write.

use std::future::Future;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, OriginalUri, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use super::extract::{JsonBody, User};
use super::idempotency::{self, Claim};
use super::{AppError, AppState};
use crate::db::now_ms;

/// A write handler's request: the logged-in user, the body (`B` is a
/// [`JsonBody`] or, for a body kept as sent, [`Bytes`]), and what [`run`]
/// claims the Idempotency-Key with.
///
/// The user is checked before the body is read, as separate extractors in
/// that order would: a logged-out client gets 401 whatever it sent.
pub struct Write<B> {
    pub user: User,
    pub body: B,
    pub request: WriteRequest,
}

/// What a write's Idempotency-Key claim needs to know about its request.
pub struct WriteRequest {
    user_id: String,
    headers: HeaderMap,
    /// Method, path (as the client sent it, before `/api` was stripped by
    /// nesting) and body.
    fingerprint: String,
}

impl WriteRequest {
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }
}

/// A body whose bytes, as received, go into the request's fingerprint.
pub trait RawBody {
    fn raw(&self) -> &[u8];
}

impl<T> RawBody for JsonBody<T> {
    fn raw(&self) -> &[u8] {
        &self.raw
    }
}

impl RawBody for Bytes {
    fn raw(&self) -> &[u8] {
        self
    }
}

impl<B> FromRequest<AppState> for Write<B>
where
    B: RawBody + FromRequest<AppState>,
    B::Rejection: IntoResponse,
{
    // A `Response`, so that each part keeps its own rejection: the API's
    // JSON errors, and axum's own for a plain `Bytes` body.
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let user = User::from_request_parts(&mut parts, state).await.map_err(IntoResponse::into_response)?;
        let Ok(OriginalUri(uri)) = OriginalUri::from_request_parts(&mut parts, state).await;
        let method = parts.method.clone();
        let headers = parts.headers.clone();
        let body =
            B::from_request(Request::from_parts(parts, body), state).await.map_err(IntoResponse::into_response)?;
        let fingerprint = idempotency::fingerprint(method.as_str(), uri.path(), body.raw());
        let request = WriteRequest { user_id: user.id.clone(), headers, fingerprint };
        Ok(Write { user, body, request })
    }
}

pub use crate::db::Tx;

/// Runs `work` in a transaction under the request's Idempotency-Key. `work`
/// gets the transaction and the request time, and hands the transaction
/// back with the response so the key is completed before the commit.
pub async fn run<F, Fut>(state: &AppState, req: WriteRequest, work: F) -> Result<Response, AppError>
where
    F: FnOnce(Tx, i64) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(Tx, StatusCode, Value), AppError>> + Send + 'static,
{
    run_prepared(state, req, |_| async { Ok(()) }, move |tx, now, ()| work(tx, now), |()| async {}).await
}

/// [`run`], with a step before the transaction: `before` runs once the key
/// is claimed (never for a replay), outside the transaction and outside
/// SQLite's writer turn, and what it makes is handed to `work`. Calls to the
/// object store go there: a store that stalls must not hold a transaction
/// open, nor (on SQLite) every other write behind it. When anything after
/// `before` fails, `undo` gets a copy of what it made (to give back what
/// the write did not record).
///
/// The claim, the write and its completion run in a task of their own: a
/// client that hangs up (a service worker killed mid-request) must not
/// cancel a write halfway and leave its key claimed but never completed.
/// The write finishes, and the client's retry gets the stored response.
pub async fn run_prepared<B, BFut, P, F, Fut, U, UFut>(
    state: &AppState,
    req: WriteRequest,
    before: B,
    work: F,
    undo: U,
) -> Result<Response, AppError>
where
    B: FnOnce(i64) -> BFut + Send + 'static,
    BFut: Future<Output = Result<P, AppError>> + Send + 'static,
    P: Clone + Send + 'static,
    U: FnOnce(P) -> UFut + Send + 'static,
    UFut: Future<Output = ()> + Send + 'static,
    F: FnOnce(Tx, i64, P) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(Tx, StatusCode, Value), AppError>> + Send + 'static,
{
    let now = now_ms();
    let key = idempotency::key_from(&req.headers)?;
    let WriteRequest { user_id, fingerprint: fp, .. } = req;
    let state = state.clone();
    let in_flight = state.api.writes.start();
    let task = tokio::spawn(async move {
        let _in_flight = in_flight;
        let db = &state.api.db;
        let claim = idempotency::claim(db, &user_id, key, &fp, now, state.api.settings.idempotency_ttl_ms).await?;
        if let Claim::Replay(status, body) = claim {
            return Ok((status, body, true));
        }
        let prepared = match before(now).await {
            Ok(p) => p,
            Err(e) => {
                claim.release(db).await;
                return Err(e);
            }
        };
        let kept = prepared.clone();
        let result = async {
            let _turn = db.writer_turn().await.map_err(|_| AppError::writer_busy())?;
            let tx = db.begin_write().await?;
            let (mut tx, status, body) = work(tx, now, prepared).await?;
            claim.complete(&mut tx, status, &body).await?;
            tx.commit().await?;
            Ok::<_, AppError>((status, body))
        }
        .await;
        match result {
            Ok((status, body)) => Ok((status, body, false)),
            Err(e) => {
                claim.release(db).await;
                undo(kept).await;
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
