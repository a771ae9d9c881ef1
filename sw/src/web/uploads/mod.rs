//! Carries out uploads and asset content: files kept in IndexedDB as
//! browser Blobs, sent to the object store through presigned URLs, served
//! back from the device, and evicted under the byte budget. The decisions
//! are `core::upload`'s.

use super::error::Result;
use crate::web::global::Whole;
use std::rc::Rc;

use crate::core::json::obj;
use crate::core::text;
use crate::web::db::Db;
use js_sys::Promise;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Blob, Request, Response};

use super::clock::{Clock, Part};
use super::events::Events;
use super::identity::Identity;
use super::runner::Runner;
use super::{db, global, response};
use crate::core::clock::{self, Trigger};
use crate::core::config::Config;
use crate::core::identity::Source;
use crate::core::protocol::{Event, UploadStatus};
use crate::core::record::{DeadReason, FileRecord, RecordError};
use crate::core::text::cat;
use crate::core::upload::api::{self, Call, PartPut, Then};
use crate::core::upload::{self, BlobMeta, Meta, Upload};

mod blobs;
mod content;
mod http;

use http::{answer_heard, start_put};

const LOCK: &str = "outpost-uploads";
/// Steps one upload may take in one pass.
const MAX_STEPS_PER_PASS: usize = 64;

pub struct Uploads {
    config: Rc<Config>,
    db: Rc<Db>,
    identity: Rc<Identity>,
    origin: String,
    events: Events,
    clock: Rc<Clock>,
    runner: Runner,
    /// Called when an upload got its server id (queued writes may now go).
    on_id: Box<dyn Fn()>,
}

fn api_error(status: u16, code: &str, message: &str) -> Result<Response> {
    response::json(status, &obj! { "error": obj! { "code": code, "message": message } }.to_json())
}

async fn await_js(p: Promise) -> Result<JsValue> {
    Ok(crate::web::global::wait(p).await?)
}

