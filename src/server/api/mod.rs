//! The JSON API under `/api` (see docs/contract.md §3). One module per
//! resource, each with its own `router()`.

mod assets;
mod auth;
mod chat;
mod projects;
pub(crate) mod sync;

use axum::Router;

use super::{AppError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(assets::router())
        .merge(auth::router())
        .merge(chat::router())
        .merge(projects::router())
        .merge(sync::router())
        .fallback(|| async { AppError::NotFound })
}

/// Checks a free-text field's length in characters.
fn check_text(field: &'static str, value: &str, min: usize, max: usize) -> Result<(), AppError> {
    let n = value.chars().count();
    if n < min || n > max {
        return Err(AppError::bad_request(
            "invalid_field",
            format!("{field} must be {min} to {max} characters (got {n})"),
        ));
    }
    Ok(())
}

/// A failed insert of a client-chosen id: a duplicate is the client's 409,
/// anything else is ours.
fn insert_conflict(e: sqlx::Error, what: &str, id: &str) -> AppError {
    if crate::db::is_unique_violation(&e) {
        AppError::conflict("already_exists", format!("a {what} with id {id} already exists"))
    } else {
        e.into()
    }
}
