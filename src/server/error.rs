//! The one error type of the API. Every variant answers
//! `{"error": {"code", "message"}}`; internal details are logged, never
//! sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 404: no such route or resource (or one the caller may not see).
    #[error("not found")]
    NotFound,
    /// 500: something failed on our side; the cause goes to the log only.
    #[error("internal error: {0}")]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            AppError::NotFound => (StatusCode::NOT_FOUND, "not_found", "No such resource.".into()),
            AppError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "The server failed to handle this request; try again later.".into(),
            ),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let AppError::Internal(e) = &self {
            tracing::error!(error = %format!("{e:#}"), "internal error");
        }
        let (status, code, message) = self.parts();
        let body = serde_json::json!({ "error": { "code": code, "message": message } });
        (status, Json(body)).into_response()
    }
}
