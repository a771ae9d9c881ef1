//! The files kept on the device: stored within the budget (evicting what
//! `core::upload::room` names), read back as Blobs, marked pinned or
//! evictable, and quarantined when their records cannot be read.

use crate::core::json::obj;
use crate::web::global::Whole;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::Blob;

use super::{await_js, Uploads};
use crate::core::protocol::Event;
use crate::core::reads;
use crate::core::record::{self, FileRecord, RecordError};
use crate::core::text::cat;
use crate::core::upload::{self, BlobMeta, Make, Upload};
use crate::web::db;
use crate::web::error::{Error, Result};
use crate::web::global;

impl Uploads {
    /// Stores a blob (and its upload record) within the budget: evicts what
    /// the plan names, and on a quota error from the browser evicts and
    /// tries once more. `Ok(Err(message))`: it does not fit, nothing was
    /// stored and nothing stored before was touched.
    pub(super) async fn keep(
        &self,
        key: &str,
        blob: &Blob,
        meta: &BlobMeta,
        record: Option<&Upload>,
    ) -> Result<Result<(), (&'static str, String)>> {
        let (refused, budget) = self.room_for(meta.size).whole().await?;
        if let Some(message) = refused {
            self.events.emit(Event::QuotaLow, obj! { "needed": meta.size, "budget": budget, "message": &message });
            return Ok(Err(("storage_full", message)));
        }
        let mut file: JsValue = blob.clone().into();
        let mut evicted = false;
        loop {
            let mut rows = vec![(db::BLOBS, key, file.clone()), (db::BLOB_META, key, db::bytes(&reads::encode(meta)))];
            if let Some(r) = record {
                rows.push((db::UPLOADS, key, db::bytes(&upload::encode(r))));
            }
            let stored = match db::put_all(&self.db, &rows).whole().await {
                // Some engines report a full quota as another error (see
                // `upload::over_quota`): the estimate tells.
                Err(e) if !e.is_quota() && self.looks_full(meta.size).whole().await => {
                    let message = cat!("the storage estimate says the quota is full (", e.text(), ")");
                    Err(Error::new("QuotaExceededError", message))
                }
                other => other,
            };
            match stored {
                Ok(()) => return Ok(Ok(())),
                Err(e) if e.is_quota() && !evicted => {
                    // The browser's own limit came first: free what is safe,
                    // then try once more.
                    self.evict(Make::AllEvictable).whole().await?;
                    evicted = true;
                }
                Err(e) if e.is_quota() => {
                    let message = upload::quota_refused(meta.size);
                    self.events.emit(Event::QuotaLow, obj! { "needed": meta.size, "message": &message });
                    return Ok(Err(("storage_full", message)));
                }
                Err(_) if file.is_instance_of::<Blob>() => {
                    // WebKit refuses Blobs in IndexedDB in ephemeral sessions
                    // (Safari's private windows, automation) with a bare
                    // error, but takes the same bytes as an ArrayBuffer.
                    file = await_js(global::array_buffer(blob)?).whole().await?;
                }
                Err(e) => {
                    global::log_error("the browser refused to store a file", &e);
                    let message = upload::storage_refused(meta.size);
                    return Ok(Err(("storage_refused", message)));
                }
            }
        }
    }

    pub(super) async fn looks_full(&self, incoming: u64) -> bool {
        global::storage_estimate()
            .whole()
            .await
            .is_some_and(|(usage, quota)| upload::over_quota(usage, quota, incoming))
    }

    /// Evicts to make room for `incoming` bytes; `(Some(message), budget)`
    /// when they cannot fit.
    pub(super) async fn room_for(&self, incoming: u64) -> Result<(Option<String>, u64)> {
        let blobs = self.blob_metas().whole().await?;
        let quota = global::storage_estimate().whole().await.map(|(_, q)| q as u64);
        let budget = upload::blob_budget(self.config.blob_budget_bytes, quota);
        let room = upload::plan_room(&blobs, budget, Make::RoomFor(incoming));
        if room.fits {
            self.drop_blobs(&room.evict, room.freed_bytes).whole().await?;
            return Ok((None, budget));
        }
        // Refused: nothing already stored is touched.
        Ok((Some(upload::no_room(incoming, budget, &room)), budget))
    }

