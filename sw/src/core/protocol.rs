//! What the worker and its pages say to each other, defined once.
//!
//! - Events go from the worker to every page on the BroadcastChannel
//!   `CHANNEL`, as `{type, ...fields}`; `outpost.on(name, fn)` takes the
//!   public ones (`Event::PUBLIC`).
//! - Requests go from one page to the worker through `postMessage` with a
//!   reply port, as `{type: "outpost:<name>", id?}` (`Request`); the answer
//!   to `status` is a `Status`.
//!
//! `shim/outpost.js` and `shim/outpost.d.ts` repeat these names for pages;
//! `tests/page_protocol.rs` holds them to this file.

use super::json::{obj, Value};
use super::text::cat;

/// The BroadcastChannel the worker's events go out on.
pub const CHANNEL: &str = "outpost";

/// The prefix of every page request's `type`.
pub const REQUEST_PREFIX: &str = "outpost:";

/// An event the worker tells every page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Queued,
    Replayed,
    RetryScheduled,
    DeadLettered,
    /// A stale-while-revalidate read was refreshed.
    Updated,
    UploadProgress,
    Uploaded,
    Evicted,
    QuotaLow,
    /// The login warm-up's progress: `{done, total}`.
    WarmUp,
    /// The worker's next wake (`{at}`): the page client wakes a stopped
    /// worker then. Not offered to `outpost.on`.
    Wake,
}

impl Event {
    /// What `outpost.on` accepts, in the order the docs list them.
    pub const PUBLIC: [Event; 10] = [
        Event::Queued,
        Event::Replayed,
        Event::RetryScheduled,
        Event::DeadLettered,
        Event::Updated,
        Event::UploadProgress,
        Event::Uploaded,
        Event::Evicted,
        Event::QuotaLow,
        Event::WarmUp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Event::Queued => "queued",
            Event::Replayed => "replayed",
            Event::RetryScheduled => "retry-scheduled",
            Event::DeadLettered => "dead-lettered",
            Event::Updated => "updated",
            Event::UploadProgress => "upload-progress",
            Event::Uploaded => "uploaded",
            Event::Evicted => "evicted",
            Event::QuotaLow => "quota-low",
            Event::WarmUp => "warm-up",
            Event::Wake => "wake",
        }
    }
}

/// A page's request to the worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The bundle hash the worker runs: `{version}`.
    Version,
    /// `Status`.
    Status,
    /// Replays what is queued now; answers the `Status` afterwards.
    Flush,
    /// The page went online or became visible: a hint. `{nextWakeAt}`.
    Online,
    /// The page's timer at the worker's next wake. `{nextWakeAt}`.
    Wake,
    /// A dead letter (write or upload) back in line. `{ok}`.
    Retry(String),
    /// A dead letter dropped for good. `{ok}`.
    Discard(String),
}

/// Why a page request was not understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    Unknown(String),
    MissingId(&'static str),
}

impl RequestError {
    /// What is wrong, in words for the page (`Display` writes the same).
    pub fn text(&self) -> String {
        match self {
            RequestError::Unknown(kind) => {
                let mut text = cat!("outpost: unknown request \"", kind, "\"; one of ");
                for (i, name) in Request::NAMES.iter().enumerate() {
                    if i > 0 {
                        text.push_str(", ");
                    }
                    text.push_str(REQUEST_PREFIX);
                    text.push_str(name);
                }
                text
            }
            RequestError::MissingId(name) => cat!("outpost: \"", REQUEST_PREFIX, name, "\" needs an id"),
        }
    }
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text())
    }
}

