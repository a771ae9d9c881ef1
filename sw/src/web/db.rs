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
use super::global::bootstrap;
use super::global::Whole;
use crate::core::tempid;
use crate::core::text::{cat, num};
use js_sys::{Array, Uint8Array};
use std::future::Future;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{IdbDatabase, IdbTransaction};

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
const STORES: [&str; 8] = [OUTBOX, QUARANTINE, META, READS, READS_META, UPLOADS, BLOBS, BLOB_META];
const SEQ: &str = "seq";

/// The open database. IndexedDB is used through a few functions of the
/// bootstrap (`outpostTx`, `outpostGet`, `outpostAll`, `outpostOps`,
/// `outpostDone`: reads as promises, writes made as one list per
/// transaction): a wrapper crate cost the wasm about 25 KB for the few calls
/// below, and web-sys's bindings one exception wrapper each.
pub struct Db(IdbDatabase);

pub async fn open() -> Result<Db> {
    let opened = async {
        let stores = Array::new();
        for s in STORES {
            stores.push(&JsValue::from_str(s));
        }
        let db = crate::web::global::wait(bootstrap::open(NAME, VERSION, &stores)).await?;
        Ok(Db(db.unchecked_into()))
    };
    opened.whole().await.map_err(|e: Error| {
        Error::new(
            &e.name,
            cat!(
                "the worker could not open its IndexedDB database '",
                NAME,
                "' at version ",
                num(VERSION.into()),
                " (",
                e.text(),
                "): a newer version of it may be there (a downgrade), or the browser refuses storage to this site"
            ),
        )
    })
}

impl Db {
    /// A transaction over `stores`. Requests made in it are answered in a
    /// microtask of their success event, while it is still active, so the
    /// next request may follow.
    fn transaction(&self, stores: &[&str], write: bool) -> Result<IdbTransaction> {
        Ok(bootstrap::tx(&self.0, &crate::core::text::join(stores, ","), write)?)
    }
}

/// Settles when the transaction has committed; a transaction the browser
/// aborted (a full quota is reported here) fails with its reason. A request
/// that fails aborts its transaction with that request's error (nothing
/// here cancels the error event), so `abort` alone carries every failure,
/// and with the precise error (at the request's `error` event the
/// transaction's own `error` is not set yet). Through the bootstrap's
/// `outpostDone` (an `AbortError` when the transaction has no error).
fn done(tx: &IdbTransaction) -> crate::web::global::Wait {
    crate::web::global::wait(bootstrap::done(tx))
}

async fn get_value(tx: &IdbTransaction, name: &str, key: &JsValue) -> Result<Option<JsValue>> {
    let v = crate::web::global::wait(bootstrap::get(tx, name, key)?).await?;
    Ok((!v.is_undefined()).then_some(v))
}

/// One change a transaction makes (`write`): a put of `(store, key,
/// value)`, or a delete of `(store, key)`.
pub enum Op<'a> {
    Put(&'a str, JsValue, JsValue),
    Delete(&'a str, JsValue),
}

impl Op<'_> {
    fn store(&self) -> &str {
        match self {
            Op::Put(name, ..) | Op::Delete(name, _) => name,
        }
    }
}

/// Makes `ops` in `tx`, in order, without awaiting each: a transaction runs
/// its requests in the order they were made, and one that fails aborts it
/// (`done` says why). One that cannot even be made (a key IndexedDB
/// refuses) aborts the transaction here, so none of the others lands.
fn issue(tx: &IdbTransaction, ops: &[Op<'_>]) -> Result<()> {
    let list = Array::new();
    for op in ops {
        let (name, key, value) = match op {
            Op::Put(name, key, value) => (name, key, value),
            Op::Delete(name, key) => (name, key, &JsValue::UNDEFINED),
        };
        list.push(&JsValue::from_str(name));
        list.push(key);
        list.push(value);
    }
    Ok(bootstrap::ops(tx, &list)?)
}

/// Adds a store to a transaction's list, once (the order does not matter).
fn add_store<'a>(names: &mut Vec<&'a str>, name: &'a str) {
    if !names.contains(&name) {
        names.push(name);
    }
}

/// Makes `ops` in one read-write transaction; settles once it has committed.
/// (Every write of the worker but those that read first comes here: each
/// transaction function of its own cost the wasm about 1 KB.)
pub async fn write(db: &Db, ops: Vec<Op<'_>>) -> Result<()> {
    if ops.is_empty() {
        return Ok(());
    }
    let mut names = Vec::new();
    for op in &ops {
        add_store(&mut names, op.store());
    }
    let tx = db.transaction(&names, true)?;
    issue(&tx, &ops)?;
    done(&tx).await?;
    Ok(())
}

// The helpers below walk the JS arrays by index into plain loops: each
// iterator chain over them was a few generic functions of its own.
async fn all(tx: &IdbTransaction, name: &str) -> Result<(Array, Array)> {
    let both: Array = crate::web::global::wait(bootstrap::all(tx, name)?).await?.unchecked_into();
    Ok((both.get(0).unchecked_into(), both.get(1).unchecked_into()))
}

