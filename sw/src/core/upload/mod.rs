//! Uploads: one asset's trip from the page to the object store, as a state
//! machine over a record and a clock value.
//!
//! presign → PUT to the store (or, above `multipartThresholdBytes`, each
//! missing part) → `complete` → done. Network failures, 5xx, 408 and 429
//! back off like outbox entries; an expired URL (403 from the store) gets a
//! fresh one at once; a refusal dead-letters the upload, which the page
//! can retry or discard. The bytes stay on the device until the origin has
//! confirmed the upload.

use super::wire::{varint, Reader, Wire};

pub mod api;
mod room;

pub use room::{blob_budget, no_room, over_quota, plan_room, quota_refused, storage_refused, BlobMeta, Make, Room};

use super::backoff;
use super::clock::{self, Heard, Timing, Trigger};
use super::config::Config;
use super::outcome::{classify, Outcome};
use super::protocol::{UploadState, UploadStatus};
use super::record::{DeadReason, RecordError};

/// Temp asset ids the worker hands out start with this; later writes that
/// carry one are held until the upload has its server id.
pub const TEMP_PREFIX: &str = "local-";

/// Whether a write's URL or body may name an upload's temp id (a cheap
/// look before reading the id map: most writes name none).
pub fn names_temp_id(url: &str, body: &[u8]) -> bool {
    let needle = TEMP_PREFIX.as_bytes();
    super::text::contains(url, TEMP_PREFIX) || body.windows(needle.len()).any(|w| w == needle)
}

/// A URL this close to its expiry is not used: a fresh one is asked for.
/// (A quarter of the URL's lifetime when that is shorter, so short-lived
/// URLs are still used.)
pub const PRESIGN_MARGIN_MS: u64 = 60_000;

#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Serialize, serde::Deserialize))]
pub enum Phase {
    /// Ask the origin for a presigned PUT (or a multipart upload).
    Presign,
    /// PUT the whole body to `url`.
    Put { url: String, headers: Vec<(String, String)>, issued_at: u64, expires_at: u64 },
    /// PUT the parts the store does not hold yet.
    Parts { part_size: u64, part_count: u32, done: Vec<u32> },
    /// The bytes are in the store: ask the origin to complete.
    Complete,
    /// The origin confirmed the upload.
    Done,
}

impl Wire for Phase {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            Phase::Presign => varint(out, 0),
            Phase::Put { url, headers, issued_at, expires_at } => {
                varint(out, 1);
                url.put(out);
                headers.put(out);
                issued_at.put(out);
                expires_at.put(out);
            }
            Phase::Parts { part_size, part_count, done } => {
                varint(out, 2);
                part_size.put(out);
                part_count.put(out);
                done.put(out);
            }
            Phase::Complete => varint(out, 3),
            Phase::Done => varint(out, 4),
        }
    }
    fn get(r: &mut Reader<'_>) -> Self {
        match r.variant() {
            0 => Phase::Presign,
            1 => Phase::Put {
                url: Wire::get(r),
                headers: Wire::get(r),
                issued_at: Wire::get(r),
                expires_at: Wire::get(r),
            },
            2 => Phase::Parts { part_size: Wire::get(r), part_count: Wire::get(r), done: Wire::get(r) },
            3 => Phase::Complete,
            4 => Phase::Done,
            _ => r.unknown(Phase::Presign),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Serialize, serde::Deserialize))]
pub struct Upload {
    /// The temp asset id given to the page (`local-…`): the key of the
    /// record and of the blob.
    pub id: String,
    /// The origin's asset id, once presigned.
    pub asset_id: Option<String>,
    pub user: Option<String>,
    pub filename: String,
    pub content_type: String,
    pub size: u64,
    pub project_id: Option<String>,
    /// Sent with the presign, so a repeated presign makes no second asset.
    pub idempotency_key: String,
    pub created_at: u64,
    pub phase: Phase,
    pub retries: u32,
    pub next_at: u64,
    pub last_status: Option<u16>,
    /// Why it stopped (None: still going or done); the outbox's reasons.
    pub dead: Option<DeadReason>,
    /// When the last step ended (0: never tried). Schema 2.
    pub last_attempt_at: u64,
}

