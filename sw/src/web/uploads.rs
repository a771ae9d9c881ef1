//! Carries out uploads and asset content: files kept in IndexedDB as
//! browser Blobs, sent to the object store through presigned URLs, served
//! back from the device, and evicted under the byte budget. The decisions
//! are `core::upload`'s.

use super::error::{Error, Result};
use std::rc::Rc;

use js_sys::Promise;
use rexie::Rexie;
use serde::Serialize;
use serde_json::{json, Value};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, Request, RequestInit, Response};

use super::clock::{Clock, Part};
use super::events::Events;
use super::global::Fetched;
use super::identity::Identity;
use super::runner::Runner;
use super::{db, global, response};
use crate::core::clock::{self, Heard, Trigger};
use crate::core::config::Config;
use crate::core::identity::Source;
use crate::core::protocol::{Event, UploadStatus};
use crate::core::reads;
use crate::core::upload::{self, Action, BlobMeta, Meta, Phase, Upload};

const LOCK: &str = "outpost-uploads";
/// Steps one upload may take in one pass.
const MAX_STEPS_PER_PASS: usize = 64;

pub struct Uploads {
    config: Rc<Config>,
    db: Rc<Rexie>,
    identity: Rc<Identity>,
    origin: String,
    events: Events,
    clock: Rc<Clock>,
    runner: Runner,
    /// Called when an upload got its server id (queued writes may now go).
    on_id: Box<dyn Fn()>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Progress<'a> {
    asset_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_id: Option<&'a str>,
    done: u64,
    total: u64,
}

fn api_error(status: u16, code: &str, message: &str) -> Result<Response> {
    response::json(status, &json!({ "error": { "code": code, "message": message } }).to_string())
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1_048_576.0)
}

async fn await_js(p: Promise) -> Result<JsValue> {
    Ok(JsFuture::from(p).await?)
}

impl Uploads {
    pub fn new(
        config: Rc<Config>,
        db: Rc<Rexie>,
        identity: Rc<Identity>,
        origin: String,
        clock: Rc<Clock>,
        on_id: Box<dyn Fn()>,
    ) -> Rc<Uploads> {
        Rc::new(Uploads {
            config,
            db,
            identity,
            origin,
            events: Events::new(),
            clock,
            runner: Runner::default(),
            on_id,
        })
    }

