//! The outbox's record format: what one queued write looks like in
//! IndexedDB. postcard's bytes (`core::wire`) behind a one-byte schema
//! version, so a worker can tell a record it understands from one it must
//! upgrade or quarantine.
//!
//! Bodies are kept as the raw bytes the page sent (FormData included, with
//! its multipart boundary in the stored `Content-Type`), so a replay is
//! byte-identical to the original request.

use super::text::{cat, num};
use super::wire::{self, varint, wire_struct, Reader, Wire};

/// The version written by this build.
pub const SCHEMA: u8 = 1;

/// How the request's credentials were to be sent (`Request.credentials`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Serialize, serde::Deserialize))]
pub enum Credentials {
    Omit,
    SameOrigin,
    Include,
}

impl Wire for Credentials {
    fn put(&self, out: &mut Vec<u8>) {
        varint(out, *self as u64);
    }
    fn get(r: &mut Reader<'_>) -> Self {
        match r.variant() {
            0 => Credentials::Omit,
            1 => Credentials::SameOrigin,
            2 => Credentials::Include,
            _ => r.unknown(Credentials::Omit),
        }
    }
}

/// Everything needed to send the request again.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Serialize, serde::Deserialize))]
pub struct StoredRequest {
    pub method: String,
    pub url: String,
    /// In the order the page set them; names lowercase as fetch gives them.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub credentials: Credentials,
}

wire_struct!(StoredRequest { method, url, headers, body, credentials });

impl StoredRequest {
    /// A header's value, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Whether the body is JSON, the only kind temp ids are rewritten in.
    pub fn is_json(&self) -> bool {
        self.header("content-type").is_some_and(|ct| super::text::contains(&ct.to_ascii_lowercase(), "json"))
    }

    /// The page's own Idempotency-Key, which wins over a minted one.
    pub fn idempotency_key(&self) -> Option<&str> {
        self.header("idempotency-key")
    }
}

/// Why an entry stopped being retried.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Serialize, serde::Deserialize))]
pub enum DeadReason {
    /// The origin answered with a status a retry cannot change.
    Refused { status: u16 },
    /// Every retry failed; `status` is the last answer (None: no answer).
    RetriesExhausted { status: Option<u16> },
    /// Older than the configured retention.
    Expired,
    /// Its URL is no longer a same-origin write route of the worker's
    /// config (the config changed since it was queued): not sent anywhere.
    NotAWrite,
    /// An upload's file is no longer on the device (site data cleared).
    FileGone,
}

impl Wire for DeadReason {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            DeadReason::Refused { status } => {
                varint(out, 0);
                status.put(out);
            }
            DeadReason::RetriesExhausted { status } => {
                varint(out, 1);
                status.put(out);
            }
            DeadReason::Expired => varint(out, 2),
            DeadReason::NotAWrite => varint(out, 3),
            DeadReason::FileGone => varint(out, 4),
        }
    }
    fn get(r: &mut Reader<'_>) -> Self {
        match r.variant() {
            0 => DeadReason::Refused { status: Wire::get(r) },
            1 => DeadReason::RetriesExhausted { status: Wire::get(r) },
            2 => DeadReason::Expired,
            3 => DeadReason::NotAWrite,
            4 => DeadReason::FileGone,
            _ => r.unknown(DeadReason::Expired),
        }
    }
}

impl DeadReason {
    /// In words, for `status().deadLetters` and the `dead-lettered` event.
    pub fn text(&self) -> String {
        match self {
            DeadReason::Refused { status } => cat!("refused by the origin (HTTP ", num((*status).into()), ")"),
            DeadReason::RetriesExhausted { status: Some(s) } => {
                cat!("retries exhausted (last answer HTTP ", num((*s).into()), ")")
            }
            DeadReason::RetriesExhausted { status: None } => "retries exhausted (no answer from the origin)".into(),
            DeadReason::Expired => "older than the retention limit".into(),
            DeadReason::NotAWrite => {
                "no longer a write route of this site (the worker's config changed); not sent".into()
            }
            DeadReason::FileGone => {
                "the file is no longer on this device (site data cleared?); discard it and upload again".into()
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Serialize, serde::Deserialize))]
pub enum State {
    /// Waiting for its turn at `next_at`.
    Pending,
    /// Kept for the page to retry or discard.
    Dead { reason: DeadReason, at: u64 },
}

impl Wire for State {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            State::Pending => varint(out, 0),
            State::Dead { reason, at } => {
                varint(out, 1);
                reason.put(out);
                at.put(out);
            }
        }
    }
    fn get(r: &mut Reader<'_>) -> Self {
        match r.variant() {
            0 => State::Pending,
            1 => State::Dead { reason: Wire::get(r), at: Wire::get(r) },
            _ => r.unknown(State::Pending),
        }
    }
}