    /// Evicts what the plan for `make` names.
    pub(super) async fn evict(&self, make: Make) -> Result<()> {
        let blobs = self.blob_metas().whole().await?;
        let room = upload::plan_room(&blobs, self.config.blob_budget_bytes, make);
        self.drop_blobs(&room.evict, room.freed_bytes).whole().await
    }

    pub(super) async fn drop_blobs(&self, keys: &[String], bytes: u64) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        db::delete_keys(&self.db, &[db::BLOBS, db::BLOB_META], keys).whole().await?;
        self.events.emit(Event::Evicted, obj! { "keys": keys.to_vec(), "bytes": bytes });
        Ok(())
    }

    pub(super) async fn blob_metas(&self) -> Result<Vec<(String, BlobMeta)>> {
        let mut metas = Vec::new();
        for (key, bytes) in &db::records(&self.db, db::BLOB_META).whole().await? {
            match (key.as_string(), reads::decode::<BlobMeta>(bytes)) {
                (Some(k), Ok(meta)) => metas.push((k, meta)),
                (_, Err(RecordError::UnknownSchema(_))) => {} // a newer build's: left to it
                (_, Err(e)) => self.quarantine(db::BLOB_META, FileRecord::Blob, key, bytes, &e).whole().await?,
                (None, Ok(_)) => {} // not a key of ours
            }
        }
        Ok(metas)
    }

    /// An unreadable upload or blob record goes to the quarantine, where the
    /// page sees it as a dead letter and can discard it with its file,
    /// instead of vanishing from view while its file holds the budget.
    pub(super) async fn quarantine(
        &self,
        store: &str,
        kind: FileRecord,
        key: &JsValue,
        bytes: &[u8],
        problem: &RecordError,
    ) -> Result<()> {
        let kept_as = record::quarantine_key(kind, &db::key_text(key));
        let user = self.identity.current();
        db::quarantine_from(&self.db, store, key, &JsValue::from_str(&kept_as), bytes, user.as_deref()).whole().await?;
        let reason = cat!("unreadable record: ", problem.text());
        self.events.emit(Event::DeadLettered, obj! { "id": kept_as, "reason": reason });
        Ok(())
    }

    pub(super) async fn mark_blob(&self, key: &str, asset_id: Option<String>, pinned: bool) -> Result<()> {
        let Some(bytes) = db::get_bytes(&self.db, db::BLOB_META, key).whole().await? else { return Ok(()) };
        let Ok(mut meta) = reads::decode::<BlobMeta>(&bytes) else { return Ok(()) };
        meta.asset_id = asset_id;
        meta.pinned = pinned;
        db::put_if_present(&self.db, db::BLOBS, db::BLOB_META, key, &reads::encode(&meta)).whole().await
    }

    /// A kept file, as a Blob whether it was stored as one or as bytes.
    pub(super) async fn blob(&self, key: &str) -> Result<Option<Blob>> {
        let Some(stored) = db::get(&self.db, db::BLOBS, key).whole().await? else { return Ok(None) };
        if stored.is_instance_of::<Blob>() {
            return Ok(Some(stored.unchecked_into()));
        }
        if stored.is_instance_of::<js_sys::ArrayBuffer>() {
            return Ok(Some(global::blob_of(&stored)));
        }
        Ok(None)
    }

    /// Forgets the users' kept copies (on logout); files not yet uploaded
    /// stay, parked for their user.
    pub async fn forget_copies(&self) -> Result<()> {
        let mut keys = Vec::new();
        for (k, m) in &self.blob_metas().whole().await? {
            if !m.pinned && m.user.is_some() {
                keys.push(k.clone());
            }
        }
        db::delete_keys(&self.db, &[db::BLOBS, db::BLOB_META], &keys).whole().await
    }

    /// Bytes kept on the device, and the budget given the browser's quota.
    pub async fn storage(&self, quota: Option<u64>) -> Result<(u64, u64)> {
        let mut used = 0;
        for (_, m) in &self.blob_metas().whole().await? {
            used += m.size;
        }
        Ok((used, upload::blob_budget(self.config.blob_budget_bytes, quota)))
    }
}
