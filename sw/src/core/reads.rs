//! Cached reads: what is kept, under which key, and what is served when the
//! network fails.
//!
//! Strategy per read route: network first, the network given
//! `networkTimeoutMs`; a good answer is stored; on no answer, a timeout or
//! a 5xx the stored copy is served (`Outpost-Cache: stale`, `Age`); with
//! nothing stored a network failure is a `504` JSON error (a timeout with
//! nothing stored keeps waiting for the network). Routes listed in
//! `staleWhileRevalidate` answer from the copy at once and refresh it
//! behind the page's back.

use super::wire::{wire_struct, Wire};

use super::evict::{self, Budget, Item, Plan};
use super::record::RecordError;
use super::text::{cat, num};

/// Whose copy a cached read is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partition<'a> {
    /// App-shell files: the same for everyone.
    Shared,
    /// API data of one user (None: nobody logged in).
    User(Option<&'a str>),
}

/// The IndexedDB key of a cached read. The user's id is length-prefixed so
/// no id or URL can forge another user's prefix.
pub fn cache_key(partition: Partition<'_>, url: &str) -> String {
    let url = super::text::before(url, b'#');
    cat!(partition_prefix(partition), url)
}

/// Request headers that never change what the origin answers: left out of
/// `share_key`, so reads that differ only in them are sent once.
const UNVARYING: &[&str] =
    &["referer", "user-agent", "priority", "sec-ch-ua", "sec-ch-ua-mobile", "sec-ch-ua-platform"];

/// The key under which identical reads in flight at the same time share one
/// request: the URL, the request's credentials mode, the identity generation
/// it started under (so nothing is shared across a login or logout), and
/// every header that may change the answer (sorted, names lowercase).
pub fn share_key(url: &str, credentials: &str, generation: Option<u64>, headers: &[(String, String)]) -> String {
    let url = super::text::before(url, b'#');
    let mut relevant: Vec<String> = Vec::new();
    for (k, v) in headers {
        let k = k.to_ascii_lowercase();
        if !UNVARYING.contains(&k.as_str()) {
            relevant.push(cat!(num(k.len() as u64), ":", k, "=", num(v.len() as u64), ":", v));
        }
    }
    super::sort::sort(&mut relevant);
    let generation = generation.map_or("-".to_string(), num);
    cat!(credentials, "|", generation, "|", super::text::join(&relevant, "|"), "|", url)
}

/// The prefix shared by every key of a partition.
pub fn partition_prefix(partition: Partition<'_>) -> String {
    match partition {
        Partition::Shared => "s|".into(),
        Partition::User(None) => "u0:|".into(),
        Partition::User(Some(user)) => cat!("u", num(user.len() as u64), ":", user, "|"),
    }
}

/// What to do with the cache after an answer from the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Store it (replacing any older copy).
    Store,
    /// The origin forbids keeping it: drop any older copy too, so it is
    /// never served again.
    Forget,
    /// Leave the cache as it is.
    Leave,
}

pub fn keep(status: u16, cache_control: Option<&str>) -> Keep {
    let no_store = cache_control.is_some_and(|cc| {
        super::text::split(cc, b',')
            .any(|d| super::text::before(d, b'=').trim_ascii().eq_ignore_ascii_case("no-store"))
    });
    match status {
        _ if no_store => Keep::Forget,
        // A partial answer is not the resource.
        200..=299 if status != 206 => Keep::Store,
        _ => Keep::Leave,
    }
}

/// Whether this network result gives way to a stored copy (None: no
/// answer at all, or the timeout passed).
pub fn serve_stored(status: Option<u16>) -> bool {
    matches!(status, None | Some(500..=599))
}

/// The `Age` of a stored copy, in whole seconds.
pub fn age_secs(stored_at: u64, now: u64) -> u64 {
    now.saturating_sub(stored_at) / 1000
}

/// Response headers kept with a copy. The body is kept decoded, so its
/// transfer framing goes; cookies are never the worker's to repeat.
pub fn keep_header(name: &str) -> bool {
    !matches!(
        name.to_ascii_lowercase().as_str(),
        "content-length" | "content-encoding" | "transfer-encoding" | "set-cookie" | "connection" | "age"
    )
}

/// The version written by this build.
pub const SCHEMA: u8 = 1;

/// A stored answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Serialize, serde::Deserialize))]
pub struct CachedRead {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When the request this answers was sent (ms since the epoch): what
    /// `Age` counts from, and what orders two copies of one read.
    pub stored_at: u64,
}

wire_struct!(CachedRead { status, headers, body, stored_at });