fn key(id: u64) -> JsValue {
    JsValue::from_f64(id as f64)
}

/// Every `(key, bytes)` of `store`, in key order. Keys are returned as
/// they are: a key that is not an entry id (put there by something else)
/// must still be addressable exactly, never rounded onto a real entry.
pub async fn records(db: &Db, name: &str) -> Result<Vec<(JsValue, Vec<u8>)>> {
    let tx = db.transaction(&[name], false)?;
    let (keys, values) = all(&tx, name).whole().await?;
    let mut out = Vec::with_capacity(keys.length() as usize);
    for i in 0..keys.length().min(values.length()) {
        out.push((keys.get(i), bytes_of(&values.get(i))));
    }
    Ok(out)
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

pub fn put<'a>(db: &'a Db, name: &'a str, id: u64, bytes: &[u8]) -> impl Future<Output = Result<()>> + 'a {
    write(db, vec![Op::Put(name, key(id), self::bytes(bytes))])
}

pub fn delete<'a>(db: &'a Db, name: &'a str, id: u64) -> impl Future<Output = Result<()>> + 'a {
    delete_key(db, name, key(id))
}

pub fn delete_key<'a>(db: &'a Db, name: &'a str, key: JsValue) -> impl Future<Output = Result<()>> + 'a {
    write(db, vec![Op::Delete(name, key)])
}

/// Moves an unreadable record out of the outbox, under the same key, in
/// one transaction.
/// `user`: who was logged in when it was found (it is theirs to see).
pub fn quarantine<'a>(
    db: &'a Db,
    key: &JsValue,
    bytes: &[u8],
    user: Option<&str>,
) -> impl Future<Output = Result<()>> + 'a {
    quarantine_from(db, OUTBOX, key, key, bytes, user)
}

/// Moves an unreadable record of `store` to the quarantine under `kept_as`,
/// in one transaction.
pub fn quarantine_from<'a>(
    db: &'a Db,
    name: &'a str,
    key: &JsValue,
    kept_as: &JsValue,
    bytes: &[u8],
    user: Option<&str>,
) -> impl Future<Output = Result<()>> + 'a {
    let kept = self::bytes(&crate::core::record::quarantined(user, bytes));
    write(db, vec![Op::Put(QUARANTINE, kept_as.clone(), kept), Op::Delete(name, key.clone())])
}

/// Stores a new entry under the next id, in one transaction, so two
/// enqueues can never take the same id.
pub async fn append(db: &Db, make: impl FnOnce(u64) -> Vec<u8>) -> Result<u64> {
    let tx = db.transaction(&[META, OUTBOX], true)?;
    let last = get_value(&tx, META, &SEQ.into()).whole().await?.and_then(|v| v.as_f64()).unwrap_or(0.0) as u64;
    let id = last + 1;
    let entry = Op::Put(OUTBOX, key(id), self::bytes(&make(id)));
    issue(&tx, &[Op::Put(META, SEQ.into(), JsValue::from_f64(id as f64)), entry])?;
    done(&tx).await?;
    Ok(id)
}

/// The temp ids learned for `user`.
pub async fn id_map(db: &Db, user: Option<&str>) -> Result<tempid::IdMap> {
    let tx = db.transaction(&[META], false)?;
    // The meta store is small: read it whole and keep the id-map rows.
    let (keys, values) = all(&tx, META).whole().await?;
    let mut out = tempid::IdMap::new();
    for i in 0..keys.length().min(values.length()) {
        let (Some(k), Some(v)) = (keys.get(i).as_string(), values.get(i).as_string()) else { continue };
        if let Some(temp) = tempid::temp_of(&k, user) {
            out.insert(temp, v);
        }
    }
    Ok(out)
}

/// Forgets the temp ids learned for `user` (no write or upload of theirs
/// needs them any more).
pub async fn prune_ids(db: &Db, user: Option<&str>) -> Result<()> {
    let tx = db.transaction(&[META], true)?;
    let (keys, _) = all(&tx, META).whole().await?;
    let mut pruned = Vec::new();
    for k in (0..keys.length()).map(|i| keys.get(i)) {
        if k.as_string().is_some_and(|k| tempid::is_pruned_with(&k, user)) {
            pruned.push(Op::Delete(META, k));
        }
    }
    issue(&tx, &pruned)?;
    done(&tx).await?;
    Ok(())
}

pub fn save_ids<'a>(
    db: &'a Db,
    user: Option<&str>,
    pairs: &[(String, String)],
) -> impl Future<Output = Result<()>> + 'a {
    write(db, id_puts(user, pairs))
}

fn id_puts(user: Option<&str>, pairs: &[(String, String)]) -> Vec<Op<'static>> {
    let mut ops = Vec::with_capacity(pairs.len());
    for (temp, id) in pairs {
        ops.push(Op::Put(META, tempid::map_key(user, temp).into(), id.into()));
    }
    ops
}

/// The entry id a key stands for, if it is one (a positive integer).
pub fn entry_id(key: &JsValue) -> Option<u64> {
    key.as_f64().filter(|f| *f >= 1.0 && f.fract() == 0.0 && *f < 9.0e15).map(|f| f as u64)
}