impl Wire for Upload {
    fn put(&self, out: &mut Vec<u8>) {
        self.id.put(out);
        self.asset_id.put(out);
        self.user.put(out);
        self.filename.put(out);
        self.content_type.put(out);
        self.size.put(out);
        self.project_id.put(out);
        self.idempotency_key.put(out);
        self.created_at.put(out);
        self.phase.put(out);
        self.retries.put(out);
        self.next_at.put(out);
        self.last_status.put(out);
        self.dead.put(out);
        self.last_attempt_at.put(out);
    }
    fn get(r: &mut Reader<'_>) -> Self {
        read_upload(r, SCHEMA)
    }
}

/// The fields of an upload record of `schema`, in the order written: schema
/// 1 had no `last_attempt_at`, schemas 1 and 2 kept `dead` as text.
fn read_upload(r: &mut Reader<'_>, schema: u8) -> Upload {
    Upload {
        id: Wire::get(r),
        asset_id: Wire::get(r),
        user: Wire::get(r),
        filename: Wire::get(r),
        content_type: Wire::get(r),
        size: Wire::get(r),
        project_id: Wire::get(r),
        idempotency_key: Wire::get(r),
        created_at: Wire::get(r),
        phase: Wire::get(r),
        retries: Wire::get(r),
        next_at: Wire::get(r),
        last_status: Wire::get(r),
        dead: match schema {
            1 | 2 => Option::<String>::get(r).as_deref().map(legacy_reason),
            _ => Wire::get(r),
        },
        last_attempt_at: if schema == 1 { 0 } else { Wire::get(r) },
    }
}

/// What the worker does next for an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Presign (`multipart`: ask for a multipart upload).
    Presign {
        multipart: bool,
    },
    /// The URL expired or is about to: ask for a fresh one.
    Represign,
    Put,
    /// Learn which parts the store has, get URLs, send the missing ones.
    Parts,
    Complete,
    /// Nothing: done, dead, or waiting for `next_at`.
    Wait,
}

impl Upload {
    pub fn new(id: String, user: Option<String>, meta: Meta, idempotency_key: String, now: u64) -> Upload {
        Upload {
            id,
            asset_id: None,
            user,
            filename: meta.filename,
            content_type: meta.content_type,
            size: meta.size,
            project_id: meta.project_id,
            idempotency_key,
            created_at: now,
            phase: Phase::Presign,
            retries: 0,
            next_at: now,
            last_status: None,
            dead: None,
            last_attempt_at: 0,
        }
    }

    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Pending: not done and not dead. A pending upload's blob is never
    /// evicted.
    pub fn is_pending(&self) -> bool {
        !self.is_done() && self.dead.is_none()
    }

    /// Bytes known to be in the store.
    pub fn bytes_done(&self) -> u64 {
        match &self.phase {
            Phase::Presign | Phase::Put { .. } => 0,
            Phase::Parts { part_size, done, .. } => {
                let mut bytes = 0;
                for &n in done {
                    bytes += part_range(n, *part_size, self.size).map_or(0, |(a, b)| b - a);
                }
                bytes
            }
            Phase::Complete | Phase::Done => self.size,
        }
    }
}

/// What the page tells about a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub filename: String,
    pub content_type: String,
    pub size: u64,
    pub project_id: Option<String>,
}

fn timing(u: &Upload) -> Timing {
    Timing { next_at: u.next_at, silent: u.last_status.is_none(), last_attempt_at: u.last_attempt_at }
}

/// The next action, if it is time for `trigger` (the retry clock's rules,
/// as for queued writes).
pub fn next(config: &Config, u: &Upload, now: u64, trigger: Trigger) -> Action {
    if !u.is_pending() || !clock::due(timing(u), now, trigger) {
        return Action::Wait;
    }
    match &u.phase {
        Phase::Presign if u.asset_id.is_some() => Action::Represign,
        Phase::Presign => Action::Presign { multipart: u.size > config.multipart_threshold_bytes },
        Phase::Put { issued_at, expires_at, .. } if now + margin(*issued_at, *expires_at) >= *expires_at => {
            Action::Represign
        }
        Phase::Put { .. } => Action::Put,
        Phase::Parts { .. } => Action::Parts,
        Phase::Complete => Action::Complete,
        Phase::Done => Action::Wait,
    }
}

