//! Project metadata.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{check_text, client_or_new_id, insert_named};
use crate::server::extract::{JsonBody, User};
use crate::server::write::{self, Tx, Write};
use crate::server::{AppError, AppState};

pub fn router() -> Router<AppState> {
    Router::new().route("/projects", get(list).post(create))
}

#[derive(Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub updated_at: i64,
}

pub async fn projects_of(db: &crate::db::Db, user_id: &str) -> Result<Vec<Project>, AppError> {
    Ok(db.fetch_all(crate::db::query_as(
        "SELECT id, name, created_at, updated_at FROM projects WHERE user_id = $1 ORDER BY updated_at DESC, id DESC",
    )
    .bind(user_id))
    .await?)
}

async fn list(State(state): State<AppState>, user: User) -> Result<Json<Vec<Project>>, AppError> {
    Ok(Json(projects_of(&state.api.db, &user.id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewProject {
    id: Option<String>,
    name: String,
}

async fn create(State(state): State<AppState>, req: Write<JsonBody<NewProject>>) -> Result<Response, AppError> {
    let NewProject { id, name } = req.body.value;
    check_text("name", &name, 1, 200)?;
    let id = client_or_new_id(id)?;
    let uid = req.user.id;
    write::run(&state, req.request, move |mut tx: Tx, now| async move {
        insert_named(&mut tx, ("projects", "name", "project"), &id, &uid, &name, now).await?;
        let project = Project { id, name, created_at: now, updated_at: now };
        Ok((tx, StatusCode::CREATED, serde_json::to_value(project).unwrap()))
    })
    .await
}
