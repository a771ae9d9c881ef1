//! Asset metadata and the presigned-upload flow: the origin hands out
//! presigned URLs; the bytes go straight between the browser and the object
//! store; `complete` checks the object before marking it uploaded.

use std::time::Duration;

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::check_text;
use crate::db::Db;
use crate::server::extract::{new_id, parse_id, JsonBody, User};
use crate::server::write::{self, Tx, WriteRequest};
use crate::server::{AppError, AppState};

/// Largest asset one presigned PUT may carry: S3's single-PUT limit.
pub const MAX_ASSET_SIZE: i64 = 5 * 1024 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/assets", get(list))
        .route("/assets/presign", post(presign))
        .route("/assets/{id}", get(one))
        .route("/assets/{id}/complete", post(complete))
}

#[derive(Serialize, sqlx::FromRow, Clone)]
#[serde(rename_all = "camelCase")]
pub struct Asset {
    pub id: String,
    pub project_id: Option<String>,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    /// `pending` until `complete` has seen the object, then `uploaded`.
    pub status: String,
    pub created_at: i64,
    #[serde(skip)]
    pub object_key: String,
}

const COLUMNS: &str = "id, project_id, filename, content_type, size, status, created_at, object_key";

/// The caller's assets, newest first.
pub async fn assets_of(db: &Db, user_id: &str) -> Result<Vec<Asset>, AppError> {
    Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM assets WHERE user_id = $1 ORDER BY created_at DESC, id DESC"))
        .bind(user_id)
        .fetch_all(&db.pool)
        .await?)
}

async fn find(db: &Db, user_id: &str, id: &str) -> Result<Asset, AppError> {
    let asset: Option<Asset> = sqlx::query_as(&format!("SELECT {COLUMNS} FROM assets WHERE id = $1 AND user_id = $2"))
        .bind(id)
        .bind(user_id)
        .fetch_optional(&db.pool)
        .await?;
    asset.ok_or(AppError::NotFound)
}

async fn list(State(state): State<AppState>, user: User) -> Result<Json<Vec<Asset>>, AppError> {
    Ok(Json(assets_of(&state.api.db, &user.id).await?))
}

async fn one(State(state): State<AppState>, user: User, Path(id): Path<String>) -> Result<Json<Asset>, AppError> {
    let id = parse_id(&id)?;
    Ok(Json(find(&state.api.db, &user.id, &id).await?))
}

/// `{op: "put", filename, contentType, size, projectId?}` or
/// `{op: "get", assetId}`. One flat shape, checked by hand, because serde's
/// tagged enums do not combine with `deny_unknown_fields` reliably.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Presign {
    op: String,
    filename: Option<String>,
    content_type: Option<String>,
    size: Option<i64>,
    project_id: Option<String>,
    asset_id: Option<String>,
}

fn field<T>(value: Option<T>, name: &str, op: &str) -> Result<T, AppError> {
    value.ok_or_else(|| AppError::bad_request("invalid_field", format!("op {op:?} needs {name}")))
}

/// `type/subtype`, as a browser would send it in `Content-Type`.
fn check_content_type(ct: &str) -> Result<(), AppError> {
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b));
    let ok = ct.len() <= 127 && ct.split_once('/').is_some_and(|(t, s)| token(t) && token(s));
    if ok {
        Ok(())
    } else {
        Err(AppError::bad_request("invalid_field", format!("contentType {ct:?} is not a media type like image/png")))
    }
}

