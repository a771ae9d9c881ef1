//! Asset metadata and the presigned-upload flow: the origin hands out
//! presigned URLs; the bytes go straight between the browser and the object
//! store; `complete` checks the object before marking it uploaded.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::check_text;
use crate::db::Db;
use crate::server::extract::{new_id, parse_id, JsonBody, User};
use crate::server::write::{self, Tx, Write, WriteRequest};
use crate::server::{AppError, AppState};

/// Largest asset one presigned PUT may carry: S3's single-PUT limit.
pub const MAX_ASSET_SIZE: i64 = 5 * 1024 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/assets", get(list))
        .route("/assets/presign", post(presign))
        .route("/assets/{id}", get(one))
        .route("/assets/{id}/complete", post(complete))
        .route("/assets/{id}/parts", get(parts).post(part_urls))
        .route("/assets/{id}/content", get(content))
}

/// Part size of multipart uploads: S3 needs at least 5 MiB (except the last
/// part) and at most 10,000 parts.
pub const PART_SIZE: i64 = 8 * 1024 * 1024;
const MAX_PARTS: i64 = 10_000;
/// Most part URLs handed out by one call.
const MAX_PART_URLS: usize = 1_000;

fn part_size_for(size: i64) -> i64 {
    PART_SIZE.max((size + MAX_PARTS - 1) / MAX_PARTS)
}

fn part_count(size: i64, part_size: i64) -> i64 {
    (size + part_size - 1) / part_size
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
    /// The store's multipart upload id, while a multipart upload is open.
    #[serde(skip)]
    pub upload_id: Option<String>,
    #[serde(skip)]
    pub part_size: Option<i64>,
}

const COLUMNS: &str =
    "id, project_id, filename, content_type, size, status, created_at, object_key, upload_id, part_size";

/// The caller's assets, newest first.
pub async fn assets_of(db: &Db, user_id: &str) -> Result<Vec<Asset>, AppError> {
    Ok(db
        .fetch_all(
            crate::db::query_as(&format!(
                "SELECT {COLUMNS} FROM assets WHERE user_id = $1 ORDER BY created_at DESC, id DESC"
            ))
            .bind(user_id),
        )
        .await?)
}

async fn find(db: &Db, user_id: &str, id: &str) -> Result<Asset, AppError> {
    let asset: Option<Asset> = db
        .fetch_optional(
            crate::db::query_as(&format!("SELECT {COLUMNS} FROM assets WHERE id = $1 AND user_id = $2"))
                .bind(id)
                .bind(user_id),
        )
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

/// Presigned URLs are valid this long.
fn presign_ttl(state: &AppState) -> Duration {
    Duration::from_secs(state.api.settings.presign_ttl_secs)
}

fn expires_at(now: i64, ttl: Duration) -> i64 {
    now + ttl.as_millis() as i64
}

// The answers below list their fields in alphabetical order: that is the
// order in which `serde_json::Value` (a sorted map) writes them, and so the
// order of a write's answer replayed from the Idempotency-Key table. Keeping
// it makes every answer, direct or replayed, the same bytes.

/// Where and how to `PUT` an asset's bytes.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PutUrl {
    asset_id: String,
    expires_at: i64,
    headers: PutHeaders,
    issued_at: i64,
    method: &'static str,
    url: String,
}

/// The headers the `PUT` must send: the content type is signed.
#[derive(Serialize)]
struct PutHeaders {
    #[serde(rename = "Content-Type")]
    content_type: String,
}

impl PutUrl {
    fn new(asset_id: String, url: &reqwest::Url, content_type: String, now: i64, ttl: Duration) -> Self {
        PutUrl {
            asset_id,
            expires_at: expires_at(now, ttl),
            headers: PutHeaders { content_type },
            issued_at: now,
            method: "PUT",
            url: url.as_str().to_owned(),
        }
    }
}

/// A multipart upload opened in the store: the client asks for part URLs.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MultipartUpload {
    asset_id: String,
    expires_at: i64,
    issued_at: i64,
    part_count: i64,
    part_size: i64,
}

/// Where to `GET` an uploaded asset's bytes.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GetUrl {
    expires_at: i64,
    method: &'static str,
    url: String,
}

