//! The worker's IndexedDB: the only module that knows the database's
//! name, its stores and its upgrades.
//!
//! - `outbox`: encoded entries (`core::record`), keyed by entry id;
//! - `quarantine`: records that could not be decoded, kept for the page to
//!   see and discard, never replayed (outbox ids; `upload:<id>` and
//!   `blob:<key>` for file records);
//! - `meta`: counters, the current user (`user`), an owed logout
//!   (`logout-pending`) and the temp-id map (`core::tempid::map_key` → server
//!   id);
//! - `reads`: cached read answers (`core::reads::CachedRead`), keyed by
//!   `core::reads::cache_key`;
//! - `reads_meta`: size and last use of each cached read, same keys, so
//!   eviction never loads a body.
//!
//! - `uploads`: uploads under way (`core::upload::Upload`), keyed by temp
//!   asset id;
//! - `blobs`: the files themselves, as browser `Blob`s (never copied into
//!   wasm memory), keyed by temp asset id (uploads) or asset id (downloads);
//! - `blob_meta`: size, last use and pinning of each blob, same keys.
//!
//! Version 2 added the two read stores, version 3 the three upload stores;
//! opening creates what is missing and keeps older stores as they are.

use super::error::{Error, Result};
use crate::core::tempid;
use js_sys::Uint8Array;
use rexie::{ObjectStore, Rexie, TransactionMode};
use wasm_bindgen::{JsCast, JsValue};

const NAME: &str = "outpost";
const VERSION: u32 = 3;
pub const OUTBOX: &str = "outbox";
pub const QUARANTINE: &str = "quarantine";
pub const META: &str = "meta";
pub const READS: &str = "reads";
pub const READS_META: &str = "reads_meta";
pub const UPLOADS: &str = "uploads";
pub const BLOBS: &str = "blobs";
pub const BLOB_META: &str = "blob_meta";
const SEQ: &str = "seq";

pub async fn open() -> Result<Rexie> {
    Rexie::builder(NAME)
        .version(VERSION)
        .add_object_store(ObjectStore::new(OUTBOX))
        .add_object_store(ObjectStore::new(QUARANTINE))
        .add_object_store(ObjectStore::new(META))
        .add_object_store(ObjectStore::new(READS))
        .add_object_store(ObjectStore::new(READS_META))
        .add_object_store(ObjectStore::new(UPLOADS))
        .add_object_store(ObjectStore::new(BLOBS))
        .add_object_store(ObjectStore::new(BLOB_META))
        .build()
        .await
        .map_err(|e| {
            let e = Error::from(e);
            Error::new(
                &e.name,
                format!(
                    "the worker could not open its IndexedDB database '{NAME}' at version {VERSION} ({e}): a \
                     newer version of it may be there (a downgrade), or the browser refuses storage to this site"
                ),
            )
        })
}

fn key(id: u64) -> JsValue {
    JsValue::from_f64(id as f64)
}

/// Every `(key, bytes)` of `store`, in key order. Keys are returned as
/// they are: a key that is not an entry id (put there by something else)
/// must still be addressable exactly, never rounded onto a real entry.
pub async fn records(db: &Rexie, store: &str) -> Result<Vec<(JsValue, Vec<u8>)>> {
    let tx = db.transaction(&[store], TransactionMode::ReadOnly)?;
    let s = tx.store(store)?;
    let keys = s.get_all_keys(None, None).await?;
    let values = s.get_all(None, None).await?;
    Ok(keys.into_iter().zip(values).map(|(k, v)| (k, bytes_of(&v))).collect())
}

fn bytes_of(v: &JsValue) -> Vec<u8> {
    if v.is_instance_of::<Uint8Array>() || v.is_instance_of::<js_sys::ArrayBuffer>() {
        Uint8Array::new(v).to_vec()
    } else {
        // Not ours (put there by hand, or by something else): an empty
        // record decodes as an error and is quarantined.
        Vec::new()
    }
}

