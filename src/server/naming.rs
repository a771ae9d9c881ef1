//! The origin names the user on every authenticated answer
//! (`Outpost-User: <id>`), so the worker never has to guess whose answer it
//! holds; and a request that says whose it is (`Outpost-Expect-User: <id>`,
//! sent by the worker with every replay and upload call) is refused with
//! `412 user_mismatch` when the session is someone else's, before anything
//! is applied. That is how a write queued by one user can never land in the
//! account of the next one to log in on the device, even when the worker did
//! not see that login (an SSO redirect, a login before it took control).

use axum::extract::{Request, State};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{AppError, AppState};
use crate::auth;

pub const USER: &str = "outpost-user";
pub const EXPECT_USER: &str = "outpost-expect-user";

pub(crate) fn session_user(req: &Request, state: &AppState) -> Option<String> {
    let value = req.headers().get_all(COOKIE).iter().filter_map(|h| h.to_str().ok()).find_map(auth::find_cookie)?;
    state.api.session_key.verify(value, crate::db::now_ms()).ok()
}

pub async fn name_user(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let user = session_user(&req, &state);
    let expected = req.headers().get(EXPECT_USER).and_then(|v| v.to_str().ok()).map(str::to_string);
    if let (Some(expected), Some(actual)) = (&expected, &user) {
        if expected != actual {
            let mut refused = AppError::PreconditionFailed {
                code: "user_mismatch",
                message: "This request was made for another user than the one logged in now; it was not applied. \
                          It waits for its user to log in again."
                    .into(),
            }
            .into_response();
            if let Ok(v) = HeaderValue::from_str(actual) {
                refused.headers_mut().insert(USER, v);
            }
            return refused;
        }
    }
    let mut res = next.run(req).await;
    // A login or logout answer changes the session: the cookie it sets is
    // the truth, not the one the request came with.
    // A 401 (a revoked or unknown session) names nobody.
    let named = !res.headers().contains_key(SET_COOKIE) && res.status() != axum::http::StatusCode::UNAUTHORIZED;
    if let (Some(user), true) = (user, named) {
        if let Ok(v) = HeaderValue::from_str(&user) {
            res.headers_mut().insert(USER, v);
        }
    }
    res
}