async fn presign(State(state): State<AppState>, req: Write<JsonBody<Presign>>) -> Result<Response, AppError> {
    let Write { user, body, request } = req;
    let p = body.value;
    match p.op.as_str() {
        "put" if p.asset_id.is_some() => Ok(Json(presign_put_again(&state, &user, p).await?).into_response()),
        "put" | "multipart" => start_upload(&state, user, request, p).await,
        "get" => Ok(Json(presign_get(&state, &user, p).await?).into_response()),
        other => Err(AppError::bad_request(
            "invalid_field",
            format!("op must be \"put\", \"multipart\" or \"get\", not {other:?}"),
        )),
    }
}

/// `{op: "put", assetId}`: a fresh URL for an asset already presigned (the
/// first URL expired before the bytes could go).
async fn presign_put_again(state: &AppState, user: &User, p: Presign) -> Result<PutUrl, AppError> {
    if p.filename.is_some() || p.content_type.is_some() || p.size.is_some() || p.project_id.is_some() {
        return Err(AppError::bad_request("invalid_field", "op \"put\" with assetId takes nothing else"));
    }
    let id = parse_id(p.asset_id.as_deref().unwrap_or_default())?;
    let asset = find(&state.api.db, &user.id, &id).await?;
    if asset.status == "uploaded" {
        return Err(AppError::conflict("already_uploaded", "This asset is already uploaded."));
    }
    if asset.upload_id.is_some() {
        return Err(AppError::conflict(
            "multipart",
            "This asset is a multipart upload; ask POST /api/assets/{id}/parts for part URLs.",
        ));
    }
    let ttl = presign_ttl(state);
    let now = crate::db::now_ms();
    let url = state
        .api
        .store
        .presigner
        .presign_put_exact(&asset.object_key, &asset.content_type, asset.size as u64, ttl)
        .map_err(AppError::Internal)?;
    extend_url(state, &asset.id, expires_at(now, ttl)).await?;
    Ok(PutUrl::new(asset.id, &url, asset.content_type, now, ttl))
}

/// `{op: "put" | "multipart", filename, contentType, size, projectId?}`:
/// records a pending asset, under the request's Idempotency-Key, and
/// answers with a URL for the bytes or the shape of the multipart upload.
async fn start_upload(state: &AppState, user: User, request: WriteRequest, p: Presign) -> Result<Response, AppError> {
    let multipart = p.op == "multipart";
    let filename = field(p.filename, "filename", "put")?;
    check_text("filename", &filename, 1, 255)?;
    if filename.chars().any(char::is_control) {
        return Err(AppError::bad_request("invalid_field", "filename must not contain control characters"));
    }
    let content_type = field(p.content_type, "contentType", "put")?;
    check_content_type(&content_type)?;
    let size = field(p.size, "size", "put")?;
    if !(1..=MAX_ASSET_SIZE).contains(&size) {
        return Err(AppError::bad_request("invalid_field", format!("size must be 1 to {MAX_ASSET_SIZE} bytes")));
    }
    let project_id = p.project_id.as_deref().map(parse_id).transpose()?;
    let part_size = multipart.then(|| part_size_for(size));
    let ttl = presign_ttl(state);
    let store = state.api.store.clone();
    let uid = user.id;
    let id = new_id();
    // The key is made of ids only: nothing the client sends can steer where
    // the object lands.
    let key = format!("users/{uid}/assets/{id}");
    let before = {
        let (state, store, uid, key, content_type) =
            (state.clone(), store.clone(), uid.clone(), key.clone(), content_type.clone());
        move |_now| async move {
            check_quota(&state, &uid, size).await?;
            // Outside the transaction (see write::run_prepared).
            match part_size {
                Some(_) => Ok(Some(
                    store
                        .presigner
                        .create_multipart(&key, Some(&content_type))
                        .await
                        .map_err(|e| AppError::Store(format!("{e:#}")))?,
                )),
                None => Ok(None),
            }
        }
    };
    let undo_key = key.clone();
    let work = move |mut tx: Tx, now, upload_id: Option<String>| async move {
        if let Some(project) = &project_id {
            let owned: Option<(String,)> =
                crate::db::query_as("SELECT id FROM projects WHERE id = $1 AND user_id = $2")
                    .bind(project)
                    .bind(&uid)
                    .fetch_optional(&mut *tx)
                    .await?;
            owned.ok_or(AppError::NotFound)?;
        }
        crate::db::query(
            "INSERT INTO assets (id, user_id, project_id, filename, content_type, size, status, object_key, created_at, upload_id, part_size, url_expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9, $10, $11)",
        )
        .bind(&id)
        .bind(&uid)
        .bind(&project_id)
        .bind(&filename)
        .bind(&content_type)
        .bind(size)
        .bind(&key)
        .bind(now)
        .bind(&upload_id)
        .bind(part_size)
        .bind(expires_at(now, ttl))
        .execute(&mut *tx)
        .await?;
        let answer = match part_size {
            Some(part_size) => serde_json::to_value(MultipartUpload {
                asset_id: id,
                expires_at: expires_at(now, ttl),
                issued_at: now,
                part_count: part_count(size, part_size),
                part_size,
            }),
            None => {
                let url = store
                    .presigner
                    .presign_put_exact(&key, &content_type, size as u64, ttl)
                    .map_err(AppError::Internal)?;
                serde_json::to_value(PutUrl::new(id, &url, content_type, now, ttl))
            }
        };
        Ok((tx, StatusCode::OK, answer.expect("plain fields serialise")))
    };
    // A multipart upload the write did not record (refused, busy, failed):
    // nothing else would ever abort it. Unless the row exists after all (a
    // commit whose answer was lost), it goes.
    let undo = {
        let (state, key) = (state.clone(), undo_key);
        move |upload_id: Option<String>| async move {
            let Some(upload_id) = upload_id else { return };
            let named: Result<Option<(String,)>, _> = state
                .api
                .db
                .fetch_optional(crate::db::query_as("SELECT id FROM assets WHERE upload_id = $1").bind(&upload_id))
                .await;
            if let Ok(None) = named {
                tracing::warn!(key = %key, "aborting a multipart upload the write did not record");
                if let Err(e) = state.api.store.presigner.abort_multipart(&key, &upload_id).await {
                    tracing::warn!(error = %format!("{e:#}"), "cannot abort an unrecorded multipart upload");
                }
            }
        }
    };
    write::run_prepared(state, request, before, work, undo).await
}