    /// `POST {uploadPath}?filename=…&projectId=…` with the file as body:
    /// kept on the device, answered `202 {queued, assetId, size}` at once.
    pub async fn accept(self: &Rc<Self>, request: Request) -> Result<Response> {
        let url = request.url();
        let query = crate::core::url::split(&url).and_then(|p| p.query).unwrap_or("");
        let param = |name: &str| {
            query.split('&').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                (k == name).then(|| js_sys::decode_uri_component(&v.replace('+', " ")).ok()?.as_string()).flatten()
            })
        };
        let content_type = request
            .headers()
            .get("content-type")?
            .filter(|ct| !ct.is_empty())
            .unwrap_or_else(|| "application/octet-stream".into());
        let blob: Blob = await_js(request.blob()?).await?.dyn_into()?;
        let size = blob.size() as u64;
        if size == 0 {
            return api_error(400, "empty_body", "The upload has no bytes; send the file as the request body.");
        }
        let meta = Meta {
            filename: param("filename").unwrap_or_else(|| "upload".into()),
            content_type: content_type.clone(),
            size,
            project_id: param("projectId"),
        };
        let id = format!("{}{}", upload::TEMP_PREFIX, global::uuid());
        let now = global::now_ms();
        let user = self.identity.current();
        let record = Upload::new(id.clone(), user.clone(), meta, global::uuid(), now);
        let blob_meta = BlobMeta { size, last_used: now, pinned: true, asset_id: None, user, content_type };
        if let Err((code, message)) = self.keep(&id, &blob, &blob_meta, Some(&record)).await? {
            return api_error(507, code, &message);
        }
        self.progress(&record);
        self.kick(Trigger::Scheduled);
        let body = json!({ "queued": true, "assetId": id, "size": size }).to_string();
        let answer = response::json(202, &body)?;
        answer.headers().set("Outpost-Queued", &id)?;
        Ok(answer)
    }

    /// Stores a blob (and its upload record) within the budget: evicts what
    /// the plan names, and on a quota error from the browser evicts and
    /// tries once more. `Ok(Err(message))`: it does not fit, nothing was
    /// stored and nothing stored before was touched.
    async fn keep(
        &self,
        key: &str,
        blob: &Blob,
        meta: &BlobMeta,
        record: Option<&Upload>,
    ) -> Result<Result<(), (&'static str, String)>> {
        let (usage, budget) = self.room_for(meta.size).await?;
        if let Some(message) = usage {
            self.events.emit(Event::QuotaLow, &json!({ "needed": meta.size, "budget": budget, "message": message }));
            return Ok(Err(("storage_full", message)));
        }
        let mut file: JsValue = blob.clone().into();
        let mut evicted = false;
        loop {
            let mut rows = vec![(db::BLOBS, key, file.clone()), (db::BLOB_META, key, db::bytes(&reads::encode(meta)))];
            if let Some(r) = record {
                rows.push((db::UPLOADS, key, db::bytes(&upload::encode(r))));
            }
            let stored = match db::put_all(&self.db, &rows).await {
                // Some engines report a full quota as another error (see
                // `upload::over_quota`): the estimate tells.
                Err(e) if !e.is_quota() && self.looks_full(meta.size).await => {
                    Err(Error::new("QuotaExceededError", format!("the storage estimate says the quota is full ({e})")))
                }
                other => other,
            };
            match stored {
                Ok(()) => return Ok(Ok(())),
                Err(e) if e.is_quota() && !evicted => {
                    // The browser's own limit came first: free what is safe,
                    // then try once more.
                    self.evict(u64::MAX).await?;
                    evicted = true;
                }
                Err(e) if e.is_quota() => {
                    let message = format!(
                        "The browser refused to store {} more on this device (quota exceeded), even after \
                         evicting every file already safe on the server. Free some space or upload a smaller file.",
                        mib(meta.size)
                    );
                    self.events.emit(Event::QuotaLow, &json!({ "needed": meta.size, "message": message }));
                    return Ok(Err(("storage_full", message)));
                }
                Err(_) if file.is_instance_of::<Blob>() => {
                    // WebKit refuses Blobs in IndexedDB in ephemeral sessions
                    // (Safari's private windows, automation) with a bare
                    // error, but takes the same bytes as an ArrayBuffer.
                    file = await_js(blob.array_buffer()).await?;
                }
                Err(e) => {
                    global::log_error("the browser refused to store a file", &e);
                    let message = format!(
                        "This browser refused to keep the file on the device (IndexedDB would store neither the \
                         file nor its {} of bytes; private windows can do that). Upload it without going offline, \
                         or use a normal window.",
                        mib(meta.size)
                    );
                    return Ok(Err(("storage_refused", message)));
                }
            }
        }
    }

    async fn looks_full(&self, incoming: u64) -> bool {
        global::storage_estimate().await.is_some_and(|(usage, quota)| upload::over_quota(usage, quota, incoming))
    }

    /// Evicts to make room for `incoming` bytes; `(Some(message), budget)`
    /// when they cannot fit.
    async fn room_for(&self, incoming: u64) -> Result<(Option<String>, u64)> {
        let blobs = self.blob_metas().await?;
        let quota = global::storage_estimate().await.map(|(_, q)| q as u64);
        let budget = upload::blob_budget(self.config.blob_budget_bytes, quota);
        let room = upload::plan_room(&blobs, budget, incoming);
        if room.fits {
            self.drop_blobs(&room.evict, room.freed_bytes).await?;
            return Ok((None, budget));
        }
        // Refused: nothing already stored is touched.
        let message = format!(
            "No room on this device for {}: the budget is {} and {} is taken by files not yet uploaded. \
             Wait for pending uploads to finish, or raise blobBudgetBytes.",
            mib(incoming),
            mib(budget),
            mib(room.usage.saturating_sub(incoming)),
        );
        Ok((Some(message), budget))
    }

    /// Evicts down to the low watermark as if `incoming` bytes were coming.
    async fn evict(&self, incoming: u64) -> Result<()> {
        let blobs = self.blob_metas().await?;
        let everything = incoming == u64::MAX;
        let budget = if everything { 0 } else { self.config.blob_budget_bytes };
        let room = upload::plan_room(&blobs, budget, if everything { 0 } else { incoming });
        self.drop_blobs(&room.evict, room.freed_bytes).await
    }

    async fn drop_blobs(&self, keys: &[String], bytes: u64) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        db::delete_keys(&self.db, &[db::BLOBS, db::BLOB_META], keys).await?;
        self.events.emit(Event::Evicted, &json!({ "keys": keys, "bytes": bytes }));
        Ok(())
    }

    async fn blob_metas(&self) -> Result<Vec<(String, BlobMeta)>> {
        Ok(db::records(&self.db, db::BLOB_META)
            .await?
            .into_iter()
            .filter_map(|(k, v)| Some((k.as_string()?, reads::decode(&v).ok()?)))
            .collect())
    }

    async fn uploads(&self) -> Result<Vec<Upload>> {
        let mut all: Vec<Upload> = db::records(&self.db, db::UPLOADS)
            .await?
            .into_iter()
            .filter_map(|(_, v)| upload::decode(&v).ok())
            .collect();
        all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(all)
    }

    async fn save(&self, u: &Upload) -> Result<()> {
        db::put_all(&self.db, &[(db::UPLOADS, &u.id, db::bytes(&upload::encode(u)))]).await
    }

    fn progress(&self, u: &Upload) {
        let p = Progress { asset_id: &u.id, server_id: u.asset_id.as_deref(), done: u.bytes_done(), total: u.size };
        self.events.emit(Event::UploadProgress, &p);
    }

    /// Runs due uploads in the background.
    pub fn kick(self: &Rc<Self>, trigger: Trigger) {
        let me = Rc::clone(self);
        wasm_bindgen_futures::spawn_local(async move {
            if let Err(e) = me.replay(trigger).await {
                global::log_error("upload pass failed", &e);
            }
        });
    }

    /// Runs due uploads (one pass at a time, across workers too), then
    /// tells the clock when the next one is due.
    pub async fn replay(self: &Rc<Self>, trigger: Trigger) -> Result<()> {
        let me = Rc::clone(self);
        self.runner
            .run(trigger, move |trigger| {
                let me = Rc::clone(&me);
                async move {
                    let inner = Rc::clone(&me);
                    let pass =
                        global::with_lock(LOCK, async move { inner.pass(trigger).await.map(|()| JsValue::UNDEFINED) });
                    let result = pass.await.map(drop);
                    let now = global::now_ms();
                    me.clock.begin(Part::Uploads);
                    let (at, silent) = match me.uploads().await {
                        Ok(all) => upload::next_wake(&all, me.identity.current().as_deref()),
                        Err(_) => (Some(now), true),
                    };
                    me.clock.report(Part::Uploads, clock::after_pass(at, now), silent);
                    result
                }
            })
            .await
    }

    /// Every due upload of the current user, one after another, each as far
    /// as it goes.
    async fn pass(&self, trigger: Trigger) -> Result<()> {
        self.identity.reload().await?;
        if self.identity.logout_pending() {
            return Ok(()); // as for writes: the owed logout goes first
        }
        let user = self.identity.current();
        for mut u in self.uploads().await? {
            if u.user != user {
                continue;
            }
            let was_dead = u.dead.is_some();
            // Bounded, so an origin that answers 2xx without moving the upload
            // on cannot keep the worker busy.
            for _ in 0..MAX_STEPS_PER_PASS {
                // Every request carries the cookie of whoever is logged in now:
                // stop as soon as that is not the upload's user.
                if self.identity.switching() || self.identity.current() != u.user {
                    return Ok(());
                }
                let action = upload::next(&self.config, &u, global::now_ms(), trigger);
                if action == Action::Wait {
                    break;
                }
                let moved = self.step(&mut u, action).await?;
                if u.last_status == Some(401) && u.dead.is_none() {
                    // Parked: the session is gone, nothing more goes as this user.
                    self.identity.apply(&crate::core::identity::learn(Source::Replay, Some(401), &[])).await?;
                }
                if !self.still_there(&u.id).await? {
                    return Ok(()); // discarded meanwhile
                }
                self.save(&u).await?;
                if u.is_done() {
                    self.finish(&u).await?;
                    break;
                }
                if !moved {
                    break;
                }
            }
            if let (Some(reason), false) = (&u.dead, was_dead) {
                self.events.emit(Event::DeadLettered, &json!({ "id": u.id, "assetId": u.id, "reason": reason }));
            }
        }
        Ok(())
    }

    async fn still_there(&self, id: &str) -> Result<bool> {
        Ok(db::get(&self.db, db::UPLOADS, id).await?.is_some())
    }

    /// One action; returns whether the upload moved on.
    async fn step(&self, u: &mut Upload, action: Action) -> Result<bool> {
        let now = global::now_ms();
        let jitter = global::random();
        match action {
            Action::Presign { multipart } => {
                let mut body = json!({
                    "op": if multipart { "multipart" } else { "put" },
                    "filename": u.filename, "contentType": u.content_type, "size": u.size,
                });
                if let Some(p) = &u.project_id {
                    body["projectId"] = p.clone().into();
                }
                let (heard, answer) = self
                    .api("POST", "/api/assets/presign", Some(&body), Some(&u.idempotency_key), u.user.as_deref())
                    .await;
                match answer.filter(|_| is_ok(heard)) {
                    Some(a) => {
                        let id = a["assetId"].as_str().unwrap_or_default().to_string();
                        let phase = if multipart { parts_phase(&a, vec![]) } else { put_phase(&a) };
                        upload::presigned(u, id.clone(), phase);
                        db::save_ids(&self.db, u.user.as_deref(), &[(u.id.clone(), id)]).await?;
                        self.mark_blob(&u.id, u.asset_id.clone(), true).await?;
                        (self.on_id)();
                        Ok(true)
                    }
                    None => Ok(upload::after(&self.config, u, heard, now, jitter)),
                }
            }
            Action::Represign => {
                let id = u.asset_id.clone().unwrap_or_default();
                let (heard, answer) = if u.size > self.config.multipart_threshold_bytes {
                    self.api("GET", &format!("/api/assets/{id}/parts"), None, None, u.user.as_deref()).await
                } else {
                    let body = json!({ "op": "put", "assetId": id });
                    self.api("POST", "/api/assets/presign", Some(&body), None, u.user.as_deref()).await
                };
                match answer.filter(|_| is_ok(heard)) {
                    Some(a) if a.get("partSize").is_some() => {
                        let have = a["uploaded"].as_array().map(|v| part_numbers(v)).unwrap_or_default();
                        upload::presigned(u, id, parts_phase(&a, have));
                        Ok(true)
                    }
                    Some(a) => {
                        upload::presigned(u, id, put_phase(&a));
                        Ok(true)
                    }
                    None => Ok(upload::after(&self.config, u, heard, now, jitter)),
                }
            }
            Action::Put => {
                let Phase::Put { url, headers, .. } = u.phase.clone() else { return Ok(false) };
                let Some(blob) = self.blob(&u.id).await? else { return self.lost(u) };
                let heard = heard_of(put(&url, &headers, &blob).await);
                let moved = upload::after(&self.config, u, heard, global::now_ms(), jitter);
                self.progress(u);
                Ok(moved)
            }
            Action::Parts => self.parts(u).await,
            Action::Complete => {
                let id = u.asset_id.clone().unwrap_or_default();
                let (heard, _) = self
                    .api("POST", &format!("/api/assets/{id}/complete"), Some(&json!({})), None, u.user.as_deref())
                    .await;
                Ok(upload::after(&self.config, u, heard, now, jitter))
            }
            Action::Wait => Ok(false),
        }
    }

    /// Sends the parts the store does not have, in order.
    async fn parts(&self, u: &mut Upload) -> Result<bool> {
        let Phase::Parts { part_size, part_count, .. } = u.phase.clone() else { return Ok(false) };
        let id = u.asset_id.clone().unwrap_or_default();
        let jitter = global::random();
        // The record may lag the store (a worker killed after a part went):
        // the store's own list decides what is missing.
        let (heard, listed) = self.api("GET", &format!("/api/assets/{id}/parts"), None, None, u.user.as_deref()).await;
        let Some(listed) = listed.filter(|_| is_ok(heard)) else {
            return Ok(upload::after(&self.config, u, heard, global::now_ms(), jitter));
        };
        for n in listed["uploaded"].as_array().map(|v| part_numbers(v)).unwrap_or_default() {
            upload::part_done(u, n);
        }
        self.progress(u);
        let Phase::Parts { done, .. } = &u.phase else { return Ok(true) };
        let missing = upload::missing_parts(part_count, done);
        if missing.is_empty() {
            return Ok(true);
        }
        let Some(blob) = self.blob(&u.id).await? else { return self.lost(u) };
        let ask = json!({ "partNumbers": missing });
        let (heard, urls) =
            self.api("POST", &format!("/api/assets/{id}/parts"), Some(&ask), None, u.user.as_deref()).await;
        let Some(urls) = urls.filter(|_| is_ok(heard)) else {
            return Ok(upload::after(&self.config, u, heard, global::now_ms(), jitter));
        };
        let parts = urls["parts"].as_array().cloned().unwrap_or_default();
        // A few parts in flight at once: one connection alone leaves the
        // store idle between parts. Slices are views of the stored Blob.
        for batch in parts.chunks(PARTS_IN_FLIGHT) {
            let mut sent = Vec::new();
            for part in batch {
                let n = part["partNumber"].as_u64().unwrap_or(0) as u32;
                let Some((start, end)) = upload::part_range(n, part_size, u.size) else { continue };
                let slice = blob.slice_with_f64_and_f64(start as f64, end as f64)?;
                sent.push((n, start_put(part["url"].as_str().unwrap_or_default(), &[], &slice)));
            }
            let mut failed = None;
            for (n, answer) in sent {
                let status = answer_status(answer).await;
                if status.is_some_and(|s| (200..300).contains(&s)) {
                    upload::part_done(u, n);
                } else if failed.is_none() {
                    failed = Some(status);
                }
            }
            self.save(u).await?;
            self.progress(u);
            if let Some(status) = failed {
                return Ok(upload::after(&self.config, u, heard_of(status), global::now_ms(), jitter));
            }
        }
        Ok(true)
    }

    /// The blob of an upload vanished (cleared site data): nothing can be
    /// sent; the upload becomes a dead letter the page can discard.
    fn lost(&self, u: &mut Upload) -> Result<bool> {
        u.dead = Some("the file is no longer on this device (site data cleared?); discard it and upload again".into());
        Ok(false)
    }

    /// The origin confirmed: the record goes; the blob goes too unless it
    /// is kept as an evictable copy.
    async fn finish(&self, u: &Upload) -> Result<()> {
        db::delete_keys(&self.db, &[db::UPLOADS], std::slice::from_ref(&u.id)).await?;
        if self.config.keep_uploaded_blobs {
            self.mark_blob(&u.id, u.asset_id.clone(), false).await?;
        } else {
            db::delete_keys(&self.db, &[db::BLOBS, db::BLOB_META], std::slice::from_ref(&u.id)).await?;
        }
        self.progress(u);
        let body = json!({ "assetId": u.id, "serverId": u.asset_id, "size": u.size });
        self.events.emit(Event::Uploaded, &body);
        (self.on_id)();
        Ok(())
    }

    async fn mark_blob(&self, key: &str, asset_id: Option<String>, pinned: bool) -> Result<()> {
        let Some(bytes) = db::get_bytes(&self.db, db::BLOB_META, key).await? else { return Ok(()) };
        let Ok(mut meta) = reads::decode::<BlobMeta>(&bytes) else { return Ok(()) };
        meta.asset_id = asset_id;
        meta.pinned = pinned;
        db::put_if_present(&self.db, db::BLOBS, db::BLOB_META, key, &reads::encode(&meta)).await
    }

    /// A kept file, as a Blob whether it was stored as one or as bytes.
    async fn blob(&self, key: &str) -> Result<Option<Blob>> {
        let Some(stored) = db::get(&self.db, db::BLOBS, key).await? else { return Ok(None) };
        if stored.is_instance_of::<Blob>() {
            return Ok(Some(stored.unchecked_into()));
        }
        if stored.is_instance_of::<js_sys::ArrayBuffer>() {
            return Ok(Some(Blob::new_with_buffer_source_sequence(&js_sys::Array::of1(&stored))?));
        }
        Ok(None)
    }

    /// A same-origin API call with the user's cookie: `(status, JSON body)`.
    /// `user`: the upload's user, sent as `Outpost-Expect-User` so the origin
    /// refuses the call (412) under anyone else's session.
    async fn api(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        key: Option<&str>,
        user: Option<&str>,
    ) -> (Heard, Option<Value>) {
        let url = format!("{}{path}", self.origin);
        let answer = global::fetch_within(
            |signal| {
                let init = RequestInit::new();
                init.set_method(method);
                init.set_signal(Some(signal));
                init.set_credentials(web_sys::RequestCredentials::SameOrigin);
                let headers = web_sys::Headers::new()?;
                if let Some(b) = body {
                    headers.set("Content-Type", "application/json")?;
                    init.set_body(&JsValue::from_str(&b.to_string()));
                }
                if let Some(k) = key {
                    headers.set("Idempotency-Key", k)?;
                }
                if let Some(u) = user {
                    headers.set(crate::core::identity::EXPECT_HEADER, u)?;
                }
                init.set_headers(&headers);
                Ok(Request::new_with_str_and_init(&url, &init)?)
            },
            self.config.write_timeout_ms,
        )
        .await;
        let heard = answer.heard();
        if heard.is_hint() {
            // Writes waiting for the network may go too.
            self.clock.hint(Some(Part::Uploads));
        }
        let Fetched::Answer(r) = answer else { return (heard, None) };
        // Named by the origin: another user (412) is learned, and the pass
        // stops before the next call.
        if let Err(e) = self.identity.observe(&r).await {
            global::log_error("could not record the user the origin named", &e);
        }
        let json = match global::body_bytes(&r).await {
            Ok(bytes) => serde_json::from_slice(&bytes).ok(),
            Err(_) => None,
        };
        (heard, json)
    }

    /// `{assetId, serverId, filename, size, done, state, reason?, retryAt?}`
    /// of the current user's uploads.
    pub async fn status(&self) -> Result<Vec<UploadStatus>> {
        let user = self.identity.current();
        Ok(self.uploads().await?.iter().filter(|u| u.user == user).map(upload::status).collect())
    }

    /// Forgets the users' kept copies (on logout); files not yet uploaded
    /// stay, parked for their user.
    pub async fn forget_copies(&self) -> Result<()> {
        let keys: Vec<String> = self
            .blob_metas()
            .await?
            .into_iter()
            .filter(|(_, m)| !m.pinned && m.user.is_some())
            .map(|(k, _)| k)
            .collect();
        db::delete_keys(&self.db, &[db::BLOBS, db::BLOB_META], &keys).await
    }

    /// Bytes kept on the device and the budget.
    pub async fn storage(&self) -> Result<(u64, u64)> {
        let used = self.blob_metas().await?.iter().map(|(_, m)| m.size).sum();
        let quota = global::storage_estimate().await.map(|(_, q)| q as u64);
        Ok((used, upload::blob_budget(self.config.blob_budget_bytes, quota)))
    }

    /// Retries a dead upload; `None` when `id` is not one of this user's.
    pub async fn retry(self: &Rc<Self>, id: &str) -> Result<Option<bool>> {
        let user = self.identity.current();
        let Some(mut u) = self.uploads().await?.into_iter().find(|u| u.id == id && u.user == user) else {
            return Ok(None);
        };
        let revived = upload::revive(&mut u, global::now_ms());
        if revived {
            self.save(&u).await?;
            self.kick(Trigger::Explicit);
        }
        Ok(Some(revived))
    }

    /// Drops a dead upload and its file; `None` when `id` is not one of
    /// this user's uploads, `Some(false)` when it is still going.
    pub async fn discard(&self, id: &str) -> Result<Option<bool>> {
        let user = self.identity.current();
        let Some(u) = self.uploads().await?.into_iter().find(|u| u.id == id && u.user == user) else {
            return Ok(None);
        };
        if u.dead.is_none() {
            return Ok(Some(false));
        }
        let key = [id.to_string()];
        db::delete_keys(&self.db, &[db::UPLOADS, db::BLOBS, db::BLOB_META], &key).await?;
        Ok(Some(true))
    }

    /// `GET {contentPath}`: the local blob when there (a use, for the LRU),
    /// else the store's copy through a presigned GET, kept if it fits.
    pub async fn content(self: &Rc<Self>, request: Request) -> Result<Response> {
        let url = request.url();
        let path = crate::core::url::split(&url).map(|p| p.path.to_string()).unwrap_or_default();
        let id = path.trim_end_matches("/content").rsplit('/').next().unwrap_or_default().to_string();
        let user = self.identity.current();
        let metas = self.blob_metas().await?;
        let local =
            metas.iter().find(|(k, m)| m.user == user && (*k == id || m.asset_id.as_deref() == Some(id.as_str())));
        if let Some((key, meta)) = local {
            if let Some(blob) = self.blob(key).await? {
                let touched = BlobMeta { last_used: global::now_ms(), ..meta.clone() };
                db::put_if_present(&self.db, db::BLOBS, db::BLOB_META, key, &reads::encode(&touched)).await?;
                return blob_response(&blob, &meta.content_type, "local");
            }
        }
        // Not on the device: a temp id may have its server id by now.
        let server_id = if id.starts_with(upload::TEMP_PREFIX) {
            let user = self.identity.current();
            db::id_map(&self.db, user.as_deref()).await?.into_iter().find(|(t, _)| *t == id).map(|(_, s)| s)
        } else {
            Some(id.clone())
        };
        let Some(server_id) = server_id else {
            return api_error(
                404,
                "not_found",
                &format!("No asset {id} is on this device or known to the origin yet."),
            );
        };
        let (heard, answer) = self
            .api("POST", "/api/assets/presign", Some(&json!({ "op": "get", "assetId": server_id })), None, None)
            .await;
        let presigned = match (heard.status(), answer) {
            (Some(s), Some(a)) if (200..300).contains(&s) => a,
            (Some(s), Some(a)) => {
                let r = response::json(s, &a.to_string())?;
                return Ok(r);
            }
            _ => {
                return api_error(
                    504,
                    "offline",
                    &format!(
                    "Asset {server_id} is not on this device and the origin could not be reached; try again online."
                ),
                )
            }
        };
        let init = RequestInit::new();
        let fetched =
            global::fetch(&Request::new_with_str_and_init(presigned["url"].as_str().unwrap_or_default(), &init)?).await;
        let Ok(r) = fetched else {
            return api_error(504, "offline", "The object store could not be reached; try again online.");
        };
        if !r.ok() {
            return api_error(502, "store_error", &format!("The object store answered HTTP {}.", r.status()));
        }
        let content_type = r.headers().get("content-type")?.unwrap_or_else(|| "application/octet-stream".into());
        let blob: Blob = await_js(r.blob()?).await?.dyn_into()?;
        let meta = BlobMeta {
            size: blob.size() as u64,
            last_used: global::now_ms(),
            pinned: false,
            asset_id: Some(server_id.clone()),
            user,
            content_type: content_type.clone(),
        };
        // A copy that does not fit is simply not kept.
        let _ = self.keep(&server_id, &blob, &meta, None).await;
        blob_response(&blob, &content_type, "network")
    }
}