pub async fn put(db: &Rexie, store: &str, id: u64, bytes: &[u8]) -> Result<()> {
    let tx = db.transaction(&[store], TransactionMode::ReadWrite)?;
    tx.store(store)?.put(&Uint8Array::from(bytes).into(), Some(&key(id))).await?;
    tx.done().await?;
    Ok(())
}

pub async fn delete(db: &Rexie, store: &str, id: u64) -> Result<()> {
    delete_key(db, store, key(id)).await
}

pub async fn delete_key(db: &Rexie, store: &str, key: JsValue) -> Result<()> {
    let tx = db.transaction(&[store], TransactionMode::ReadWrite)?;
    tx.store(store)?.delete(key).await?;
    tx.done().await?;
    Ok(())
}

/// Moves an unreadable record out of the outbox, under the same key, in
/// one transaction.
/// `user`: who was logged in when it was found (it is theirs to see).
pub async fn quarantine(db: &Rexie, key: &JsValue, bytes: &[u8], user: Option<&str>) -> Result<()> {
    quarantine_from(db, OUTBOX, key, key, bytes, user).await
}

/// Moves an unreadable record of `store` to the quarantine under `kept_as`,
/// in one transaction.
pub async fn quarantine_from(
    db: &Rexie,
    store: &str,
    key: &JsValue,
    kept_as: &JsValue,
    bytes: &[u8],
    user: Option<&str>,
) -> Result<()> {
    let kept = crate::core::record::quarantined(user, bytes);
    let tx = db.transaction(&[store, QUARANTINE], TransactionMode::ReadWrite)?;
    tx.store(QUARANTINE)?.put(&Uint8Array::from(&kept[..]).into(), Some(kept_as)).await?;
    tx.store(store)?.delete(key.clone()).await?;
    tx.done().await?;
    Ok(())
}

/// Stores a new entry under the next id, in one transaction, so two
/// enqueues can never take the same id.
pub async fn append(db: &Rexie, make: impl FnOnce(u64) -> Vec<u8>) -> Result<u64> {
    let tx = db.transaction(&[META, OUTBOX], TransactionMode::ReadWrite)?;
    let meta = tx.store(META)?;
    let last = meta.get(SEQ.into()).await?.and_then(|v| v.as_f64()).unwrap_or(0.0) as u64;
    let id = last + 1;
    meta.put(&JsValue::from_f64(id as f64), Some(&SEQ.into())).await?;
    let bytes = make(id);
    tx.store(OUTBOX)?.put(&Uint8Array::from(&bytes[..]).into(), Some(&key(id))).await?;
    tx.done().await?;
    Ok(id)
}

/// The temp ids learned for `user`.
pub async fn id_map(db: &Rexie, user: Option<&str>) -> Result<Vec<(String, String)>> {
    let tx = db.transaction(&[META], TransactionMode::ReadOnly)?;
    let s = tx.store(META)?;
    // The meta store is small: read it whole and keep the id-map rows.
    let keys = s.get_all_keys(None, None).await?;
    let values = s.get_all(None, None).await?;
    Ok(keys
        .into_iter()
        .zip(values)
        .filter_map(|(k, v)| Some((tempid::temp_of(&k.as_string()?, user)?.to_string(), v.as_string()?)))
        .collect())
}

/// Forgets the temp ids learned for `user` (no write or upload of theirs
/// needs them any more).
pub async fn prune_ids(db: &Rexie, user: Option<&str>) -> Result<()> {
    let tx = db.transaction(&[META], TransactionMode::ReadWrite)?;
    let s = tx.store(META)?;
    for k in s.get_all_keys(None, None).await? {
        if k.as_string().is_some_and(|k| tempid::is_pruned_with(&k, user)) {
            s.delete(k).await?;
        }
    }
    tx.done().await?;
    Ok(())
}