/// Notes that a URL for the pending asset is valid until `until`, so that
/// the sweeper leaves it alone until then.
async fn extend_url(state: &AppState, id: &str, until: i64) -> Result<(), AppError> {
    state
        .api
        .db
        .execute(
            crate::db::query(
                "UPDATE assets SET url_expires_at = $1 WHERE id = $2 AND status = 'pending' \
                 AND (url_expires_at IS NULL OR url_expires_at < $1)",
            )
            .bind(until)
            .bind(id),
        )
        .await?;
    Ok(())
}

/// Aborts and deletes the uploads left pending more than `grace_ms` past
/// the last URL handed out for them: the store's parts, its object (a PUT
/// that landed but was never completed) and the row. Returns how many.
pub async fn sweep_abandoned(state: &AppState, now: i64, grace_ms: i64) -> Result<u64, AppError> {
    let db = &state.api.db;
    let stale: Vec<(String, String, Option<String>)> = db
        .fetch_all(
            crate::db::query_as(
                "SELECT id, object_key, upload_id FROM assets WHERE status = 'pending' \
                 AND COALESCE(url_expires_at, created_at) < $1 ORDER BY created_at LIMIT 500",
            )
            .bind(now - grace_ms),
        )
        .await?;
    let presigner = &state.api.store.presigner;
    let mut swept = 0;
    for (id, key, upload_id) in stale {
        // The row goes first, with the same condition: an asset given a new
        // URL (or completed) since the select stays. Then the store's side.
        let done = db
            .execute(
                crate::db::query(
                    "DELETE FROM assets WHERE id = $1 AND status = 'pending' AND COALESCE(url_expires_at, created_at) < $2",
                )
                .bind(&id)
                .bind(now - grace_ms),
            )
            .await?;
        if done.rows_affected() != 1 {
            continue;
        }
        swept += 1;
        if let Some(upload_id) = &upload_id {
            // Already gone (completed, or aborted by a lifecycle rule) is fine.
            if let Err(e) = presigner.abort_multipart(&key, upload_id).await {
                tracing::info!(asset = %id, error = %format!("{e:#}"), "abort of an abandoned multipart upload");
            }
        }
        if let Err(e) = presigner.delete_object(&key).await {
            tracing::warn!(asset = %id, key = %key, error = %format!("{e:#}"), "cannot delete an abandoned upload's object");
        }
    }
    Ok(swept)
}

