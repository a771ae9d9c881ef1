//! Project metadata.

use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{check_text, insert_conflict};
use crate::server::extract::{new_id, parse_id, JsonBody, User};
use crate::server::write::{self, Tx, WriteRequest};
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
    Ok(sqlx::query_as(
        "SELECT id, name, created_at, updated_at FROM projects WHERE user_id = $1 ORDER BY updated_at DESC, id DESC",
    )
    .bind(user_id)
    .fetch_all(&db.pool)
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

async fn create(
    State(state): State<AppState>,
    user: User,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: JsonBody<NewProject>,
) -> Result<Response, AppError> {
    let NewProject { id, name } = body.value;
    check_text("name", &name, 1, 200)?;
    let id = match id {
        Some(id) => parse_id(&id)?,
        None => new_id(),
    };
    let uid = user.id.clone();
    let req = WriteRequest { user_id: &user.id, method: &method, uri: &uri, headers: &headers, body: &body.raw };
    write::run(&state, req, move |mut tx: Tx, now| async move {
        sqlx::query("INSERT INTO projects (id, user_id, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&id)
            .bind(&uid)
            .bind(&name)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| insert_conflict(e, "project", &id))?;
        let project = Project { id, name, created_at: now, updated_at: now };
        Ok((tx, StatusCode::CREATED, serde_json::to_value(project).unwrap()))
    })
    .await
}