/// Whether the copy of an answer to a request sent at `sent_at` takes the
/// place of the copy stored (`existing`, encoded). Not when that copy's
/// request was sent later: answers arrive out of order (a login's warm-up
/// sent before a write, answered after the page's own read that followed
/// it), and the copy must not go back to what the origin held before. A
/// stored copy that cannot be read is replaced.
pub fn replaces(sent_at: u64, existing: Option<&[u8]>) -> bool {
    match existing.map(decode::<CachedRead>) {
        Some(Ok(copy)) => copy.stored_at <= sent_at,
        _ => true,
    }
}

/// The small record kept beside each copy, so eviction never reads bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Serialize, serde::Deserialize))]
pub struct ReadMeta {
    pub size: u64,
    pub last_used: u64,
}

wire_struct!(ReadMeta { size, last_used });

/// How often one worker records a use of the same copy (its `last_used`,
/// for eviction's least-recently-used order). Recording is an IndexedDB
/// write, and one per read served from storage made every offline read wait
/// behind the write of the read before it (about 0.5 ms a read, measured in
/// the benchmark). Eviction only runs near the budget, where a minute's
/// imprecision in "least recently" changes nothing anyone notices.
pub const TOUCH_EVERY_MS: u64 = 60_000;
/// Copies whose last recorded use one worker remembers; past that it
/// forgets them all (each is then recorded at its next use, as on a fresh
/// start).
const TOUCHES_KEPT: usize = 64;

/// The uses of copies this worker has recorded lately.
#[derive(Debug, Default)]
pub struct Touches {
    recent: Vec<(String, u64)>,
}

impl Touches {
    /// Whether the use of the copy `key` at `now` is to be recorded; if it
    /// is, it is remembered as recorded. A clock that went back records.
    pub fn due(&mut self, key: &str, now: u64) -> bool {
        for (k, at) in self.recent.iter_mut() {
            if k == key {
                if now >= *at && now - *at < TOUCH_EVERY_MS {
                    return false;
                }
                *at = now;
                return true;
            }
        }
        if self.recent.len() >= TOUCHES_KEPT {
            self.recent.clear();
        }
        self.recent.push((key.to_string(), now));
        true
    }
}

pub fn encode<T: Wire>(value: &T) -> Vec<u8> {
    super::record::versioned(SCHEMA, value)
}

pub fn decode<T: Wire>(bytes: &[u8]) -> Result<T, RecordError> {
    super::record::unversioned(SCHEMA, bytes)
}