/// Refuses an asset of `size` bytes that would take the user past their
/// quota (assets pending or uploaded count alike). Checked before the
/// transaction; two presigns racing may both pass, by one asset each.
async fn check_quota(state: &AppState, user_id: &str, size: i64) -> Result<(), AppError> {
    let settings = &state.api.settings;
    let (count, bytes): (i64, i64) = state
        .api
        .db
        .fetch_one(
            crate::db::query_as(
                "SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM assets WHERE user_id = $1",
            )
            .bind(user_id),
        )
        .await?;
    if count + 1 > settings.quota_assets {
        return Err(AppError::QuotaExceeded {
            message: format!(
                "You already have {count} assets, the most this server keeps per user ({}). Delete some first.",
                settings.quota_assets
            ),
        });
    }
    if bytes + size > settings.quota_bytes {
        return Err(AppError::QuotaExceeded {
            message: format!(
                "This file ({size} bytes) would take your storage to {} bytes, over your quota of {} bytes.",
                bytes + size,
                settings.quota_bytes
            ),
        });
    }
    Ok(())
}

/// `{op: "get", assetId}`: a URL to download an uploaded asset.
async fn presign_get(state: &AppState, user: &User, p: Presign) -> Result<GetUrl, AppError> {
    if p.filename.is_some() || p.content_type.is_some() || p.size.is_some() || p.project_id.is_some() {
        return Err(AppError::bad_request("invalid_field", "op \"get\" takes only assetId"));
    }
    let id = parse_id(&field(p.asset_id, "assetId", "get")?)?;
    let asset = find(&state.api.db, &user.id, &id).await?;
    if asset.status != "uploaded" {
        return Err(AppError::conflict("not_uploaded", "This asset has not been uploaded yet."));
    }
    let ttl = presign_ttl(state);
    let now = crate::db::now_ms();
    let url = state.api.store.presigner.presign_get(&asset.object_key, ttl).map_err(AppError::Internal)?;
    Ok(GetUrl { expires_at: expires_at(now, ttl), method: "GET", url: url.as_str().to_owned() })
}

/// How long `complete` waits for the store before answering `503
/// completing` (the completion goes on; a retry joins it).
const COMPLETE_WAIT: Duration = Duration::from_secs(8);

/// `POST /api/assets/{id}/complete`. Completing a large multipart upload
/// can take the store longer than the API's 10 s budget, and must not be
/// cut off halfway when the request's time runs out: it runs in a task of
/// its own, one at a time per asset, and a retry waits for the one in
/// flight, then finds the asset uploaded.
async fn complete(State(state): State<AppState>, user: User, Path(id): Path<String>) -> Result<Json<Asset>, AppError> {
    let id = parse_id(&id)?;
    let turn = {
        let mut all = state.api.completing.lock().expect("not poisoned");
        all.retain(|_, m| std::sync::Arc::strong_count(m) > 1);
        std::sync::Arc::clone(all.entry(id.clone()).or_default())
    };
    let task = tokio::spawn({
        let state = state.clone();
        async move {
            let _one_at_a_time = turn.lock().await;
            complete_now(&state, &user, &id).await
        }
    });
    match tokio::time::timeout(COMPLETE_WAIT, task).await {
        Ok(done) => done.map_err(|e| AppError::Internal(anyhow::anyhow!("complete task: {e}")))?,
        Err(_) => Err(AppError::Unavailable {
            code: "completing",
            message: "The store is still assembling the upload; ask again in a moment.".into(),
            retry_after_secs: 2,
        }),
    }
}

