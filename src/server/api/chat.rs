//! Chat sessions and messages. Timestamps are Unix milliseconds.

use std::collections::HashSet;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{check_text, client_or_new_id, insert_named};
use crate::server::extract::{new_id, parse_id, JsonBody, User};
use crate::server::write::{self, Tx, Write};
use crate::server::{AppError, AppState};

/// Most messages one batch may carry.
pub const MAX_BATCH: usize = 500;
const ROLES: [&str; 3] = ["user", "assistant", "system"];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/chat/sessions", get(list_sessions).post(create_session))
        .route("/chat/sessions/{id}/messages", get(list_messages))
        .route("/chat/messages/batch", post(batch))
}

#[derive(Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub id: String,
    pub title: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub id: String,
    pub session_id: String,
    pub role: String,
    pub content: String,
    pub created_at: i64,
}

/// The caller's sessions, most recently updated first.
pub async fn sessions_of(db: &crate::db::Db, user_id: &str, limit: i64) -> Result<Vec<Session>, AppError> {
    Ok(db
        .fetch_all(
            crate::db::query_as(
                "SELECT id, title, created_at, updated_at FROM chat_sessions WHERE user_id = $1 \
         ORDER BY updated_at DESC, id DESC LIMIT $2",
            )
            .bind(user_id)
            .bind(limit),
        )
        .await?)
}

async fn list_sessions(State(state): State<AppState>, user: User) -> Result<Json<Vec<Session>>, AppError> {
    Ok(Json(sessions_of(&state.api.db, &user.id, i64::MAX).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSession {
    id: Option<String>,
    title: String,
}

async fn create_session(State(state): State<AppState>, req: Write<JsonBody<NewSession>>) -> Result<Response, AppError> {
    let NewSession { id, title } = req.body.value;
    check_text("title", &title, 1, 200)?;
    let id = client_or_new_id(id)?;
    let uid = req.user.id;
    write::run(&state, req.request, move |mut tx: Tx, now| async move {
        insert_named(&mut tx, ("chat_sessions", "title", "session"), &id, &uid, &title, now).await?;
        let session = Session { id, title, created_at: now, updated_at: now };
        Ok((tx, StatusCode::CREATED, serde_json::to_value(session).unwrap()))
    })
    .await
}

/// 404 unless `session_id` is one of the caller's sessions.
async fn own_session(db: &crate::db::Db, user_id: &str, session_id: &str) -> Result<(), AppError> {
    let found: Option<(String,)> = db
        .fetch_optional(
            crate::db::query_as("SELECT id FROM chat_sessions WHERE id = $1 AND user_id = $2")
                .bind(session_id)
                .bind(user_id),
        )
        .await?;
    found.map(|_| ()).ok_or(AppError::NotFound)
}

async fn list_messages(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
) -> Result<Json<Vec<Message>>, AppError> {
    let id = parse_id(&id)?;
    own_session(&state.api.db, &user.id, &id).await?;
    let messages = state
        .api
        .db
        .fetch_all(
            crate::db::query_as(
                "SELECT id, session_id, role, content, created_at FROM chat_messages WHERE session_id = $1 \
         ORDER BY created_at, id",
            )
            .bind(&id),
        )
        .await?;
    Ok(Json(messages))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    messages: Vec<NewMessage>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewMessage {
    temp_id: String,
    session_id: String,
    role: String,
    content: String,
    created_at: i64,
}

/// Checks the whole batch before anything is written.
fn validate(batch: &Batch) -> Result<(), AppError> {
    if batch.messages.is_empty() || batch.messages.len() > MAX_BATCH {
        return Err(AppError::bad_request(
            "invalid_batch",
            format!("a batch carries 1 to {MAX_BATCH} messages (got {})", batch.messages.len()),
        ));
    }
    let mut temp_ids = HashSet::new();
    for (i, m) in batch.messages.iter().enumerate() {
        let at = |what: String| AppError::bad_request("invalid_message", format!("messages[{i}]: {what}"));
        check_text("tempId", &m.temp_id, 1, 128).map_err(|_| at("tempId must be 1 to 128 characters".into()))?;
        if !temp_ids.insert(m.temp_id.as_str()) {
            return Err(at(format!("tempId {:?} appears twice in the batch", m.temp_id)));
        }
        parse_id(&m.session_id).map_err(|_| at(format!("sessionId {:?} is not an id", m.session_id)))?;
        if !ROLES.contains(&m.role.as_str()) {
            return Err(at(format!("role must be one of {ROLES:?}")));
        }
        if m.content.chars().count() > 20_000 {
            return Err(at("content is longer than 20000 characters".into()));
        }
        if m.created_at < 0 {
            return Err(at("createdAt must be Unix milliseconds".into()));
        }
    }
    Ok(())
}

async fn batch(State(state): State<AppState>, req: Write<JsonBody<Batch>>) -> Result<Response, AppError> {
    validate(&req.body.value)?;
    let batch = req.body.value;
    let uid = req.user.id;
    write::run(&state, req.request, move |mut tx: Tx, now| async move {
        // Touch (and so lock) each session first, in a fixed order, and let
        // the same statement check ownership: inserting messages first
        // would take shared locks through the foreign key, and two batches
        // upgrading them would deadlock on PostgreSQL.
        let sessions: std::collections::BTreeSet<&str> = batch.messages.iter().map(|m| m.session_id.as_str()).collect();
        for session in &sessions {
            let touched = crate::db::query("UPDATE chat_sessions SET updated_at = $1 WHERE id = $2 AND user_id = $3")
                .bind(now)
                .bind(*session)
                .bind(&uid)
                .execute(&mut *tx)
                .await?;
            if touched.rows_affected() != 1 {
                return Err(AppError::NotFound);
            }
        }
        // One multi-row INSERT: a round trip per batch, not per message. A
        // tempId this user already stored is skipped (the unique index), so
        // a message sent again in another batch, under another
        // Idempotency-Key, is stored once.
        let mut sql = String::from(
            "INSERT INTO chat_messages (id, session_id, user_id, role, content, created_at, temp_id) VALUES ",
        );
        for i in 0..batch.messages.len() {
            let p = i * 7;
            if i > 0 {
                sql.push(',');
            }
            let row: Vec<String> = (1..=7).map(|k| format!("${}", p + k)).collect();
            sql.push_str(&format!("({})", row.join(",")));
        }
        sql.push_str(" ON CONFLICT (user_id, temp_id) DO NOTHING");
        let mut query = crate::db::query(&sql);
        for m in &batch.messages {
            query = query
                .bind(new_id())
                .bind(&m.session_id)
                .bind(&uid)
                .bind(&m.role)
                .bind(&m.content)
                .bind(m.created_at)
                .bind(&m.temp_id);
        }
        query.execute(&mut *tx).await?;
        // The stored id of each tempId: the new row's, or the earlier one's.
        let marks: Vec<String> = (0..batch.messages.len()).map(|i| format!("${}", i + 2)).collect();
        let lookup =
            format!("SELECT temp_id, id FROM chat_messages WHERE user_id = $1 AND temp_id IN ({})", marks.join(","));
        let mut query = crate::db::query_as::<(String, String)>(&lookup).bind(&uid);
        for m in &batch.messages {
            query = query.bind(&m.temp_id);
        }
        let ids: std::collections::HashMap<String, String> = query.fetch_all(&mut *tx).await?.into_iter().collect();
        let mappings: Vec<Value> =
            batch.messages.iter().map(|m| json!({ "tempId": m.temp_id, "id": ids[&m.temp_id] })).collect();
        Ok((tx, StatusCode::OK, json!({ "mappings": mappings })))
    })
    .await
}