pub async fn save_ids(db: &Rexie, user: Option<&str>, pairs: &[(String, String)]) -> Result<()> {
    if pairs.is_empty() {
        return Ok(());
    }
    let tx = db.transaction(&[META], TransactionMode::ReadWrite)?;
    let s = tx.store(META)?;
    for (temp, id) in pairs {
        s.put(&id.into(), Some(&tempid::map_key(user, temp).into())).await?;
    }
    tx.done().await?;
    Ok(())
}

/// The entry id a key stands for, if it is one (a positive integer).
pub fn entry_id(key: &JsValue) -> Option<u64> {
    key.as_f64().filter(|f| *f >= 1.0 && f.fract() == 0.0 && *f < 9.0e15).map(|f| f as u64)
}

/// A key as the page sees it in `status()`.
pub fn key_text(key: &JsValue) -> String {
    match (key.as_f64(), key.as_string()) {
        (Some(f), _) => f.to_string(),
        (_, Some(s)) => s,
        _ => format!("{key:?}"),
    }
}

/// One value of `store` by key.
pub async fn get(db: &Rexie, store: &str, key: &str) -> Result<Option<JsValue>> {
    let tx = db.transaction(&[store], TransactionMode::ReadOnly)?;
    Ok(tx.store(store)?.get(key.into()).await?)
}

pub async fn get_bytes(db: &Rexie, store: &str, key: &str) -> Result<Option<Vec<u8>>> {
    Ok(get(db, store, key).await?.map(|v| bytes_of(&v)))
}

/// Puts values under string keys, several stores in one transaction.
pub async fn put_all(db: &Rexie, rows: &[(&str, &str, JsValue)]) -> Result<()> {
    let mut stores: Vec<&str> = rows.iter().map(|r| r.0).collect();
    stores.dedup();
    let tx = db.transaction(&stores, TransactionMode::ReadWrite)?;
    for (store, key, value) in rows {
        tx.store(store)?.put(value, Some(&(*key).into())).await?;
    }
    tx.done().await?;
    Ok(())
}

pub fn bytes(b: &[u8]) -> JsValue {
    Uint8Array::from(b).into()
}

/// Deletes `keys` from every one of `stores`, in one transaction.
pub async fn delete_keys(db: &Rexie, stores: &[&str], keys: &[String]) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let tx = db.transaction(stores, TransactionMode::ReadWrite)?;
    for store in stores {
        let s = tx.store(store)?;
        for key in keys {
            s.delete(key.as_str().into()).await?;
        }
    }
    tx.done().await?;
    Ok(())
}

/// Removes delivered entries and saves the temp-id pairs they taught, in one
/// transaction.
pub async fn commit(db: &Rexie, delivered: &[u64], user: Option<&str>, pairs: &[(String, String)]) -> Result<()> {
    let tx = db.transaction(&[OUTBOX, META], TransactionMode::ReadWrite)?;
    let outbox = tx.store(OUTBOX)?;
    for id in delivered {
        outbox.delete(key(*id)).await?;
    }
    let meta = tx.store(META)?;
    for (temp, id) in pairs {
        meta.put(&id.into(), Some(&tempid::map_key(user, temp).into())).await?;
    }
    tx.done().await?;
    Ok(())
}

/// Puts `bytes` under `key` in `store` only while `key` is still in
/// `guard`, in one transaction: metadata of a file deleted meanwhile is not
/// brought back.
pub async fn put_if_present(db: &Rexie, guard: &str, store: &str, key: &str, bytes: &[u8]) -> Result<()> {
    let tx = db.transaction(&[guard, store], TransactionMode::ReadWrite)?;
    // A Blob read here is a handle, not its bytes.
    let present = tx.store(guard)?.get(key.into()).await?.is_some();
    if present {
        tx.store(store)?.put(&Uint8Array::from(bytes).into(), Some(&key.into())).await?;
    }
    tx.done().await?;
    Ok(())
}