async fn complete_now(state: &AppState, user: &User, id: &str) -> Result<Json<Asset>, AppError> {
    let id = id.to_string();
    let db = &state.api.db;
    let asset = find(db, &user.id, &id).await?;
    if asset.status == "uploaded" {
        // Completing twice is harmless: a replayed request gets the same answer.
        return Ok(Json(asset));
    }
    let presigner = &state.api.store.presigner;
    if let (Some(upload_id), Some(part_size)) = (&asset.upload_id, asset.part_size) {
        finish_multipart(presigner, &asset, upload_id, part_size).await?;
    }
    let stored = presigner.head_object(&asset.object_key).await.map_err(|e| AppError::Store(format!("{e:#}")))?;
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
            let done = db
                .execute(
                    crate::db::query(
                        "UPDATE assets SET status = 'uploaded', uploaded_at = $1, upload_id = NULL \
                         WHERE id = $2 AND user_id = $3 AND status = 'pending'",
                    )
                    .bind(now)
                    .bind(&id)
                    .bind(&user.id),
                )
                .await?;
            if done.rows_affected() != 1 {
                // Completed meanwhile by a concurrent call (same answer), or
                // swept: never say "uploaded" for a row that is gone.
                let now = find(db, &user.id, &id).await?;
                if now.status != "uploaded" {
                    return Err(AppError::NotFound);
                }
                return Ok(Json(now));
            }
            Ok(Json(Asset { status: "uploaded".into(), upload_id: None, ..asset }))
        }
    }
}

/// Completes the store's multipart upload once every part is there. An
/// upload the store no longer knows was completed by an earlier call whose
/// answer was lost: the object itself is then checked as for a single PUT.
async fn finish_multipart(
    presigner: &crate::store::Presigner,
    asset: &Asset,
    upload_id: &str,
    part_size: i64,
) -> Result<(), AppError> {
    let parts = match presigner.list_parts(&asset.object_key, upload_id).await {
        Ok(parts) => parts,
        // The store no longer knows the upload: an earlier complete did it.
        Err(e) if format!("{e:#}").contains("NoSuchUpload") => return Ok(()),
        // Anything else (a timeout, a store that is down) is not an answer.
        Err(e) => return Err(AppError::Store(format!("{e:#}"))),
    };
    let count = part_count(asset.size, part_size);
    let have: i64 = parts.len() as i64;
    let bytes: u64 = parts.iter().map(|p| p.size).sum();
    let numbered = parts.iter().enumerate().all(|(i, p)| i64::from(p.part_number) == i as i64 + 1);
    if have != count || !numbered || bytes as i64 != asset.size {
        return Err(AppError::unprocessable(
            "parts_missing",
            format!(
                "The store has {have} of {count} parts ({bytes} of {} bytes); upload the missing parts first.",
                asset.size
            ),
        ));
    }
    let pairs: Vec<(u16, String)> = parts.into_iter().map(|p| (p.part_number, p.etag)).collect();
    presigner
        .complete_multipart(&asset.object_key, upload_id, &pairs)
        .await
        .map_err(|e| AppError::Store(format!("{e:#}")))?;
    Ok(())
}

/// A pending multipart asset of the caller's, with its upload id and part size.
async fn open_multipart(state: &AppState, user: &User, id: &str) -> Result<(Asset, String, i64), AppError> {
    let id = parse_id(id)?;
    let asset = find(&state.api.db, &user.id, &id).await?;
    if asset.status == "uploaded" {
        return Err(AppError::conflict("already_uploaded", "This asset is already uploaded."));
    }
    match (asset.upload_id.clone(), asset.part_size) {
        (Some(upload_id), Some(part_size)) => Ok((asset, upload_id, part_size)),
        _ => Err(AppError::conflict("not_multipart", "This asset is a single-PUT upload; it has no parts.")),
    }
}