async fn presign(
    State(state): State<AppState>,
    user: User,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: JsonBody<Presign>,
) -> Result<Response, AppError> {
    let p = body.value;
    let ttl = Duration::from_secs(state.api.settings.presign_ttl_secs);
    let expires_at = move |now: i64| now + ttl.as_millis() as i64;
    let store = state.api.store.clone();
    let uid = user.id.clone();
    let req = WriteRequest { user_id: &user.id, method: &method, uri: &uri, headers: &headers, body: &body.raw };
    match p.op.as_str() {
        "put" => {
            if p.asset_id.is_some() {
                return Err(AppError::bad_request("invalid_field", "op \"put\" takes no assetId"));
            }
            let filename = field(p.filename, "filename", "put")?;
            check_text("filename", &filename, 1, 255)?;
            if filename.chars().any(char::is_control) {
                return Err(AppError::bad_request("invalid_field", "filename must not contain control characters"));
            }
            let content_type = field(p.content_type, "contentType", "put")?;
            check_content_type(&content_type)?;
            let size = field(p.size, "size", "put")?;
            if !(1..=MAX_ASSET_SIZE).contains(&size) {
                return Err(AppError::bad_request(
                    "invalid_field",
                    format!("size must be 1 to {MAX_ASSET_SIZE} bytes"),
                ));
            }
            let project_id = p.project_id.as_deref().map(parse_id).transpose()?;
            write::run(&state, req, move |mut tx: Tx, now| async move {
                if let Some(project) = &project_id {
                    let owned: Option<(String,)> = sqlx::query_as("SELECT id FROM projects WHERE id = $1 AND user_id = $2")
                        .bind(project)
                        .bind(&uid)
                        .fetch_optional(&mut *tx)
                        .await?;
                    owned.ok_or(AppError::NotFound)?;
                }
                let id = new_id();
                // The key is made of ids only: nothing the client sends can
                // steer where the object lands.
                let key = format!("users/{uid}/assets/{id}");
                sqlx::query(
                    "INSERT INTO assets (id, user_id, project_id, filename, content_type, size, status, object_key, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8)",
                )
                .bind(&id)
                .bind(&uid)
                .bind(&project_id)
                .bind(&filename)
                .bind(&content_type)
                .bind(size)
                .bind(&key)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let url = store.presigner.presign_put(&key, Some(&content_type), ttl).map_err(AppError::Internal)?;
                let body = json!({
                    "assetId": id,
                    "url": url.as_str(),
                    "method": "PUT",
                    "headers": { "Content-Type": content_type },
                    "expiresAt": expires_at(now),
                });
                Ok((tx, StatusCode::OK, body))
            })
            .await
        }
        "get" => {
            if p.filename.is_some() || p.content_type.is_some() || p.size.is_some() || p.project_id.is_some() {
                return Err(AppError::bad_request("invalid_field", "op \"get\" takes only assetId"));
            }
            let id = parse_id(&field(p.asset_id, "assetId", "get")?)?;
            let asset = find(&state.api.db, &user.id, &id).await?;
            if asset.status != "uploaded" {
                return Err(AppError::conflict("not_uploaded", "This asset has not been uploaded yet."));
            }
            let now = crate::db::now_ms();
            let url = store.presigner.presign_get(&asset.object_key, ttl).map_err(AppError::Internal)?;
            let body = json!({ "url": url.as_str(), "method": "GET", "expiresAt": expires_at(now) });
            Ok(axum::response::IntoResponse::into_response(Json(body)))
        }
        other => Err(AppError::bad_request("invalid_field", format!("op must be \"put\" or \"get\", not {other:?}"))),
    }
}

async fn complete(State(state): State<AppState>, user: User, Path(id): Path<String>) -> Result<Json<Asset>, AppError> {
    let id = parse_id(&id)?;
    let db = &state.api.db;
    let asset = find(db, &user.id, &id).await?;
    if asset.status == "uploaded" {
        // Completing twice is harmless: a replayed request gets the same answer.
        return Ok(Json(asset));
    }
    let stored = state
        .api
        .store
        .presigner
        .head_object(&asset.object_key)
        .await
        .map_err(|e| AppError::Store(format!("{e:#}")))?;
    match stored {
        None => Err(AppError::unprocessable(
            "object_missing",
            "No object was uploaded for this asset; PUT it to the presigned URL first.",
        )),
        Some(size) if size as i64 != asset.size => Err(AppError::unprocessable(
            "size_mismatch",
            format!("The uploaded object has {size} bytes, but {} were declared; upload it again.", asset.size),
        )),
        Some(_) => {
            let now = crate::db::now_ms();
            sqlx::query("UPDATE assets SET status = 'uploaded', uploaded_at = $1 WHERE id = $2 AND user_id = $3")
                .bind(now)
                .bind(&id)
                .bind(&user.id)
                .execute(&db.pool)
                .await?;
            Ok(Json(Asset { status: "uploaded".into(), ..asset }))
        }
    }
}