/// One queued write.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Serialize, serde::Deserialize))]
pub struct Entry {
    /// Monotonic: the IndexedDB key, and the FIFO order.
    pub id: u64,
    /// The user it was queued for; it replays only while they are logged in.
    pub user: Option<String>,
    /// Entries of one queue are delivered in order.
    pub queue: String,
    /// Minted once at enqueue; every attempt sends it.
    pub idempotency_key: String,
    pub created_at: u64,
    /// Attempts made after the first failure.
    pub retries: u32,
    pub next_at: u64,
    pub state: State,
    /// Status of the last attempt (None: no answer).
    pub last_status: Option<u16>,
    /// When the last attempt ended.
    pub last_attempt_at: u64,
    pub request: StoredRequest,
}

wire_struct!(Entry {
    id,
    user,
    queue,
    idempotency_key,
    created_at,
    retries,
    next_at,
    state,
    last_status,
    last_attempt_at,
    request
});

/// The schema byte of a quarantined record: the unreadable bytes and the
/// user who was logged in when they were found, so each user sees (and can
/// discard) only their own. Raw bytes of the previous build have no owner.
pub const QUARANTINE_SCHEMA: u8 = 0xF1;

pub fn quarantined(user: Option<&str>, bytes: &[u8]) -> Vec<u8> {
    versioned(QUARANTINE_SCHEMA, &(user.map(String::from), bytes.to_vec()))
}

/// The quarantine key of an unreadable upload record (`upload:<temp id>`)
/// or blob record (`blob:<key>`). Outbox records keep their numeric key;
/// an upload and its blob share a key, hence the prefix.
pub fn quarantine_key(store: FileRecord, key: &str) -> String {
    match store {
        FileRecord::Upload => cat!("upload:", key),
        FileRecord::Blob => cat!("blob:", key),
    }
}

/// The file a quarantine key names (its upload and blob go with it when
/// the page discards it), if it is one.
pub fn quarantined_file(quarantine_key: &str) -> Option<&str> {
    quarantine_key.strip_prefix("upload:").or_else(|| quarantine_key.strip_prefix("blob:"))
}

/// The file records that can be quarantined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRecord {
    Upload,
    Blob,
}

/// Whose a quarantined record is: `Some(user)`, or `None` when unknown.
pub fn quarantine_owner(stored: &[u8]) -> Option<Option<String>> {
    unversioned::<(Option<String>, Vec<u8>)>(QUARANTINE_SCHEMA, stored).ok().map(|(u, _)| u)
}

/// A record that cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    Empty,
    /// Written by a newer Outpost: kept aside, never guessed at.
    UnknownSchema(u8),
    /// Bytes that do not decode: truncated or damaged.
    Corrupt(&'static str),
}

impl RecordError {
    /// What is wrong, in words (`Display` writes the same).
    pub fn text(&self) -> String {
        match self {
            RecordError::Empty => "empty outbox record".into(),
            RecordError::UnknownSchema(v) => {
                cat!("outbox record has schema ", num((*v).into()), "; this build reads ", num(SCHEMA.into()))
            }
            RecordError::Corrupt(e) => cat!("corrupt outbox record: ", e),
        }
    }
}

impl core::fmt::Display for RecordError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.text())
    }
}

pub fn encode(entry: &Entry) -> Vec<u8> {
    versioned(SCHEMA, entry)
}

/// Reads a record. A future schema gets its upgrade step here, before the
/// match's catch-all.
pub fn decode(bytes: &[u8]) -> Result<Entry, RecordError> {
    unversioned(SCHEMA, bytes)
}

/// postcard's bytes (`core::wire`) behind a one-byte schema version: the
/// shape of every record the worker keeps (outbox entries, cached reads,
/// uploads).
pub fn versioned<T: Wire>(schema: u8, value: &T) -> Vec<u8> {
    let mut out = vec![schema];
    value.put(&mut out);
    out
}

/// Reads a record written by `versioned(schema, …)`; another schema byte is
/// `UnknownSchema`, never a guess.
pub fn unversioned<T: Wire>(schema: u8, bytes: &[u8]) -> Result<T, RecordError> {
    unversioned_by(schema, bytes, T::get)
}