fn blob_response(blob: &Blob, content_type: &str, source: &str) -> Result<Response> {
    let headers = web_sys::Headers::new()?;
    headers.set("Content-Type", content_type)?;
    // A kept file is data, never a page of the app (see `core::content`).
    for (name, value) in crate::core::content::headers(content_type) {
        headers.set(name, value)?;
    }
    headers.set("Outpost-Source", if source == "local" { "worker" } else { "store" })?;
    if source == "local" {
        headers.set("Outpost-Cache", "local")?;
    }
    let init = web_sys::ResponseInit::new();
    init.set_status(200);
    init.set_headers(&headers);
    Ok(Response::new_with_opt_blob_and_init(Some(blob), &init)?)
}

fn put_phase(a: &Value) -> Phase {
    let headers = a["headers"]
        .as_object()
        .map(|h| h.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
        .unwrap_or_default();
    // The URL's lifetime as the origin counts it, placed on this clock.
    let now = global::now_ms();
    let ttl = a["expiresAt"].as_u64().unwrap_or(0).saturating_sub(a["issuedAt"].as_u64().unwrap_or(now));
    Phase::Put {
        url: a["url"].as_str().unwrap_or_default().to_string(),
        headers,
        issued_at: now,
        expires_at: now + ttl,
    }
}

fn parts_phase(a: &Value, done: Vec<u32>) -> Phase {
    let part_size = a["partSize"].as_u64().unwrap_or(8 * 1024 * 1024);
    let part_count = a["partCount"].as_u64().unwrap_or(1) as u32;
    Phase::Parts { part_size, part_count, done }
}

fn part_numbers(listed: &[Value]) -> Vec<u32> {
    listed.iter().filter_map(|p| p["partNumber"].as_u64()).map(|n| n as u32).collect()
}

fn heard_of(status: Option<u16>) -> Heard {
    status.map_or(Heard::Nothing, Heard::Status)
}

fn is_ok(heard: Heard) -> bool {
    matches!(heard, Heard::Status(200..=299))
}

/// Parts of one upload sent at the same time.
const PARTS_IN_FLIGHT: usize = 3;

/// PUTs `body` to the store; the status, None when there was no answer.
async fn put(url: &str, headers: &[(String, String)], body: &Blob) -> Option<u16> {
    answer_status(start_put(url, headers, body)).await
}

async fn answer_status(answer: Option<Promise>) -> Option<u16> {
    let r: Response = JsFuture::from(answer?).await.ok()?.dyn_into().ok()?;
    Some(r.status())
}

/// Starts a PUT of `body` to the store (None: the request could not be made).
fn start_put(url: &str, headers: &[(String, String)], body: &Blob) -> Option<Promise> {
    let init = RequestInit::new();
    init.set_method("PUT");
    init.set_credentials(web_sys::RequestCredentials::Omit);
    let h = web_sys::Headers::new().ok()?;
    for (k, v) in headers {
        h.set(k, v).ok()?;
    }
    init.set_headers(&h);
    init.set_body(body);
    let request = Request::new_with_str_and_init(url, &init).ok()?;
    Some(global::scope().fetch_with_request(&request))
}
