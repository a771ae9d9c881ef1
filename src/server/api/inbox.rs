//! The inbox: a write that takes any body (JSON, `multipart/form-data`,
//! binary) and keeps it byte for byte, with its content type and SHA-256.
//! It is how a site (and Outpost's tests) can see that a queued FormData or
//! Blob upload reached the origin exactly as the page sent it.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::server::extract::{new_id, parse_id, User};
use crate::server::write::{self, Tx, Write};
use crate::server::{AppError, AppState};

/// The largest body the inbox takes.
pub const MAX_BODY: usize = 8 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/inbox", get(list).post(create).layer(DefaultBodyLimit::max(MAX_BODY)))
        .route("/inbox/{id}/body", get(body))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    id: String,
    content_type: String,
    size: i64,
    sha256: String,
    created_at: i64,
}

async fn create(State(state): State<AppState>, req: Write<Bytes>) -> Result<Response, AppError> {
    if req.body.is_empty() {
        return Err(AppError::bad_request("empty_body", "the inbox takes a non-empty body"));
    }
    let content_type = req
        .request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_string();
    let uid = req.user.id;
    let stored = req.body.to_vec();
    write::run(&state, req.request, move |mut tx: Tx, now| async move {
        let item = Item {
            id: new_id(),
            content_type,
            size: stored.len() as i64,
            sha256: crate::hex::encode(&Sha256::digest(&stored)),
            created_at: now,
        };
        crate::db::query(
            "INSERT INTO inbox (id, user_id, content_type, size, sha256, body, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&item.id)
        .bind(&uid)
        .bind(&item.content_type)
        .bind(item.size)
        .bind(&item.sha256)
        .bind(stored)
        .bind(item.created_at)
        .execute(&mut *tx)
        .await?;
        Ok((tx, StatusCode::CREATED, serde_json::to_value(item).expect("plain fields serialise")))
    })
    .await
}

/// The caller's items, oldest first (ids are time-ordered).
async fn list(State(state): State<AppState>, user: User) -> Result<Json<Vec<Item>>, AppError> {
    let rows: Vec<(String, String, i64, String, i64)> = state
        .api
        .db
        .fetch_all(
            crate::db::query_as(
                "SELECT id, content_type, size, sha256, created_at FROM inbox WHERE user_id = $1 ORDER BY id",
            )
            .bind(&user.id),
        )
        .await?;
    Ok(Json(
        rows.into_iter()
            .map(|(id, content_type, size, sha256, created_at)| Item { id, content_type, size, sha256, created_at })
            .collect(),
    ))
}

/// One item's body, with its content type.
async fn body(State(state): State<AppState>, user: User, Path(id): Path<String>) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    let row: Option<(String, Vec<u8>)> = state
        .api
        .db
        .fetch_optional(
            crate::db::query_as("SELECT content_type, body FROM inbox WHERE id = $1 AND user_id = $2")
                .bind(&id)
                .bind(&user.id),
        )
        .await?;
    let (content_type, bytes) = row.ok_or(AppError::NotFound)?;
    // Stored bodies are data: never run as a page of this origin.
    let mut response = ([(header::CONTENT_TYPE, content_type.clone())], bytes).into_response();
    for (name, value) in outpost_sw::core::content::headers(&content_type) {
        response.headers_mut().insert(name, header::HeaderValue::from_static(value));
    }
    Ok(response)
}