fn margin(issued_at: u64, expires_at: u64) -> u64 {
    PRESIGN_MARGIN_MS.min(expires_at.saturating_sub(issued_at) / 4)
}

/// Byte range `[start, end)` of part `n` (1-based); None past the end.
pub fn part_range(n: u32, part_size: u64, size: u64) -> Option<(u64, u64)> {
    let start = u64::from(n.checked_sub(1)?) * part_size;
    (start < size).then(|| (start, (start + part_size).min(size)))
}

/// Parts still to send, ascending, given those the store reports.
pub fn missing_parts(part_count: u32, have: &[u32]) -> Vec<u32> {
    let mut missing = Vec::new();
    for n in 1..=part_count {
        if !have.contains(&n) {
            missing.push(n);
        }
    }
    missing
}

/// The presign answered: where the bytes go.
pub fn presigned(u: &mut Upload, asset_id: String, phase: Phase) {
    u.asset_id = Some(asset_id);
    u.phase = phase;
    u.next_at = 0;
}

/// A part reached the store.
pub fn part_done(u: &mut Upload, n: u32) {
    if let Phase::Parts { done, part_count, .. } = &mut u.phase {
        if !done.contains(&n) {
            // Kept in order: inserted where it goes.
            let at = done.iter().position(|&d| d > n).unwrap_or(done.len());
            done.insert(at, n);
        }
        if done.len() as u32 >= *part_count {
            u.phase = Phase::Complete;
        }
    }
}

/// Applies the answer to the current step. Returns whether the upload
/// moved on (or finished). No answer at all spends no retry: the upload
/// waits for the network like a queued write (`clock::probe_delay`).
pub fn after(config: &Config, u: &mut Upload, heard: Heard, now: u64, jitter: f64) -> bool {
    let status = heard.status();
    u.last_status = status;
    u.last_attempt_at = now;
    let store_step = matches!(u.phase, Phase::Put { .. } | Phase::Parts { .. });
    match (heard, status.map_or(Outcome::Retry, |s| classify(Some(s)))) {
        (Heard::Nothing, _) => {
            u.next_at = now + clock::probe_delay(config, now.saturating_sub(u.created_at), jitter);
            false
        }
        (_, Outcome::Delivered) => {
            u.retries = 0;
            u.phase = match &u.phase {
                Phase::Put { .. } => Phase::Complete,
                Phase::Complete => Phase::Done,
                other => other.clone(),
            };
            true
        }
        // The store refuses an expired (or otherwise stale) URL: a fresh one
        // is asked for at once. It still counts, so a URL the store refuses
        // for another reason cannot loop for ever.
        (Heard::Status(403), _) if store_step => {
            if let Phase::Put { .. } = u.phase {
                u.phase = Phase::Presign;
            }
            spend(config, u, now, None, Some(403))
        }
        // `complete` found the bytes missing or short: send them again.
        (Heard::Status(422), _) if u.phase == Phase::Complete => {
            u.phase = Phase::Presign;
            spend(config, u, now, Some(jitter), Some(422))
        }
        // The user's session is gone: the upload waits for them, unchanged
        // (an upload of nobody has nobody to wait for).
        (_, Outcome::Parked) if u.user.is_some() => false,
        (Heard::Status(s), Outcome::Refused | Outcome::Parked) => {
            u.dead = Some(DeadReason::Refused { status: s });
            false
        }
        (Heard::Status(s), _) => spend(config, u, now, Some(jitter), Some(s)),
        (_, _) => spend(config, u, now, Some(jitter), None),
    }
}

