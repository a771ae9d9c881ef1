//! The JSON API under `/api` (see docs/contract.md §3). One module per
//! resource, each with its own `router()`.

pub mod assets;
mod auth;
mod chat;
pub(crate) mod demo;
mod inbox;
mod projects;
pub(crate) mod sync;

use axum::Router;

use super::{AppError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(assets::router())
        .merge(auth::router())
        .merge(chat::router())
        .merge(inbox::router())
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

/// A client-supplied id (checked) or a new server one.
fn client_or_new_id(id: Option<String>) -> Result<String, AppError> {
    match id {
        Some(id) => crate::server::extract::parse_id(&id),
        None => Ok(crate::server::extract::new_id()),
    }
}

/// Inserts a user-owned row with one named text column (a session's
/// title, a project's name). `table` and `column` are ours, never input.
async fn insert_named(
    tx: &mut crate::server::write::Tx,
    (table, column, what): (&'static str, &'static str, &str),
    id: &str,
    user_id: &str,
    value: &str,
    now: i64,
) -> Result<(), AppError> {
    crate::db::query(&format!(
        "INSERT INTO {table} (id, user_id, {column}, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)"
    ))
    .bind(id)
    .bind(user_id)
    .bind(value)
    .bind(now)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(|e| insert_conflict(e, what, id))?;
    Ok(())
}