/// `unversioned` with the reader of one schema's fields (older schemas of
/// a record, read into today's type).
pub fn unversioned_by<T>(schema: u8, bytes: &[u8], get: impl FnOnce(&mut Reader<'_>) -> T) -> Result<T, RecordError> {
    wire::read_by(payload(schema, bytes)?, get).map_err(|wire::Corrupt(why)| RecordError::Corrupt(why))
}

// The part of `unversioned` that does not depend on `T`, kept out of line:
// seven record types instantiate it.
#[inline(never)]
fn payload(schema: u8, bytes: &[u8]) -> Result<&[u8], RecordError> {
    let (&version, payload) = bytes.split_first().ok_or(RecordError::Empty)?;
    if version != schema {
        return Err(RecordError::UnknownSchema(version));
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarantined_files_are_named_by_store() {
        let k = quarantine_key(FileRecord::Upload, "local-1");
        assert_eq!((k.as_str(), quarantined_file(&k)), ("upload:local-1", Some("local-1")));
        assert_eq!(quarantined_file(&quarantine_key(FileRecord::Blob, "a9")), Some("a9"));
        assert_eq!(quarantined_file("17"), None, "an outbox record names no file");
    }

    fn sample() -> Entry {
        Entry {
            id: 7,
            user: Some("u1".into()),
            queue: "default".into(),
            idempotency_key: "k-1".into(),
            created_at: 1_000,
            retries: 2,
            next_at: 5_000,
            state: State::Pending,
            last_status: Some(503),
            last_attempt_at: 3_000,
            request: StoredRequest {
                method: "POST".into(),
                url: "http://h/api/x".into(),
                headers: vec![("content-type".into(), "application/json".into())],
                body: b"{\"a\":1}".to_vec(),
                credentials: Credentials::SameOrigin,
            },
        }
    }

    #[test]
    fn round_trips() {
        let e = sample();
        assert_eq!(decode(&encode(&e)), Ok(e.clone()));
        let dead = Entry { state: State::Dead { reason: DeadReason::Refused { status: 400 }, at: 9 }, ..e };
        assert_eq!(decode(&encode(&dead)), Ok(dead));
    }

    /// The bytes of schema 1 are a promise to every record already stored:
    /// a change here needs a new schema and an upgrade step in `decode`.
    #[test]
    fn golden_bytes_of_schema_1() {
        let hex: String = encode(&sample()).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "0107010275310764656661756c74036b2d31e8070288270001f703b817\
             04504f53540e687474703a2f2f682f6170692f78010c636f6e74656e742d74797065106170706c69636174696f6e2f6a736f6e077b2261223a317d01"
        );
    }

    /// `core::wire` writes what postcard wrote, and reads it back.
    #[test]
    fn bytes_are_postcards_both_ways() {
        let e = sample();
        let reasons = [
            DeadReason::Refused { status: 409 },
            DeadReason::RetriesExhausted { status: None },
            DeadReason::RetriesExhausted { status: Some(503) },
            DeadReason::Expired,
            DeadReason::NotAWrite,
            DeadReason::FileGone,
        ];
        let mut entries = vec![e.clone()];
        for (i, reason) in reasons.into_iter().enumerate() {
            let mut d = e.clone();
            d.state = State::Dead { reason, at: 1 << (i * 9) };
            d.user = None;
            d.last_status = None;
            d.request.credentials = [Credentials::Omit, Credentials::Include][i % 2];
            d.request.body = vec![0xff; i * 70];
            entries.push(d);
        }
        for entry in entries {
            let ours = encode(&entry);
            assert_eq!(ours[1..], postcard::to_allocvec(&entry).unwrap()[..]);
            assert_eq!(postcard::from_bytes::<Entry>(&ours[1..]).unwrap(), entry);
        }
        let q = quarantined(Some("u"), b"junk");
        assert_eq!(q[1..], postcard::to_allocvec(&(Some("u"), b"junk".as_slice())).unwrap()[..]);
    }

    #[test]
    fn quarantined_records_know_their_user() {
        assert_eq!(quarantine_owner(&quarantined(Some("a"), b"\x09junk")), Some(Some("a".into())));
        assert_eq!(quarantine_owner(&quarantined(None, b"")), Some(None));
        assert_eq!(quarantine_owner(b"\x01raw bytes of the previous build"), None);
    }

    #[test]
    fn unreadable_records_are_errors_not_panics() {
        assert_eq!(decode(&[]), Err(RecordError::Empty));
        assert_eq!(decode(&[9, 1, 2]), Err(RecordError::UnknownSchema(9)));
        let bytes = encode(&sample());
        for cut in [1, 5, bytes.len() - 1] {
            assert!(matches!(decode(&bytes[..cut]), Err(RecordError::Corrupt(_))), "cut at {cut}");
        }
        assert!(matches!(decode(&[SCHEMA, 0xff, 0xff, 0xff]), Err(RecordError::Corrupt(_))));
    }
}