/// When the next pending upload of `user` is due (None: nothing to wake
/// for), and whether one waits for the network.
pub fn next_wake(uploads: &[Upload], user: Option<&str>) -> (Option<u64>, bool) {
    let (mut at, mut silent) = (None, false);
    for u in uploads {
        if u.is_pending() && u.user.as_deref() == user {
            at = super::clock::earliest(&[at, Some(u.next_at)]);
            silent |= u.last_status.is_none();
        }
    }
    (at, silent)
}

/// Counts a retry, due after the backoff (`jitter` given) or at once;
/// dead past `maxRetries`, with `last` the last answer (None: timed out).
fn spend(config: &Config, u: &mut Upload, now: u64, jitter: Option<f64>, last: Option<u16>) -> bool {
    u.retries += 1;
    if u.retries > config.max_retries {
        u.dead = Some(DeadReason::RetriesExhausted { status: last });
        return false;
    }
    u.next_at = match jitter {
        Some(j) => now + backoff::delay_ms(config, u.retries, j, None).unwrap_or(0),
        None => now,
    };
    false
}

/// A dead upload goes again, from where it stopped, with fresh retries.
pub fn revive(u: &mut Upload, now: u64) -> bool {
    if u.dead.take().is_some() {
        u.retries = 0;
        u.next_at = now;
        true
    } else {
        false
    }
}

/// How the page sees an upload (`status().uploads`).
pub fn status(u: &Upload) -> UploadStatus {
    UploadStatus {
        asset_id: u.id.clone(),
        server_id: u.asset_id.clone(),
        filename: u.filename.clone(),
        size: u.size,
        done: u.bytes_done(),
        state: if u.dead.is_some() { UploadState::Dead } else { UploadState::Pending },
        reason: u.dead.as_ref().map(DeadReason::text),
        retry_at: (u.dead.is_none() && u.next_at > 0).then_some(u.next_at),
    }
}

/// The version written by this build. Schema 2 added `last_attempt_at`,
/// schema 3 made `dead` the outbox's `DeadReason` (it was text).
pub const SCHEMA: u8 = 3;

pub fn encode(u: &Upload) -> Vec<u8> {
    super::record::versioned(SCHEMA, u)
}

/// Reads an upload record of this schema or an older one (an upload left
/// by an earlier build, upgraded as it is read).
pub fn decode(bytes: &[u8]) -> Result<Upload, RecordError> {
    let schema = match bytes.first() {
        Some(&old @ (1 | 2)) => old,
        _ => SCHEMA,
    };
    super::record::unversioned_by(schema, bytes, |r| read_upload(r, schema))
}