impl Request {
    /// Every request's name, after `REQUEST_PREFIX`.
    pub const NAMES: [&'static str; 7] = ["version", "status", "flush", "online", "wake", "retry", "discard"];

    /// From a message's `type` and `id`.
    pub fn parse(kind: &str, id: Option<String>) -> Result<Request, RequestError> {
        let unknown = || RequestError::Unknown(kind.to_string());
        let name = kind.strip_prefix(REQUEST_PREFIX).ok_or_else(unknown)?;
        Ok(match name {
            "version" => Request::Version,
            "status" => Request::Status,
            "flush" => Request::Flush,
            "online" => Request::Online,
            "wake" => Request::Wake,
            "retry" => Request::Retry(id.ok_or(RequestError::MissingId("retry"))?),
            "discard" => Request::Discard(id.ok_or(RequestError::MissingId("discard"))?),
            _ => return Err(unknown()),
        })
    }
}

/// What `outpost.status()` (and `flush()`) answer.
/// Pages read it as JSON (`to_json`), fields in camelCase.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// The logged-in user's id as the worker knows it (None: nobody).
    pub user: Option<String>,
    /// This user's writes waiting to be delivered.
    pub pending: usize,
    /// Other users' writes, waiting for them to log in again.
    pub parked: usize,
    /// This user's first waiting writes, oldest first.
    pub queue: Vec<QueuedWrite>,
    /// This user's dead letters (and unreadable records).
    pub dead_letters: Vec<DeadLetter>,
    pub uploads: Vec<UploadStatus>,
    pub storage: Storage,
    /// When the worker next wakes for a due write or upload (Unix ms).
    pub next_wake_at: Option<u64>,
    /// When the worker instance that answered started (Unix ms).
    pub worker_started_at: u64,
    /// Bytes the answering instance's heap holds (its wasm allocations):
    /// steady while the worker runs, unless something leaks.
    pub worker_heap_bytes: u64,
    /// Set when the worker could not open IndexedDB (absent otherwise).
    pub storage_error: Option<String>,
}