/// Which copies to drop after storing one. Cached reads have one budget:
/// past it, the least recently used go until it holds again.
pub fn plan_eviction(index: &[(String, ReadMeta)], max_entries: u32, max_bytes: u64) -> Plan<String> {
    let mut items = Vec::with_capacity(index.len());
    for (key, m) in index {
        items.push(Item { key: key.clone(), size: m.size, last_used: m.last_used, evictable: true });
    }
    let budget = Budget { entries: u64::from(max_entries), bytes: max_bytes };
    evict::plan(&items, budget, budget)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copys_use_is_recorded_at_most_once_a_minute() {
        let mut t = Touches::default();
        assert!(t.due("a", 1_000), "the first use is recorded");
        assert!(!t.due("a", 1_001), "again at once: not");
        assert!(!t.due("a", 1_000 + TOUCH_EVERY_MS - 1));
        assert!(t.due("b", 1_002), "another copy has its own minute");
        assert!(t.due("a", 1_000 + TOUCH_EVERY_MS), "a minute on: recorded");
        assert!(!t.due("a", 1_000 + TOUCH_EVERY_MS + 5));
        assert!(t.due("a", 10), "a clock that went back records");
    }

    #[test]
    fn touches_remember_a_bounded_number_of_copies() {
        let mut t = Touches::default();
        for i in 0..TOUCHES_KEPT as u64 {
            assert!(t.due(&format!("k{i}"), 100 + i));
        }
        assert!(!t.due("k5", 200), "all of them remembered");
        assert!(t.due("new", 500), "one more copy: the others are forgotten");
        assert_eq!(t.recent.len(), 1, "bounded");
        assert!(t.due("k5", 501), "a forgotten copy's use is recorded again");
        assert!(!t.due("new", 502));
    }

    #[test]
    fn reads_share_a_request_only_when_nothing_that_shapes_the_answer_differs() {
        let h = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
        let url = "http://h/api/sync/init";
        let a = share_key(url, "same-origin", Some(1), &h(&[("Accept", "*/*"), ("Referer", "http://h/a")]));
        let b = share_key(url, "same-origin", Some(1), &h(&[("referer", "http://h/b"), ("accept", "*/*")]));
        assert_eq!(a, b, "another page, the same request");
        assert_ne!(a, share_key(url, "same-origin", Some(2), &h(&[("Accept", "*/*")])), "a login came between");
        assert_ne!(a, share_key(url, "omit", Some(1), &h(&[("Accept", "*/*")])), "without cookies");
        assert_ne!(a, share_key(url, "same-origin", Some(1), &h(&[("Accept", "*/*"), ("Range", "bytes=0-9")])));
        assert_ne!(a, share_key("http://h/api/sync/init?x", "same-origin", Some(1), &h(&[("Accept", "*/*")])));
        // No header can pass for others: names and values are length-prefixed.
        assert_ne!(
            share_key(url, "x", None, &h(&[("a", "b|1:c=d")])),
            share_key(url, "x", None, &h(&[("a", "b"), ("c", "d")]))
        );
    }

    #[test]
    fn keys_keep_users_apart() {
        let url = "http://h/api/sync/init#top";
        assert_eq!(cache_key(Partition::User(Some("a")), url), "u1:a|http://h/api/sync/init");
        assert_eq!(cache_key(Partition::User(None), url), "u0:|http://h/api/sync/init");
        assert_eq!(cache_key(Partition::Shared, "http://h/app.js"), "s|http://h/app.js");
        // A user id that looks like another user's key plus a URL cannot
        // land in that user's partition.
        let forged = cache_key(Partition::User(Some("a|http://h/x")), "http://h/y");
        assert!(!forged.starts_with(&partition_prefix(Partition::User(Some("a")))));
        assert!(cache_key(Partition::User(Some("ab")), url).starts_with(&partition_prefix(Partition::User(Some("ab")))));
        assert!(!cache_key(Partition::User(Some("ab")), url).starts_with(&partition_prefix(Partition::User(Some("a")))));
    }

    #[test]
    fn what_is_kept() {
        assert_eq!(keep(200, None), Keep::Store);
        assert_eq!(keep(203, Some("max-age=0")), Keep::Store);
        assert_eq!(keep(200, Some("private, no-store")), Keep::Forget);
        assert_eq!(keep(200, Some("No-Store")), Keep::Forget);
        assert_eq!(keep(500, Some("no-store")), Keep::Forget);
        assert_eq!(keep(200, Some("no-cache")), Keep::Store);
        assert_eq!(keep(206, None), Keep::Leave);
        assert_eq!(keep(304, None), Keep::Leave);
        assert_eq!(keep(401, None), Keep::Leave);
        assert_eq!(keep(503, None), Keep::Leave);
    }

    #[test]
    fn when_the_stored_copy_answers() {
        assert!(serve_stored(None));
        assert!(serve_stored(Some(502)) && serve_stored(Some(503)));
        assert!(!serve_stored(Some(200)) && !serve_stored(Some(404)) && !serve_stored(Some(401)));
        assert_eq!(age_secs(1_000, 62_999), 61);
        assert_eq!(age_secs(5_000, 1_000), 0);
    }

    #[test]
    fn records_round_trip_and_refuse_garbage() {
        let r = CachedRead {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: b"{}".to_vec(),
            stored_at: 7,
        };
        assert_eq!(decode::<CachedRead>(&encode(&r)), Ok(r));
        let m = ReadMeta { size: 2, last_used: 9 };
        assert_eq!(decode::<ReadMeta>(&encode(&m)), Ok(m));
        assert_eq!(decode::<ReadMeta>(&[]), Err(RecordError::Empty));
        assert_eq!(decode::<ReadMeta>(&[2, 0]), Err(RecordError::UnknownSchema(2)));
        assert!(keep_header("Content-Type") && !keep_header("Set-Cookie") && !keep_header("content-length"));
    }

    #[test]
    fn a_copy_never_goes_back_to_an_answer_sent_earlier() {
        let at = |t| encode(&CachedRead { status: 200, headers: vec![], body: b"[]".to_vec(), stored_at: t });
        assert!(replaces(5, None), "nothing stored");
        assert!(replaces(5, Some(&at(4))), "a newer request's answer");
        assert!(replaces(5, Some(&at(5))), "the same moment: the last written wins");
        assert!(!replaces(5, Some(&at(6))), "an answer to an older request, arriving late");
        assert!(replaces(5, Some(&[9, 9])), "an unreadable copy is replaced");
    }

    #[test]
    fn eviction_keeps_the_budget() {
        let index: Vec<(String, ReadMeta)> =
            (0..5).map(|i| (format!("k{i}"), ReadMeta { size: 10, last_used: 100 - i })).collect();
        let p = plan_eviction(&index, 3, 1_000);
        assert_eq!(p.evict, ["k4", "k3"]);
        let p = plan_eviction(&index, 10, 25);
        assert_eq!(p.evict, ["k4", "k3", "k2"]);
        assert!(plan_eviction(&index, 5, 50).evict.is_empty());
    }
}