/// The reason an older build wrote as text, as the `DeadReason` it meant.
fn legacy_reason(text: &str) -> DeadReason {
    let status = super::text::after(text, "HTTP ").and_then(|s| s.strip_suffix(")").unwrap_or(s).parse::<u16>().ok());
    if text.starts_with("refused") {
        return DeadReason::Refused { status: status.unwrap_or(400) };
    }
    if super::text::contains(text, "no longer on this device") {
        return DeadReason::FileGone;
    }
    DeadReason::RetriesExhausted { status }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn upload(size: u64) -> Upload {
        let meta = Meta { filename: "a.bin".into(), content_type: "video/mp4".into(), size, project_id: None };
        Upload::new("local-1".into(), Some("u".into()), meta, "k".into(), 1_000)
    }

    fn c() -> Config {
        Config::default()
    }

    #[test]
    fn small_files_take_one_put_large_ones_parts() {
        let c = c();
        assert_eq!(next(&c, &upload(MIB), 1_000, Trigger::Scheduled), Action::Presign { multipart: false });
        assert_eq!(next(&c, &upload(64 * MIB), 1_000, Trigger::Scheduled), Action::Presign { multipart: true });
        assert_eq!(
            next(&c, &upload(c.multipart_threshold_bytes), 1_000, Trigger::Scheduled),
            Action::Presign { multipart: false }
        );
    }

    #[test]
    fn a_single_put_from_presign_to_done() {
        let c = c();
        let mut u = upload(MIB);
        let put = Phase::Put { url: "http://s/x".into(), headers: vec![], issued_at: 1_000, expires_at: 10_000_000 };
        presigned(&mut u, "srv".into(), put);
        assert_eq!(next(&c, &u, 2_000, Trigger::Scheduled), Action::Put);
        assert!(after(&c, &mut u, Heard::Status(200), 2_000, 0.5));
        assert_eq!((next(&c, &u, 2_000, Trigger::Scheduled), u.bytes_done()), (Action::Complete, MIB));
        assert!(after(&c, &mut u, Heard::Status(200), 2_000, 0.5));
        assert!(u.is_done() && !u.is_pending());
        assert_eq!(next(&c, &u, 2_000, Trigger::Scheduled), Action::Wait);
    }

    #[test]
    fn an_expired_url_is_replaced_before_use_and_after_a_403() {
        let c = c();
        let mut u = upload(MIB);
        presigned(
            &mut u,
            "srv".into(),
            Phase::Put { url: "u".into(), headers: vec![], issued_at: 0, expires_at: 1_000_000 },
        );
        assert_eq!(next(&c, &u, 1_000_000 - PRESIGN_MARGIN_MS, Trigger::Scheduled), Action::Represign);
        assert_eq!(next(&c, &u, 10_000, Trigger::Scheduled), Action::Put);
        assert!(!after(&c, &mut u, Heard::Status(403), 10_000, 0.5));
        assert_eq!(
            (next(&c, &u, 10_000, Trigger::Scheduled), u.retries),
            (Action::Represign, 1),
            "at once, no backoff"
        );
        // A store that refuses every fresh URL ends in a dead letter.
        for _ in 0..c.max_retries {
            presigned(
                &mut u,
                "srv".into(),
                Phase::Put { url: "u".into(), headers: vec![], issued_at: 0, expires_at: 10_000_000 },
            );
            after(&c, &mut u, Heard::Status(403), 10_000, 0.5);
        }
        assert_eq!(u.dead, Some(DeadReason::RetriesExhausted { status: Some(403) }), "{u:?}");
    }

    #[test]
    fn short_lived_urls_are_used_while_three_quarters_of_their_life_is_left() {
        let c = c();
        let mut u = upload(MIB);
        presigned(
            &mut u,
            "srv".into(),
            Phase::Put { url: "u".into(), headers: vec![], issued_at: 0, expires_at: 4_000 },
        );
        assert_eq!(next(&c, &u, 2_999, Trigger::Scheduled), Action::Put);
        assert_eq!(next(&c, &u, 3_000, Trigger::Scheduled), Action::Represign);
    }

    #[test]
    fn failures_back_off_then_dead_letter_and_revive() {
        let c = c();
        let mut u = upload(MIB);
        assert!(!after(&c, &mut u, Heard::Status(503), 1_000, 0.5));
        assert_eq!((u.retries, u.next_at), (1, 3_000));
        assert_eq!(next(&c, &u, 2_999, Trigger::Scheduled), Action::Wait);
        assert_eq!(next(&c, &u, 2_999, Trigger::Explicit), Action::Wait, "answered: keeps its backoff");
        for _ in 0..c.max_retries {
            after(&c, &mut u, Heard::Status(503), 5_000, 0.5);
        }
        assert!(u.dead.is_some() && !u.is_pending());
        assert!(revive(&mut u, 9_000));
        assert_eq!((u.retries, next(&c, &u, 9_000, Trigger::Scheduled)), (0, Action::Presign { multipart: false }));
        let mut refused = upload(MIB);
        after(&c, &mut refused, Heard::Status(400), 1_000, 0.5);
        assert_eq!(refused.dead, Some(DeadReason::Refused { status: 400 }));
    }

    #[test]
    fn a_401_parks_an_upload_of_a_user_and_refuses_one_of_nobody() {
        let c = c();
        let mut u = upload(MIB);
        assert!(!after(&c, &mut u, Heard::Status(401), 5_000, 0.5));
        assert_eq!((u.retries, u.dead.is_none(), u.next_at), (0, true, 1_000));
        let mut anonymous = Upload { user: None, ..upload(MIB) };
        after(&c, &mut anonymous, Heard::Status(401), 5_000, 0.5);
        assert!(anonymous.dead.is_some());
    }

    #[test]
    fn parts_resume_from_what_the_store_has() {
        let c = c();
        let mut u = upload(20 * MIB + 5);
        presigned(&mut u, "srv".into(), Phase::Parts { part_size: 8 * MIB, part_count: 3, done: vec![] });
        assert_eq!(next(&c, &u, 2_000, Trigger::Scheduled), Action::Parts);
        assert_eq!(part_range(3, 8 * MIB, u.size), Some((16 * MIB, 20 * MIB + 5)));
        assert_eq!(part_range(4, 8 * MIB, u.size), None);
        assert_eq!(part_range(0, 8 * MIB, u.size), None);
        assert_eq!(missing_parts(3, &[2]), [1, 3]);
        part_done(&mut u, 2);
        part_done(&mut u, 2);
        assert_eq!(u.bytes_done(), 8 * MIB);
        part_done(&mut u, 3);
        assert_eq!(u.bytes_done(), 12 * MIB + 5);
        part_done(&mut u, 1);
        assert_eq!(u.phase, Phase::Complete);
        assert_eq!(u.bytes_done(), u.size);
    }

    #[test]
    fn complete_finding_nothing_sends_the_bytes_again() {
        let c = c();
        let mut u = upload(MIB);
        presigned(&mut u, "srv".into(), Phase::Complete);
        after(&c, &mut u, Heard::Status(422), 5_000, 0.5);
        assert_eq!(u.phase, Phase::Presign);
        assert_eq!(
            next(&c, &u, u.next_at, Trigger::Scheduled),
            Action::Represign,
            "the asset exists: a fresh URL, not a new asset"
        );
    }

    #[test]
    fn no_answer_waits_for_the_network_without_spending_retries() {
        let c = c();
        let mut u = upload(MIB);
        // Three days without a network: probed ever more rarely, never dead.
        let mut now = 1_000;
        while now < 3 * 24 * 3_600_000 {
            assert!(!after(&c, &mut u, Heard::Nothing, now, 0.5));
            assert!(u.next_at - now <= 32_000);
            now = u.next_at;
        }
        assert_eq!((u.retries, u.dead.clone(), u.last_attempt_at), (0, None, u.last_attempt_at));
        // Silent, so a hint sends it once 2 s have passed since the last try.
        let last = u.last_attempt_at;
        assert_eq!(next(&c, &u, last + 1_999, Trigger::Hint), Action::Wait);
        assert_eq!(next(&c, &u, last + 2_000, Trigger::Hint), Action::Presign { multipart: false });
        assert_eq!(next_wake(&[u.clone()], Some("u")), (Some(u.next_at), true));
        assert_eq!(next_wake(&[u], Some("other")), (None, false));
    }

    #[test]
    fn schema_1_records_are_upgraded_as_read() {
        let u = upload(5);
        let mut v1 = vec![1u8];
        v1.extend(
            postcard::to_allocvec(&(
                &u.id,
                &u.asset_id,
                &u.user,
                &u.filename,
                &u.content_type,
                u.size,
                &u.project_id,
                &u.idempotency_key,
                u.created_at,
                &u.phase,
                u.retries,
                u.next_at,
                u.last_status,
                None::<String>,
            ))
            .unwrap(),
        );
        assert_eq!(decode(&v1), Ok(u));
    }

    #[test]
    fn schema_2_records_keep_their_dead_reason_typed() {
        let u = upload(5);
        let v2 = |dead: &str| {
            let mut bytes = vec![2u8];
            let fields = (&u.id, &u.asset_id, &u.user, &u.filename, &u.content_type, u.size, &u.project_id);
            let rest = (&u.idempotency_key, u.created_at, &u.phase, u.retries, u.next_at, Some(503u16));
            bytes.extend(postcard::to_allocvec(&(fields, rest, Some(dead), 77u64)).unwrap());
            decode(&bytes).unwrap()
        };
        let read = v2("retries exhausted (last answer HTTP 503)");
        assert_eq!((read.dead, read.last_attempt_at), (Some(DeadReason::RetriesExhausted { status: Some(503) }), 77));
        assert_eq!(v2("refused by the origin or the store (HTTP 413)").dead, Some(DeadReason::Refused { status: 413 }));
        assert_eq!(
            v2("retries exhausted (requests timed out)").dead,
            Some(DeadReason::RetriesExhausted { status: None })
        );
        assert_eq!(
            v2("the file is no longer on this device (site data cleared?); discard it and upload again").dead,
            Some(DeadReason::FileGone)
        );
        assert_eq!(encode(&upload(5))[0], 3, "written as schema 3");
    }

    #[test]
    fn a_temp_id_is_looked_for_in_url_and_body() {
        assert!(names_temp_id("http://h/api/assets/local-1/x", b""));
        assert!(names_temp_id("http://h/api/inbox", br#"{"cover":"local-1"}"#));
        assert!(!names_temp_id("http://h/api/inbox", br#"{"cover":"a1"}"#));
    }

    #[test]
    fn records_round_trip() {
        let mut u = upload(3);
        presigned(&mut u, "srv".into(), Phase::Parts { part_size: 1, part_count: 3, done: vec![1] });
        assert_eq!(decode(&encode(&u)), Ok(u));
        assert_eq!(decode(&[7]), Err(RecordError::UnknownSchema(7)));
    }

    /// `core::wire` writes what postcard wrote, and reads it back: every
    /// phase, every record kept beside a file.
    #[test]
    fn record_bytes_are_postcards_both_ways() {
        fn same<T>(value: &T, schema: u8, ours: Vec<u8>)
        where
            T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + core::fmt::Debug,
        {
            assert_eq!(ours[0], schema);
            assert_eq!(ours[1..], postcard::to_allocvec(value).unwrap()[..], "{value:?}");
            assert_eq!(&postcard::from_bytes::<T>(&ours[1..]).unwrap(), value);
        }
        let put = Phase::Put {
            url: "https://s3/b/k?sig=1".into(),
            headers: vec![("content-type".into(), "image/png".into())],
            issued_at: 1_700_000_000_000,
            expires_at: 1_700_003_600_000,
        };
        let phases = [
            Phase::Presign,
            put,
            Phase::Parts { part_size: 8 << 20, part_count: 300, done: vec![1, 2, 299] },
            Phase::Complete,
            Phase::Done,
        ];
        for (i, phase) in phases.into_iter().enumerate() {
            let mut u = upload(1 << (i * 8));
            u.phase = phase;
            u.asset_id = (i % 2 == 0).then(|| "a1".into());
            u.dead = (i == 3).then_some(DeadReason::Refused { status: 413 });
            u.last_status = (i > 1).then_some(503);
            same(&u, SCHEMA, encode(&u));
            assert_eq!(decode(&encode(&u)), Ok(u));
        }
        let meta = BlobMeta {
            size: 5,
            last_used: 9,
            pinned: true,
            asset_id: None,
            user: Some("u".into()),
            content_type: "image/png".into(),
        };
        same(&meta, crate::core::reads::SCHEMA, crate::core::reads::encode(&meta));
        let read = crate::core::reads::CachedRead {
            status: 200,
            headers: vec![("etag".into(), "\"x\"".into())],
            body: b"[1]".to_vec(),
            stored_at: 42,
        };
        same(&read, crate::core::reads::SCHEMA, crate::core::reads::encode(&read));
        let used = crate::core::reads::ReadMeta { size: 3, last_used: 43 };
        same(&used, crate::core::reads::SCHEMA, crate::core::reads::encode(&used));
    }

    #[test]
    fn a_write_that_does_not_fit_the_quota() {
        assert!(over_quota(9.9e6, 10e6, 1_000_000));
        assert!(!over_quota(1e6, 10e6, 1_000_000));
        assert!(!over_quota(0.0, 0.0, 5), "no quota known: not a quota error");
    }

    #[test]
    fn the_blob_budget_respects_the_quota() {
        assert_eq!(blob_budget(500, None), 500);
        assert_eq!(blob_budget(500, Some(100)), 80);
        assert_eq!(blob_budget(500, Some(10_000)), 500);
    }
}
