//! Carries out uploads and asset content: files kept in IndexedDB as
//! browser Blobs, sent to the object store through presigned URLs, served
//! back from the device, and evicted under the byte budget. The decisions
//! are `core::upload`'s.

use super::error::{Error, Result};
use std::rc::Rc;

use js_sys::Promise;
use rexie::Rexie;
use serde::Serialize;
use serde_json::json;
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
use crate::core::record::{self, DeadReason, FileRecord, RecordError};
use crate::core::upload::api::{self, Call, OriginCall, PartPut, Then};
use crate::core::upload::{self, BlobMeta, Make, Meta, Upload};

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
        let (refused, budget) = self.room_for(meta.size).await?;
        if let Some(message) = refused {
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
                    self.evict(Make::AllEvictable).await?;
                    evicted = true;
                }
                Err(e) if e.is_quota() => {
                    let message = upload::quota_refused(meta.size);
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
                    let message = upload::storage_refused(meta.size);
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
        let room = upload::plan_room(&blobs, budget, Make::RoomFor(incoming));
        if room.fits {
            self.drop_blobs(&room.evict, room.freed_bytes).await?;
            return Ok((None, budget));
        }
        // Refused: nothing already stored is touched.
        Ok((Some(upload::no_room(incoming, budget, &room)), budget))
    }

    /// Evicts what the plan for `make` names.
    async fn evict(&self, make: Make) -> Result<()> {
        let blobs = self.blob_metas().await?;
        let room = upload::plan_room(&blobs, self.config.blob_budget_bytes, make);
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
        let mut metas = Vec::new();
        for (key, bytes) in db::records(&self.db, db::BLOB_META).await? {
            match (key.as_string(), reads::decode::<BlobMeta>(&bytes)) {
                (Some(k), Ok(meta)) => metas.push((k, meta)),
                (_, Err(RecordError::UnknownSchema(_))) => {} // a newer build's: left to it
                (_, Err(e)) => self.quarantine(db::BLOB_META, FileRecord::Blob, &key, &bytes, &e).await?,
                (None, Ok(_)) => {} // not a key of ours
            }
        }
        Ok(metas)
    }

    async fn uploads(&self) -> Result<Vec<Upload>> {
        let mut all = Vec::new();
        for (key, bytes) in db::records(&self.db, db::UPLOADS).await? {
            match upload::decode(&bytes) {
                Ok(u) => all.push(u),
                Err(RecordError::UnknownSchema(_)) => {} // a newer build's: left to it
                Err(e) => self.quarantine(db::UPLOADS, FileRecord::Upload, &key, &bytes, &e).await?,
            }
        }
        all.sort_by(|a: &Upload, b: &Upload| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(all)
    }

    /// An unreadable upload or blob record goes to the quarantine, where the
    /// page sees it as a dead letter and can discard it with its file,
    /// instead of vanishing from view while its file holds the budget.
    async fn quarantine(
        &self,
        store: &str,
        kind: FileRecord,
        key: &JsValue,
        bytes: &[u8],
        problem: &RecordError,
    ) -> Result<()> {
        let kept_as = record::quarantine_key(kind, &db::key_text(key));
        let user = self.identity.current();
        db::quarantine_from(&self.db, store, key, &JsValue::from_str(&kept_as), bytes, user.as_deref()).await?;
        let reason = format!("unreadable record: {problem}");
        self.events.emit(Event::DeadLettered, &json!({ "id": kept_as, "reason": reason }));
        Ok(())
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
                let Some(call) = api::poll(&self.config, &u, global::now_ms(), trigger) else { break };
                let moved = self.step(&mut u, call).await?;
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
                let body = json!({ "id": u.id, "assetId": u.id, "reason": reason.text() });
                self.events.emit(Event::DeadLettered, &body);
            }
        }
        Ok(())
    }

    async fn still_there(&self, id: &str) -> Result<bool> {
        Ok(db::get(&self.db, db::UPLOADS, id).await?.is_some())
    }

    /// Makes the calls of one step, as the core names them, and hands each
    /// answer back. Returns whether the upload moved on.
    async fn step(&self, u: &mut Upload, first: Call) -> Result<bool> {
        let mut call = first;
        loop {
            let jitter = global::random();
            let then = match call {
                Call::Origin(c) => {
                    let (heard, body) = self.api(&c, u.user.as_deref()).await;
                    api::on_origin(&self.config, u, c.step, heard, &body, global::now_ms(), jitter)
                }
                Call::Put { url, headers } => {
                    let Some(blob) = self.blob(&u.id).await? else { return Ok(self.lost(u)) };
                    let heard = answer_heard(start_put(&url, &headers, &blob)).await;
                    let moved = api::on_put(&self.config, u, heard, global::now_ms(), jitter);
                    self.progress(u);
                    return Ok(moved);
                }
                Call::Parts(puts) => return self.parts(u, puts).await,
            };
            match then {
                Then::Saved { moved } => return Ok(moved),
                Then::Next(next) => {
                    self.progress(u);
                    call = next;
                }
                Then::Presigned { asset_id } => {
                    db::save_ids(&self.db, u.user.as_deref(), &[(u.id.clone(), asset_id)]).await?;
                    self.mark_blob(&u.id, u.asset_id.clone(), true).await?;
                    (self.on_id)();
                    return Ok(true);
                }
            }
        }
    }

    /// PUTs the parts the core named, a few at a time: one connection alone
    /// leaves the store idle between parts. Slices are views of the stored
    /// Blob, never copies in wasm memory.
    async fn parts(&self, u: &mut Upload, puts: Vec<PartPut>) -> Result<bool> {
        let Some(blob) = self.blob(&u.id).await? else { return Ok(self.lost(u)) };
        for batch in puts.chunks(PARTS_IN_FLIGHT) {
            let mut sent = Vec::new();
            for part in batch {
                let slice = blob.slice_with_f64_and_f64(part.start as f64, part.end as f64)?;
                sent.push((part.number, start_put(&part.url, &[], &slice)));
            }
            let mut heard = Vec::new();
            for (n, answer) in sent {
                heard.push((n, answer_heard(answer).await));
            }
            let ended = api::on_parts(&self.config, u, &heard, global::now_ms(), global::random());
            self.save(u).await?;
            self.progress(u);
            if let Some(moved) = ended {
                return Ok(moved);
            }
        }
        Ok(true)
    }

    /// The blob of an upload vanished (cleared site data): nothing can be
    /// sent; the upload becomes a dead letter the page can discard.
    fn lost(&self, u: &mut Upload) -> bool {
        u.dead = Some(DeadReason::FileGone);
        false
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

    /// A same-origin API call with the user's cookie: what was heard, and
    /// the body (empty without an answer). `user`: the upload's user, sent
    /// as `Outpost-Expect-User` so the origin refuses the call (412) under
    /// anyone else's session.
    async fn api(&self, call: &OriginCall, user: Option<&str>) -> (Heard, Vec<u8>) {
        let url = format!("{}{}", self.origin, call.path);
        let answer = global::fetch_within(
            |signal| {
                let init = RequestInit::new();
                init.set_method(call.method.as_str());
                init.set_signal(Some(signal));
                init.set_credentials(web_sys::RequestCredentials::SameOrigin);
                let headers = web_sys::Headers::new()?;
                if let Some(b) = &call.body {
                    headers.set("Content-Type", "application/json")?;
                    init.set_body(&JsValue::from_str(b));
                }
                if let Some(k) = &call.idempotency_key {
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
        let Fetched::Answer(r) = answer else { return (heard, Vec::new()) };
        // Named by the origin: another user (412) is learned, and the pass
        // stops before the next call.
        if let Err(e) = self.identity.observe(&r).await {
            global::log_error("could not record the user the origin named", &e);
        }
        (heard, global::body_bytes(&r).await.unwrap_or_default())
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
        let (heard, answer) = self.api(&api::download(&self.config, &server_id), None).await;
        let url = match heard.status() {
            Some(200..=299) => match api::download_url(&answer) {
                Some(url) => url,
                None => {
                    let message = format!("The origin's answer for asset {server_id} holds no download URL.");
                    return api_error(502, "origin_error", &message);
                }
            },
            // The origin's refusal (404, 403…) goes to the page as it is.
            Some(s) if serde_json::from_slice::<serde_json::Value>(&answer).is_ok() => {
                return response::json(s, &String::from_utf8_lossy(&answer));
            }
            Some(s) => {
                let message = format!("The origin answered HTTP {s} for asset {server_id}.");
                return api_error(s, "origin_error", &message);
            }
            None => {
                let message = format!(
                    "Asset {server_id} is not on this device and the origin could not be reached; try again online."
                );
                return api_error(504, "offline", &message);
            }
        };
        let init = RequestInit::new();
        let fetched = global::fetch(&Request::new_with_str_and_init(&url, &init)?).await;
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

/// Parts of one upload sent at the same time.
const PARTS_IN_FLIGHT: usize = 3;

/// What the retry clock hears of a store PUT (no answer: `Nothing`).
async fn answer_heard(answer: Option<Promise>) -> Heard {
    let status = async { Some(JsFuture::from(answer?).await.ok()?.dyn_into::<Response>().ok()?.status()) };
    status.await.map_or(Heard::Nothing, Heard::Status)
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
