//! Request extractors that fail with the API's JSON errors.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{CONTENT_TYPE, COOKIE};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::{AppError, AppState};
use crate::auth;
use crate::db::now_ms;

/// Largest JSON body accepted (1 MiB). A batch of 500 messages of 2 KB fits.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// A JSON body, parsed, with its raw bytes kept for idempotency
/// fingerprints.
pub struct JsonBody<T> {
    pub value: T,
    pub raw: Bytes,
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(AppError::UnsupportedMediaType);
        }
        let raw = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                AppError::PayloadTooLarge { limit: BODY_LIMIT }
            } else {
                AppError::bad_request("bad_body", "The request body could not be read.")
            }
        })?;
        let value = serde_json::from_slice(&raw).map_err(|e| {
            let code = if e.is_data() { "invalid_field" } else { "invalid_json" };
            AppError::bad_request(code, e.to_string())
        })?;
        Ok(JsonBody { value, raw })
    }
}

/// The logged-in user, from the signed session cookie.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
}

impl FromRequestParts<AppState> for User {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let Some(value) =
            parts.headers.get_all(COOKIE).iter().filter_map(|h| h.to_str().ok()).find_map(auth::find_cookie)
        else {
            return Err(AppError::Unauthenticated);
        };
        let id = state.api.session_key.verify(value, now_ms()).map_err(|_| AppError::Unauthenticated)?;
        // A logout revoked it (a copy of the cookie is no login), or every
        // session of the user was revoked since it was issued, or the user
        // is gone (a wiped database).
        let (token, _) = auth::revocation(value).ok_or(AppError::Unauthenticated)?;
        let issued = auth::issued_at(value).ok_or(AppError::Unauthenticated)?;
        let row: Option<(i64, i64)> = state
            .api
            .db
            .fetch_optional(
                crate::db::query_as(
                    "SELECT u.sessions_not_before, (SELECT COUNT(*) FROM revoked_sessions WHERE token = $1) \
                     FROM users u WHERE u.id = $2",
                )
                .bind(token)
                .bind(&id),
            )
            .await?;
        match row {
            Some((not_before, 0)) if issued >= not_before => {}
            _ => return Err(AppError::Unauthenticated),
        }
        Ok(User { id })
    }
}

/// An id from the path: a UUID in canonical lowercase form.
pub fn parse_id(raw: &str) -> Result<String, AppError> {
    uuid::Uuid::parse_str(raw)
        .ok()
        .filter(|u| u.hyphenated().to_string() == raw)
        .map(|_| raw.to_string())
        .ok_or_else(|| AppError::bad_request("invalid_id", format!("{raw:?} is not an id (a lowercase UUID)")))
}

/// A new server-made id; v7 so ids sort by creation time.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().hyphenated().to_string()
}