/// The parts the store already holds: what a resumed upload can skip.
async fn parts(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, AppError> {
    let (asset, upload_id, part_size) = open_multipart(&state, &user, &id).await?;
    let presigner = &state.api.store.presigner;
    let parts = match presigner.list_parts(&asset.object_key, &upload_id).await {
        Ok(parts) => parts,
        // The store finished this upload (a complete whose answer was lost,
        // or that outlived its request): every part is in the object. Say
        // so, and the client's complete finds the asset uploaded.
        Err(e) if format!("{e:#}").contains("NoSuchUpload") => {
            let stored =
                presigner.head_object(&asset.object_key).await.map_err(|e| AppError::Store(format!("{e:#}")))?;
            if stored != Some(asset.size as u64) {
                return Err(AppError::Store(format!("{e:#}; the object is {stored:?} bytes")));
            }
            let count = part_count(asset.size, part_size);
            let all: Vec<serde_json::Value> = (1..=count)
                .map(|n| json!({ "partNumber": n, "size": part_size.min(asset.size - (n - 1) * part_size) }))
                .collect();
            return Ok(Json(json!({ "partSize": part_size, "partCount": count, "uploaded": all })));
        }
        Err(e) => return Err(AppError::Store(format!("{e:#}"))),
    };
    let uploaded: Vec<serde_json::Value> =
        parts.iter().map(|p| json!({ "partNumber": p.part_number, "size": p.size })).collect();
    Ok(Json(json!({ "partSize": part_size, "partCount": part_count(asset.size, part_size), "uploaded": uploaded })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PartUrls {
    part_numbers: Vec<i64>,
}

/// Presigned URLs for some parts of a multipart upload.
async fn part_urls(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    body: JsonBody<PartUrls>,
) -> Result<Json<serde_json::Value>, AppError> {
    let (asset, upload_id, part_size) = open_multipart(&state, &user, &id).await?;
    let numbers = body.value.part_numbers;
    let count = part_count(asset.size, part_size);
    if numbers.is_empty() || numbers.len() > MAX_PART_URLS {
        return Err(AppError::bad_request(
            "invalid_field",
            format!("partNumbers must hold 1 to {MAX_PART_URLS} numbers"),
        ));
    }
    if let Some(bad) = numbers.iter().find(|n| !(1..=count).contains(*n)) {
        return Err(AppError::bad_request("invalid_field", format!("part {bad} is not in 1..={count}")));
    }
    let ttl = presign_ttl(&state);
    let presigner = &state.api.store.presigner;
    let mut parts = Vec::with_capacity(numbers.len());
    for n in numbers {
        // Every part but the last is part_size bytes; each URL is bound to
        // its part's length.
        let length = part_size.min(asset.size - (n - 1) * part_size) as u64;
        let url = presigner
            .presign_upload_part_exact(&asset.object_key, &upload_id, n as u16, length, ttl)
            .map_err(AppError::Internal)?;
        parts.push(json!({ "partNumber": n, "url": url.as_str() }));
    }
    let until = expires_at(crate::db::now_ms(), ttl);
    extend_url(&state, &asset.id, until).await?;
    Ok(Json(json!({ "parts": parts, "expiresAt": until })))
}

/// The asset's bytes, for clients without the worker: a redirect to a
/// presigned GET.
async fn content(State(state): State<AppState>, user: User, Path(id): Path<String>) -> Result<Response, AppError> {
    let id = parse_id(&id)?;
    let asset = find(&state.api.db, &user.id, &id).await?;
    if asset.status != "uploaded" {
        return Err(AppError::conflict("not_uploaded", "This asset has not been uploaded yet."));
    }
    let url =
        state.api.store.presigner.presign_get(&asset.object_key, presign_ttl(&state)).map_err(AppError::Internal)?;
    Ok(axum::response::Redirect::to(url.as_str()).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes the answers had when they were built with `json!`: sorted keys.
    #[test]
    fn presign_answers_keep_their_wire_form() {
        let url: reqwest::Url = "http://127.0.0.1:9000/uploads/k?X-Amz-Signature=s".parse().unwrap();
        let ttl = Duration::from_secs(3600);
        let put = PutUrl::new("a1".into(), &url, "image/png".into(), 1_000, ttl);
        let expected = r#"{"assetId":"a1","expiresAt":3601000,"headers":{"Content-Type":"image/png"},"issuedAt":1000,"method":"PUT","url":"http://127.0.0.1:9000/uploads/k?X-Amz-Signature=s"}"#;
        assert_eq!(serde_json::to_string(&put).unwrap(), expected);
        // A write's answer goes through `Value` (and the Idempotency-Key
        // table) and must come out the same.
        assert_eq!(serde_json::to_value(&put).unwrap().to_string(), expected);

        let multipart =
            MultipartUpload { asset_id: "a1".into(), expires_at: 2, issued_at: 1, part_count: 3, part_size: 8 };
        let expected = r#"{"assetId":"a1","expiresAt":2,"issuedAt":1,"partCount":3,"partSize":8}"#;
        assert_eq!(serde_json::to_string(&multipart).unwrap(), expected);
        assert_eq!(serde_json::to_value(&multipart).unwrap().to_string(), expected);

        let get = GetUrl { expires_at: 2, method: "GET", url: url.as_str().into() };
        let expected = r#"{"expiresAt":2,"method":"GET","url":"http://127.0.0.1:9000/uploads/k?X-Amz-Signature=s"}"#;
        assert_eq!(serde_json::to_string(&get).unwrap(), expected);
    }
}