impl Status {
    /// The status of a worker whose storage would not open: nothing kept,
    /// and `why`.
    pub fn without_storage(why: &str, worker_started_at: u64) -> Status {
        Status {
            user: None,
            pending: 0,
            parked: 0,
            queue: Vec::new(),
            dead_letters: Vec::new(),
            uploads: Vec::new(),
            storage: Storage::default(),
            next_wake_at: None,
            worker_started_at,
            worker_heap_bytes: 0,
            storage_error: Some(cat!(why, "; writes and reads go to the network as they are, nothing is kept")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedWrite {
    pub id: String,
    pub method: String,
    pub url: String,
    pub retries: u32,
    pub next_at: u64,
    /// The origin's last answer; None when the last attempt got no answer
    /// (waiting for the network) or none was made.
    pub status: Option<u16>,
    pub created_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: String,
    /// None for an unreadable record (nothing of it can be read); absent
    /// from the JSON when None, as are `url` and `at`.
    pub method: Option<String>,
    pub url: Option<String>,
    /// The origin's last answer, if any.
    pub status: Option<u16>,
    /// What went wrong, in words.
    pub reason: String,
    pub at: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadStatus {
    /// The temp id the page got (`local-…`).
    pub asset_id: String,
    /// The origin's id, once presigned.
    pub server_id: Option<String>,
    pub filename: String,
    pub size: u64,
    /// Bytes known to be in the store.
    pub done: u64,
    pub state: UploadState,
    pub reason: Option<String>,
    pub retry_at: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadState {
    Pending,
    Dead,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Storage {
    /// `navigator.storage.estimate()` in bytes, where the browser gives one.
    pub usage: Option<u64>,
    pub quota: Option<u64>,
    /// The budget for kept files, and the bytes they take.
    pub budget: u64,
    pub blobs: u64,
}

/// A JSON array of `items`, each as `each` writes it.
fn list<T>(items: &[T], each: fn(&T) -> Value) -> Value {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        out.push(each(item));
    }
    Value::Array(out)
}

impl Status {
    pub fn to_json(&self) -> Value {
        let mut v = obj! {
            "user": self.user.as_deref(),
            "pending": self.pending,
            "parked": self.parked,
            "queue": list(&self.queue, QueuedWrite::to_json),
            "deadLetters": list(&self.dead_letters, DeadLetter::to_json),
            "uploads": list(&self.uploads, UploadStatus::to_json),
            "storage": self.storage.to_json(),
            "nextWakeAt": self.next_wake_at,
            "workerStartedAt": self.worker_started_at,
            "workerHeapBytes": self.worker_heap_bytes,
        };
        if let (Some(e), Some(o)) = (&self.storage_error, v.as_object_mut()) {
            o.insert("storageError", e.into());
        }
        v
    }
}

impl QueuedWrite {
    pub fn to_json(&self) -> Value {
        obj! {
            "id": &self.id,
            "method": &self.method,
            "url": &self.url,
            "retries": self.retries,
            "nextAt": self.next_at,
            "status": self.status,
            "createdAt": self.created_at,
        }
    }
}

impl DeadLetter {
    pub fn to_json(&self) -> Value {
        let mut v = obj! { "id": &self.id };
        let o = v.as_object_mut().expect("an object");
        if let Some(m) = &self.method {
            o.insert("method", m.into());
        }
        if let Some(u) = &self.url {
            o.insert("url", u.into());
        }
        o.insert("status", self.status.into());
        o.insert("reason", (&self.reason).into());
        if let Some(at) = self.at {
            o.insert("at", at.into());
        }
        v
    }
}

impl UploadStatus {
    pub fn to_json(&self) -> Value {
        obj! {
            "assetId": &self.asset_id,
            "serverId": self.server_id.as_deref(),
            "filename": &self.filename,
            "size": self.size,
            "done": self.done,
            "state": self.state.as_str(),
            "reason": self.reason.as_deref(),
            "retryAt": self.retry_at,
        }
    }
}

impl UploadState {
    pub fn as_str(self) -> &'static str {
        match self {
            UploadState::Pending => "pending",
            UploadState::Dead => "dead",
        }
    }
}

impl Storage {
    pub fn to_json(&self) -> Value {
        obj! { "usage": self.usage, "quota": self.quota, "budget": self.budget, "blobs": self.blobs }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_from_their_type() {
        assert_eq!(Request::parse("outpost:status", None), Ok(Request::Status));
        assert_eq!(Request::parse("outpost:retry", Some("7".into())), Ok(Request::Retry("7".into())));
        assert_eq!(Request::parse("outpost:retry", None), Err(RequestError::MissingId("retry")));
        let unknown = Request::parse("outpost:nope", None).unwrap_err();
        assert!(unknown.to_string().contains("outpost:flush"), "{unknown}");
        assert!(Request::parse("status", None).is_err(), "the prefix is part of the type");
        for name in Request::NAMES {
            let id = Some("1".to_string());
            assert!(Request::parse(&format!("{REQUEST_PREFIX}{name}"), id).is_ok(), "{name}");
        }
    }

    #[test]
    fn a_status_without_storage_says_why_and_keeps_the_shape() {
        let s = Status::without_storage("VersionError: newer", 5).to_json();
        assert_eq!(s["pending"].as_u64(), Some(0));
        assert_eq!(s["workerStartedAt"].as_u64(), Some(5));
        assert!(s["storageError"].as_str().unwrap().starts_with("VersionError: newer; "));
        let storage = serde_json::json!({ "usage": null, "quota": null, "budget": 0, "blobs": 0 });
        assert_eq!(s["storage"], crate::core::json::from_serde(storage));
        assert!(s["nextWakeAt"].is_null());
    }

    #[test]
    fn a_quarantined_record_lists_only_what_is_known() {
        let d =
            DeadLetter { id: "9".into(), method: None, url: None, status: None, reason: "unreadable".into(), at: None };
        assert_eq!(
            d.to_json(),
            crate::core::json::from_serde(serde_json::json!({ "id": "9", "status": null, "reason": "unreadable" }))
        );
    }
}