/// A key as the page sees it in `status()`.
pub fn key_text(key: &JsValue) -> String {
    // An entry id as its digits; any other number as JavaScript writes it
    // (Rust's float printing would cost the wasm about 6 KB).
    match (key.as_f64(), key.as_string()) {
        (Some(_), _) if entry_id(key).is_some() => num(entry_id(key).unwrap_or_default()),
        // A key is never NaN or infinite: its JSON is how JavaScript writes it.
        (Some(_), _) => super::global::js_text(key),
        (_, Some(s)) => s,
        _ => super::global::js_text(key),
    }
}

/// One value of `store` by key.
pub async fn get(db: &Db, name: &str, key: &str) -> Result<Option<JsValue>> {
    let tx = db.transaction(&[name], false)?;
    get_value(&tx, name, &key.into()).whole().await
}

/// Values of `store` by key, read in one transaction with every request
/// made before any is awaited (one round trip to the browser's storage,
/// not one per key: a cold start reads these before its first answer).
pub async fn get_many<const N: usize>(db: &Db, name: &str, keys: [&str; N]) -> Result<[Option<JsValue>; N]> {
    let tx = db.transaction(&[name], false)?;
    let mut pending = Vec::with_capacity(N);
    for key in keys {
        pending.push(bootstrap::get(&tx, name, &key.into())?);
    }
    let mut out = [const { None }; N];
    for (i, request) in pending.iter().enumerate() {
        let v = crate::web::global::wait(request.clone()).await?;
        out[i] = (!v.is_undefined()).then_some(v);
    }
    Ok(out)
}

pub async fn get_bytes(db: &Db, store: &str, key: &str) -> Result<Option<Vec<u8>>> {
    Ok(get(db, store, key).whole().await?.map(|v| bytes_of(&v)))
}

/// Puts values under string keys, several stores in one transaction.
pub fn put_all<'a>(db: &'a Db, rows: &[(&'a str, &str, JsValue)]) -> impl Future<Output = Result<()>> + 'a {
    write(db, puts(rows))
}

fn puts<'a>(rows: &[(&'a str, &str, JsValue)]) -> Vec<Op<'a>> {
    let mut ops = Vec::with_capacity(rows.len());
    for (name, key, value) in rows {
        ops.push(Op::Put(name, (*key).into(), value.clone()));
    }
    ops
}

pub fn bytes(b: &[u8]) -> JsValue {
    Uint8Array::from(b).into()
}

/// Deletes `keys` from every one of `stores`, in one transaction.
pub fn delete_keys<'a>(db: &'a Db, stores: &[&'a str], keys: &[String]) -> impl Future<Output = Result<()>> + 'a {
    let mut ops = Vec::with_capacity(stores.len() * keys.len());
    for name in stores {
        for key in keys {
            ops.push(Op::Delete(name, key.as_str().into()));
        }
    }
    write(db, ops)
}

/// Removes delivered entries and saves the temp-id pairs they taught, in one
/// transaction.
pub fn commit<'a>(
    db: &'a Db,
    delivered: &[u64],
    user: Option<&str>,
    pairs: &[(String, String)],
) -> impl Future<Output = Result<()>> + 'a {
    let mut ops = id_puts(user, pairs);
    for id in delivered {
        ops.push(Op::Delete(OUTBOX, key(*id)));
    }
    write(db, ops)
}

/// Whether a value stored may be replaced (`put_all_unless`): its store,
/// its key, and what decides from its bytes (None: nothing there).
pub type Guard<'a> = (&'a str, &'a str, &'a dyn Fn(Option<&[u8]>) -> bool);

/// Puts `rows` in one transaction, unless `guard` keeps the value it names
/// (read in that transaction). Whether they were put.
pub async fn put_all_unless(db: &Db, guard: Option<Guard<'_>>, rows: &[(&str, &str, JsValue)]) -> Result<bool> {
    let mut stores = Vec::new();
    for r in rows {
        add_store(&mut stores, r.0);
    }
    if let Some(g) = &guard {
        add_store(&mut stores, g.0);
    }
    let tx = db.transaction(&stores, true)?;
    let put = match guard {
        Some((name, key, replaces)) => {
            let existing = get_value(&tx, name, &key.into()).whole().await?.map(|v| bytes_of(&v));
            replaces(existing.as_deref())
        }
        None => true,
    };
    if put {
        issue(&tx, &puts(rows))?;
    }
    done(&tx).await?;
    Ok(put)
}

/// Puts `bytes` under `key` in `store` only while `key` is still in
/// `guard`, in one transaction: metadata of a file deleted meanwhile is not
/// brought back.
pub async fn put_if_present(db: &Db, guard: &str, name: &str, key: &str, bytes: &[u8]) -> Result<()> {
    // The guard's value is a Blob: read as a handle, `bytes_of` gives no
    // bytes for it, only that it is there. (One transaction function for
    // both: each async one costs the wasm about 1.3 KB.)
    let present = |existing: Option<&[u8]>| existing.is_some();
    put_all_unless(db, Some((guard, key, &present)), &[(name, key, self::bytes(bytes))]).whole().await.map(drop)
}
