//! The one error type of the API. Every variant answers
//! `{"error": {"code", "message"}}`; internal details are logged, never
//! sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 400: the request is malformed (bad JSON, wrong types, bad ids).
    #[error("{code}: {message}")]
    BadRequest { code: &'static str, message: String },
    /// 401: no valid session cookie.
    #[error("not logged in")]
    Unauthenticated,
    /// 403: refused whoever asks (a state-changing request from another site).
    #[error("{code}: {message}")]
    Forbidden { code: &'static str, message: String },
    /// 412: made for another user than the one logged in (`Outpost-Expect-User`).
    #[error("{code}: {message}")]
    PreconditionFailed { code: &'static str, message: String },
    /// 404: no such route or resource (or one the caller may not see).
    #[error("not found")]
    NotFound,
    /// 409: the same Idempotency-Key is still being processed, or the
    /// resource already exists.
    #[error("{code}: {message}")]
    Conflict { code: &'static str, message: String },
    /// 413: the body is larger than the documented limit.
    #[error("body too large")]
    PayloadTooLarge { limit: usize },
    /// 415: the body is not JSON.
    #[error("not JSON")]
    UnsupportedMediaType,
    /// 422: well-formed but refused (an Idempotency-Key reused with another
    /// body, an object that does not match its declaration).
    #[error("{code}: {message}")]
    Unprocessable { code: &'static str, message: String },
    /// 413: the user's storage quota would be exceeded.
    #[error("quota: {message}")]
    QuotaExceeded { message: String },
    /// 421: a `Host` this server does not serve (DNS rebinding, a wrong
    /// proxy setting).
    #[error("host not served: {host}")]
    UnknownHost { host: String },
    /// 503 with `Retry-After`: the server is up but cannot take this request
    /// now (the database writer is busy, too many requests at once, the
    /// request ran past its time budget).
    #[error("{code}: {message}")]
    Unavailable { code: &'static str, message: String, retry_after_secs: u32 },
    /// 502 (504 when it timed out): the object store did not answer as
    /// expected.
    #[error("object store: {0}")]
    Store(String),
    /// 500: something failed on our side; the cause goes to the log only.
    #[error("internal error: {0}")]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        // SQLite's busy timeout ran out ("database is locked", codes 5 and
        // 6 and their extended forms): the server is busy, not broken.
        if let sqlx::Error::Database(d) = &e {
            let busy = d.code().is_some_and(|c| c.parse::<i64>().is_ok_and(|n| n & 0xff == 5 || n & 0xff == 6));
            if busy || d.message().contains("database is locked") {
                return AppError::writer_busy();
            }
        }
        AppError::Internal(e.into())
    }
}

impl AppError {
    /// SQLite's writer was busy for longer than the write may wait.
    pub fn writer_busy() -> Self {
        AppError::Unavailable {
            code: "busy",
            message: "The database is busy with other writes; retry in a moment. Nothing was applied.".into(),
            retry_after_secs: 1,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        AppError::BadRequest { code, message: message.into() }
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        AppError::Unprocessable { code, message: message.into() }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        AppError::Conflict { code, message: message.into() }
    }

    /// Status, code and message as the client sees them.
    pub fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            AppError::BadRequest { code, message } => (StatusCode::BAD_REQUEST, code, message.clone()),
            AppError::Unauthenticated => {
                (StatusCode::UNAUTHORIZED, "unauthenticated", "Log in first (POST /api/auth/login).".into())
            }
            AppError::Forbidden { code, message } => (StatusCode::FORBIDDEN, code, message.clone()),
            AppError::PreconditionFailed { code, message } => (StatusCode::PRECONDITION_FAILED, code, message.clone()),
            AppError::NotFound => (StatusCode::NOT_FOUND, "not_found", "No such resource.".into()),
            AppError::Conflict { code, message } => (StatusCode::CONFLICT, code, message.clone()),
            AppError::PayloadTooLarge { limit } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", format!("The body is larger than {limit} bytes."))
            }
            AppError::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Send the body as JSON with Content-Type: application/json.".into(),
            ),
            AppError::Unprocessable { code, message } => (StatusCode::UNPROCESSABLE_ENTITY, code, message.clone()),
            AppError::QuotaExceeded { message } => (StatusCode::PAYLOAD_TOO_LARGE, "quota_exceeded", message.clone()),
            AppError::UnknownHost { host } => (
                StatusCode::MISDIRECTED_REQUEST,
                "unknown_host",
                format!(
                    "This server does not serve the host {host:?}. If it should, start it with --public-host {host}."
                ),
            ),
            AppError::Unavailable { code, message, .. } => (StatusCode::SERVICE_UNAVAILABLE, code, message.clone()),
            AppError::Store(detail) if detail.contains(crate::store::TIMED_OUT) => (
                StatusCode::GATEWAY_TIMEOUT,
                "store_timeout",
                "The object store did not answer in time; try again later.".into(),
            ),
            AppError::Store(_) => (
                StatusCode::BAD_GATEWAY,
                "store_unavailable",
                "The object store did not answer as expected; try again later.".into(),
            ),
            AppError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "The server failed to handle this request; try again later.".into(),
            ),
        }
    }

    /// The JSON body for this error.
    pub fn body(&self) -> serde_json::Value {
        let (_, code, message) = self.parts();
        serde_json::json!({ "error": { "code": code, "message": message } })
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match &self {
            AppError::Internal(e) => tracing::error!(error = %format!("{e:#}"), "internal error"),
            AppError::Store(e) => tracing::error!(error = %e, "object store error"),
            _ => {}
        }
        let (status, _, _) = self.parts();
        let mut res = (status, Json(self.body())).into_response();
        if let AppError::Unavailable { retry_after_secs, .. } = &self {
            res.headers_mut().insert(axum::http::header::RETRY_AFTER, (*retry_after_secs).into());
        }
        res
    }
}
