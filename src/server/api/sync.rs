//! The metadata-first login sync: everything a client needs to draw its
//! lists, in one round trip, without any blob.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{assets, chat, projects};
use crate::server::extract::User;
use crate::server::{AppError, AppState};

/// Sessions sent by `sync/init`: the most recently updated ones.
pub const RECENT_SESSIONS: i64 = 50;

pub fn router() -> Router<AppState> {
    Router::new().route("/sync/init", get(init))
}

async fn init(State(state): State<AppState>, user: User) -> Result<Json<Value>, AppError> {
    let db = &state.api.db;
    let name: Option<(String,)> =
        sqlx::query_as("SELECT name FROM users WHERE id = $1").bind(&user.id).fetch_optional(&db.pool).await?;
    let (name,) = name.ok_or(AppError::Unauthenticated)?;
    let sessions = chat::sessions_of(db, &user.id, RECENT_SESSIONS).await?;
    let projects = projects::projects_of(db, &user.id).await?;
    let assets = assets::assets_of(db, &user.id).await?;
    Ok(Json(json!({
        "user": { "id": user.id, "name": name },
        "sessions": sessions,
        "projects": projects,
        "assets": assets,
    })))
}