impl Uploads {
    pub fn new(
        config: Rc<Config>,
        db: Rc<Db>,
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
            text::split(query, b'&').find_map(|kv| {
                let (k, v) = text::split_once(kv, b'=')?;
                let v = text::replace(v, "+", " ");
                (k == name).then(|| js_sys::decode_uri_component(&v).ok()?.as_string()).flatten()
            })
        };
        let content_type = global::header(&request.headers(), "content-type")
            .filter(|ct| !ct.is_empty())
            .unwrap_or_else(|| "application/octet-stream".into());
        let blob: Blob = await_js(global::blob(&request)?).whole().await?.dyn_into()?;
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
        let id = cat!(upload::TEMP_PREFIX, global::uuid());
        let now = global::now_ms();
        let user = self.identity.current();
        let record = Upload::new(id.clone(), user.clone(), meta, global::uuid(), now);
        let blob_meta = BlobMeta { size, last_used: now, pinned: true, asset_id: None, user, content_type };
        if let Err((code, message)) = self.keep(&id, &blob, &blob_meta, Some(&record)).whole().await? {
            return api_error(507, code, &message);
        }
        self.progress(&record);
        self.kick(Trigger::Scheduled);
        let body = obj! { "queued": true, "assetId": &id, "size": size }.to_json();
        response::json_queued(202, &body, Some(&id))
    }

    async fn uploads(&self) -> Result<Vec<Upload>> {
        let mut all = Vec::new();
        for (key, bytes) in &db::records(&self.db, db::UPLOADS).whole().await? {
            match upload::decode(bytes) {
                Ok(u) => all.push(u),
                Err(RecordError::UnknownSchema(_)) => {} // a newer build's: left to it
                Err(e) => self.quarantine(db::UPLOADS, FileRecord::Upload, key, bytes, &e).whole().await?,
            }
        }
        crate::core::sort::sort_by(&mut all, |a: &Upload, b: &Upload| (a.created_at, &a.id) < (b.created_at, &b.id));
        Ok(all)
    }

    async fn save(&self, u: &Upload) -> Result<()> {
        db::put_all(&self.db, &[(db::UPLOADS, &u.id, db::bytes(&upload::encode(u)))]).whole().await
    }

    fn progress(&self, u: &Upload) {
        let mut p = obj! { "assetId": &u.id, "done": u.bytes_done(), "total": u.size };
        if let (Some(s), Some(o)) = (&u.asset_id, p.as_object_mut()) {
            o.insert("serverId", s.into());
        }
        self.events.emit(Event::UploadProgress, p);
    }

    /// Runs due uploads in the background.
    pub fn kick(self: &Rc<Self>, trigger: Trigger) {
        let me = Rc::clone(self);
        global::spawn(async move {
            if let Err(e) = me.replay(trigger).whole().await {
                global::log_error("upload pass failed", &e);
            }
        });
    }

    /// Runs due uploads (one pass at a time, across workers too), then
    /// tells the clock when the next one is due.
    pub async fn replay(self: &Rc<Self>, trigger: Trigger) -> Result<()> {
        let me = Rc::clone(self);
        self.runner
            .run(trigger, &move |trigger| {
                let me = Rc::clone(&me);
                global::work(async move {
                    me.clock.begin(Part::Uploads);
                    let inner = Rc::clone(&me);
                    let pass = global::with_lock(LOCK, async move {
                        inner.pass(trigger).whole().await.map(|()| JsValue::UNDEFINED)
                    });
                    let result = pass.whole().await.map(drop);
                    let now = global::now_ms();
                    let (at, silent) = match me.uploads().whole().await {
                        Ok(all) => upload::next_wake(&all, me.identity.current().as_deref()),
                        Err(_) => (Some(now), true),
                    };
                    me.clock.report(Part::Uploads, clock::after_pass(at, now), silent);
                    result
                })
            })
            .whole()
            .await
    }

    /// Every due upload of the current user, one after another, each as far
    /// as it goes.
    async fn pass(&self, trigger: Trigger) -> Result<()> {
        self.identity.reload().whole().await?;
        if self.identity.logout_pending() {
            return Ok(()); // as for writes: the owed logout goes first
        }
        let user = self.identity.current();
        for u in &mut self.uploads().whole().await? {
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
                let Some(call) = api::poll(&self.config, u, global::now_ms(), trigger) else { break };
                let sent_at = self.identity.generation();
                let moved = self.step(u, call).whole().await?;
                if u.last_status == Some(401) && u.dead.is_none() {
                    // Parked: the session is gone, nothing more goes as this user
                    // (unless another user logged in meanwhile: `apply` knows).
                    let learned = crate::core::identity::learn(Source::Replay, Some(401), &[]);
                    self.identity.apply(&learned, sent_at).whole().await?;
                }
                if !self.still_there(&u.id).whole().await? {
                    return Ok(()); // discarded meanwhile
                }
                self.save(u).whole().await?;
                if u.is_done() {
                    self.finish(u).whole().await?;
                    break;
                }
                if !moved {
                    break;
                }
            }
            if let (Some(reason), false) = (&u.dead, was_dead) {
                let body = obj! { "id": &u.id, "assetId": &u.id, "reason": reason.text() };
                self.events.emit(Event::DeadLettered, body);
            }
        }
        Ok(())
    }

    async fn still_there(&self, id: &str) -> Result<bool> {
        Ok(db::get(&self.db, db::UPLOADS, id).whole().await?.is_some())
    }

    /// Makes the calls of one step, as the core names them, and hands each
    /// answer back. Returns whether the upload moved on.
    async fn step(&self, u: &mut Upload, first: Call) -> Result<bool> {
        let mut call = first;
        loop {
            let jitter = global::random();
            let then = match call {
                Call::Origin(c) => {
                    let (heard, body) = self.api(&c, u.user.as_deref()).whole().await;
                    api::on_origin(&self.config, u, c.step, heard, &body, global::now_ms(), jitter)
                }
                Call::Put { url, headers } => {
                    let Some(blob) = self.blob(&u.id).whole().await? else { return Ok(self.lost(u)) };
                    let heard = answer_heard(start_put(&url, &headers, &blob)).whole().await;
                    let moved = api::on_put(&self.config, u, heard, global::now_ms(), jitter);
                    self.progress(u);
                    return Ok(moved);
                }
                Call::Parts(puts) => return self.parts(u, puts).whole().await,
            };
            match then {
                Then::Saved { moved } => return Ok(moved),
                Then::Next(next) => {
                    self.progress(u);
                    call = next;
                }
                Then::Presigned { asset_id } => {
                    db::save_ids(&self.db, u.user.as_deref(), &[(u.id.clone(), asset_id)]).whole().await?;
                    self.mark_blob(&u.id, u.asset_id.clone(), true).whole().await?;
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
        let Some(blob) = self.blob(&u.id).whole().await? else { return Ok(self.lost(u)) };
        for batch in puts.chunks(PARTS_IN_FLIGHT) {
            let mut sent = Vec::new();
            for part in batch {
                let slice = global::slice(&blob, part.start, part.end);
                sent.push((part.number, start_put(&part.url, &[], &slice)));
            }
            let mut heard = Vec::new();
            for (n, answer) in &sent {
                heard.push((*n, answer_heard(answer.clone()).whole().await));
            }
            let ended = api::on_parts(&self.config, u, &heard, global::now_ms(), global::random());
            self.save(u).whole().await?;
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
        db::delete_keys(&self.db, &[db::UPLOADS], std::slice::from_ref(&u.id)).whole().await?;
        if self.config.keep_uploaded_blobs {
            self.mark_blob(&u.id, u.asset_id.clone(), false).whole().await?;
        } else {
            db::delete_keys(&self.db, &[db::BLOBS, db::BLOB_META], std::slice::from_ref(&u.id)).whole().await?;
        }
        self.progress(u);
        let body = obj! { "assetId": &u.id, "serverId": u.asset_id.as_deref(), "size": u.size };
        self.events.emit(Event::Uploaded, body);
        (self.on_id)();
        Ok(())
    }

    /// `{assetId, serverId, filename, size, done, state, reason?, retryAt?}`
    /// of the current user's uploads.
    pub async fn status(&self) -> Result<Vec<UploadStatus>> {
        let user = self.identity.current();
        let mut status = Vec::new();
        for u in &self.uploads().whole().await? {
            if u.user == user {
                status.push(upload::status(u));
            }
        }
        Ok(status)
    }

    /// The current user's upload `id`.
    async fn find(&self, id: &str) -> Result<Option<Upload>> {
        let user = self.identity.current();
        for u in &self.uploads().whole().await? {
            if u.id == id && u.user == user {
                return Ok(Some(u.clone()));
            }
        }
        Ok(None)
    }

    /// Retries a dead upload; `None` when `id` is not one of this user's.
    pub async fn retry(self: &Rc<Self>, id: &str) -> Result<Option<bool>> {
        let Some(mut u) = self.find(id).whole().await? else { return Ok(None) };
        let revived = upload::revive(&mut u, global::now_ms());
        if revived {
            self.save(&u).whole().await?;
            self.kick(Trigger::Explicit);
        }
        Ok(Some(revived))
    }

    /// Drops a dead upload and its file; `None` when `id` is not one of
    /// this user's uploads, `Some(false)` when it is still going.
    pub async fn discard(&self, id: &str) -> Result<Option<bool>> {
        let Some(u) = self.find(id).whole().await? else { return Ok(None) };
        if u.dead.is_none() {
            return Ok(Some(false));
        }
        let key = [id.to_string()];
        db::delete_keys(&self.db, &[db::UPLOADS, db::BLOBS, db::BLOB_META], &key).whole().await?;
        Ok(Some(true))
    }
}

/// Parts of one upload sent at the same time.
const PARTS_IN_FLIGHT: usize = 3;
