//! The outbox's state machine, as pure functions over entries and a clock
//! value. The web side stores entries, sends what `due` names, reports each
//! answer to `after_attempt`, and sleeps until `next_wake`. The timing rules
//! (what a trigger changes, how a write waits for the network) are the
//! retry clock's, shared with uploads (`core::clock`).
//!
//! Order: entries of one queue are delivered strictly in id order. A
//! queue's head that is backing off holds back the entries behind it, so
//! the origin never sees a later write of a queue before an earlier one.
//! Distinct queues are independent and may be in flight together.

use super::backoff;
pub use super::clock::Trigger;
use super::clock::{self, Heard, Timing};
use super::config::Config;
use super::outcome::{classify, Outcome};
use super::record::{DeadReason, Entry, State, StoredRequest};

/// One answer (or its absence) to an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    pub heard: Heard,
    pub retry_after_ms: Option<u64>,
}

impl Attempt {
    /// An attempt the origin answered with `status`.
    pub fn status(status: u16) -> Attempt {
        Attempt { heard: Heard::Status(status), retry_after_ms: None }
    }

    /// An attempt that got no answer at all.
    pub const NOTHING: Attempt = Attempt { heard: Heard::Nothing, retry_after_ms: None };
}

/// What happens to the entry after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The origin has it: remove the entry.
    Delivered,
    /// Try again at this time.
    Retry { at: u64 },
    /// Moved to the dead letters for this reason.
    Dead(DeadReason),
    /// Its user is no longer logged in: it waits for them, unchanged.
    Parked,
}

/// The queue every write joins until routes can name their own.
pub const DEFAULT_QUEUE: &str = "default";

/// A new entry for a write. `first`: the answer to a first attempt, which
/// counts like any other failure (it schedules retry 1); without one the
/// write was never tried and is due at once, behind its queue.
#[allow(clippy::too_many_arguments)]
pub fn new_entry(
    config: &Config,
    id: u64,
    user: Option<String>,
    request: StoredRequest,
    idempotency_key: String,
    now: u64,
    first: Option<Attempt>,
    jitter: f64,
) -> Entry {
    let mut entry = Entry {
        id,
        user,
        queue: DEFAULT_QUEUE.into(),
        idempotency_key,
        created_at: now,
        retries: 0,
        next_at: now,
        state: State::Pending,
        last_status: None,
        last_attempt_at: now,
        request,
    };
    if let Some(attempt) = first {
        after_attempt(config, &mut entry, attempt, now, jitter);
    }
    entry
}

/// Whether a queue holds pending entries of `user` (other users' entries
/// are parked and hold nobody back).
pub fn queue_busy(entries: &[Entry], queue: &str, user: Option<&str>) -> bool {
    entries.iter().any(|e| replayable(e, user) && e.queue == queue)
}

/// Applies an attempt's result to `entry`. `jitter` is a draw in `[0, 1)`.
///
/// An attempt that got no answer at all spends no retry, early or not: the
/// network being gone says nothing about the write, and an outage of any
/// length must not bring it closer to the dead letters. The write waits for
/// the network, probed again after `clock::probe_delay`; only the retention
/// limit (`expire`) ends that wait.
pub fn after_attempt(config: &Config, entry: &mut Entry, attempt: Attempt, now: u64, jitter: f64) -> Step {
    entry.last_status = attempt.heard.status();
    entry.last_attempt_at = now;
    let status = match attempt.heard {
        Heard::Nothing => {
            entry.next_at = now + clock::probe_delay(config, now.saturating_sub(entry.created_at), jitter);
            return Step::Retry { at: entry.next_at };
        }
        Heard::TimedOut => None,
        Heard::Status(s) => Some(s),
    };
    match status.map_or(Outcome::Retry, |s| classify(Some(s))) {
        Outcome::Delivered => Step::Delivered,
        // Parked for its user; a write queued while nobody was logged in has
        // nobody to wait for, so the refusal stands.
        Outcome::Parked if entry.user.is_some() => Step::Parked,
        Outcome::Parked => {
            let reason = DeadReason::Refused { status: 401 };
            entry.state = State::Dead { reason: reason.clone(), at: now };
            Step::Dead(reason)
        }
        Outcome::Refused => {
            let reason = DeadReason::Refused { status: status.unwrap_or(0) };
            entry.state = State::Dead { reason: reason.clone(), at: now };
            Step::Dead(reason)
        }
        Outcome::Retry => {
            entry.retries += 1;
            match backoff::delay_ms(config, entry.retries, jitter, attempt.retry_after_ms) {
                Some(delay) => {
                    entry.next_at = now + delay;
                    Step::Retry { at: entry.next_at }
                }
                None => {
                    let reason = DeadReason::RetriesExhausted { status };
                    entry.state = State::Dead { reason: reason.clone(), at: now };
                    Step::Dead(reason)
                }
            }
        }
    }
}

fn replayable(entry: &Entry, user: Option<&str>) -> bool {
    entry.state == State::Pending && entry.user.as_deref() == user
}

/// The head of each queue: its oldest pending entry of `user`'s. Entries
/// of other users are parked, not heads.
fn heads<'a>(entries: &'a [Entry], user: Option<&str>) -> Vec<&'a Entry> {
    let mut heads: Vec<&Entry> = Vec::new();
    'entries: for e in entries {
        if !replayable(e, user) {
            continue;
        }
        for h in heads.iter_mut() {
            if h.queue == e.queue {
                if e.id < h.id {
                    *h = e;
                }
                continue 'entries;
            }
        }
        heads.push(e);
    }
    super::sort::sort_by(&mut heads, |a, b| a.id < b.id);
    heads
}

fn timing(e: &Entry) -> Timing {
    Timing { next_at: e.next_at, silent: e.last_status.is_none(), last_attempt_at: e.last_attempt_at }
}

/// Ids to send now, oldest first: each queue's head if it is due for
/// `trigger` (`clock::due`) and not already in flight, at most `limit`.
pub fn due(
    entries: &[Entry],
    user: Option<&str>,
    in_flight: &[u64],
    now: u64,
    limit: usize,
    trigger: Trigger,
) -> Vec<u64> {
    let mut ids = Vec::new();
    for e in heads(entries, user) {
        if ids.len() == limit {
            break;
        }
        if clock::due(timing(e), now, trigger) && !in_flight.contains(&e.id) {
            ids.push(e.id);
        }
    }
    ids
}

/// Whether a head of `user`'s is waiting for the network (its last attempt
/// got no answer): a hint that the network is back is worth a pass then.
pub fn waits_for_network(entries: &[Entry], user: Option<&str>) -> bool {
    heads(entries, user).iter().any(|e| e.last_status.is_none())
}

/// When the next head becomes due (None: nothing pending for `user`).
pub fn next_wake(entries: &[Entry], user: Option<&str>) -> Option<u64> {
    let mut at = None;
    for e in heads(entries, user) {
        at = super::clock::earliest(&[at, Some(e.next_at)]);
    }
    at
}

/// Whether a new write may try the network before the writes already
/// waiting in its queue. It may not: it would overtake them (FIFO), and it
/// may depend on them (a message for a session still queued). It joins the
/// queue untried instead, due at once behind them.
pub fn may_go_first(older_pending_in_queue: bool) -> bool {
    !older_pending_in_queue
}

/// Dead-letters pending entries older than the retention; returns their ids.
pub fn expire(config: &Config, entries: &mut [Entry], now: u64) -> Vec<u64> {
    let mut expired = Vec::new();
    for e in entries.iter_mut() {
        if e.state == State::Pending && now.saturating_sub(e.created_at) >= config.retention_ms {
            e.state = State::Dead { reason: DeadReason::Expired, at: now };
            expired.push(e.id);
        }
    }
    expired
}

/// Whether an entry is still a same-origin write of this config; checked
/// before every replay, since the config may have changed since the write
/// was queued (a replay must never send what the worker would not take now).
pub fn still_a_write(config: &Config, origin: &str, entry: &Entry) -> bool {
    let r = &entry.request;
    matches!(super::route::route_request(config, origin, &r.method, &r.url, false), super::route::Route::Write(_))
}

/// Dead-letters an entry that is no longer a write route.
pub fn off_route(entry: &mut Entry, now: u64) -> DeadReason {
    entry.state = State::Dead { reason: DeadReason::NotAWrite, at: now };
    DeadReason::NotAWrite
}

/// A manual retry of a dead letter: pending again, due now, with a fresh
/// retry budget. Its Idempotency-Key is kept, so it cannot apply twice.
pub fn revive(entry: &mut Entry, now: u64) -> bool {
    if matches!(entry.state, State::Dead { .. }) {
        entry.state = State::Pending;
        entry.retries = 0;
        entry.next_at = now;
        true
    } else {
        false
    }
}

/// How a Background Sync event ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncEnd {
    /// Nothing left to do now.
    Done,
    /// Entries are still pending: fail the event so the browser fires it
    /// again later.
    AskAgain,
    /// The browser will not fire this registration again: end quietly and
    /// register a new one, so pending entries keep a trigger.
    Reregister,
}

pub fn sync_end(pending_left: bool, last_chance: bool) -> SyncEnd {
    match (pending_left, last_chance) {
        (false, _) => SyncEnd::Done,
        (true, false) => SyncEnd::AskAgain,
        (true, true) => SyncEnd::Reregister,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::record::{Credentials, StoredRequest};

    fn entry(id: u64, queue: &str, user: Option<&str>) -> Entry {
        Entry {
            id,
            user: user.map(Into::into),
            queue: queue.into(),
            idempotency_key: format!("k{id}"),
            created_at: 0,
            retries: 0,
            next_at: 0,
            state: State::Pending,
            last_status: None,
            last_attempt_at: 0,
            request: StoredRequest {
                method: "POST".into(),
                url: format!("http://h/api/chat/{id}"),
                headers: vec![],
                body: vec![],
                credentials: Credentials::SameOrigin,
            },
        }
    }

    const A: Option<&str> = Some("alice");

    #[test]
    fn each_queue_sends_its_oldest_entry_only() {
        let es = vec![entry(3, "q1", A), entry(1, "q1", A), entry(2, "q2", A), entry(4, "q2", A)];
        assert_eq!(due(&es, A, &[], 0, 10, Trigger::Scheduled), [1, 2]);
        assert_eq!(due(&es, A, &[1], 0, 10, Trigger::Scheduled), [2], "in flight is not sent twice");
        assert_eq!(due(&es, A, &[], 0, 1, Trigger::Scheduled), [1]);
    }

    #[test]
    fn a_backing_off_head_holds_its_queue() {
        let mut es = vec![entry(1, "q", A), entry(2, "q", A)];
        es[0].next_at = 5_000;
        assert!(due(&es, A, &[], 4_999, 10, Trigger::Scheduled).is_empty());
        assert_eq!(next_wake(&es, A), Some(5_000));
        assert_eq!(due(&es, A, &[], 5_000, 10, Trigger::Scheduled), [1]);
    }

    #[test]
    fn forced_triggers_skip_backoff_only_after_no_answer() {
        let mut es = vec![entry(1, "q1", A), entry(2, "q2", A)];
        es[0].next_at = 9_000; // offline: no answer, at t=1000
        es[0].last_attempt_at = 1_000;
        es[1].next_at = 9_000;
        es[1].last_status = Some(503); // the origin answered
        assert!(due(&es, A, &[], 2_999, 10, Trigger::Scheduled).is_empty());
        assert!(due(&es, A, &[], 2_999, 10, Trigger::Hint).is_empty(), "not sooner than 2 s after the last attempt");
        assert_eq!(due(&es, A, &[], 3_000, 10, Trigger::Hint), [1]);
        assert_eq!(due(&es, A, &[], 9_000, 10, Trigger::Hint), [1, 2]);
        assert_eq!(due(&es, A, &[], 1_001, 10, Trigger::Explicit), [1], "the page asked: at once");
    }

    #[test]
    fn other_users_entries_are_parked() {
        let es = vec![entry(1, "q", Some("bob")), entry(2, "q", A)];
        assert_eq!(due(&es, A, &[], 0, 10, Trigger::Scheduled), [2]);
        assert_eq!(due(&es, Some("bob"), &[], 0, 10, Trigger::Scheduled), [1]);
        assert!(due(&es, None, &[], 0, 10, Trigger::Scheduled).is_empty());
        assert_eq!(next_wake(&es, Some("carol")), None);
    }

    #[test]
    fn dead_letters_do_not_block_their_queue() {
        let c = Config::default();
        let mut es = vec![entry(1, "q", A), entry(2, "q", A)];
        let step = after_attempt(&c, &mut es[0], Attempt::status(400), 10, 0.5);
        assert_eq!(step, Step::Dead(DeadReason::Refused { status: 400 }));
        assert_eq!(due(&es, A, &[], 10, 10, Trigger::Scheduled), [2]);
    }

    #[test]
    fn retries_follow_the_schedule_then_dead_letter() {
        let c = Config::default();
        let mut e = entry(1, "q", A);
        let mut now = 0;
        let mut waits = Vec::new();
        loop {
            match after_attempt(&c, &mut e, Attempt::status(503), now, 0.5) {
                Step::Retry { at } => {
                    waits.push(at - now);
                    now = at;
                }
                Step::Dead(reason) => {
                    assert_eq!(reason, DeadReason::RetriesExhausted { status: Some(503) });
                    break;
                }
                Step::Delivered | Step::Parked => unreachable!(),
            }
        }
        assert_eq!(waits, [2_000, 4_000, 8_000, 16_000, 32_000]);
        assert_eq!(e.retries, 6);
        assert!(revive(&mut e, 100_000));
        assert_eq!((e.state.clone(), e.retries, e.next_at), (State::Pending, 0, 100_000));
        assert!(!revive(&mut e, 100_000), "only dead letters revive");
    }

    #[test]
    fn no_answer_spends_no_retry_early_or_not() {
        let c = Config::default();
        let mut e = entry(1, "q", A);
        e.next_at = 10_000;
        e.retries = 2;
        // Early (a hint) or on time, silence waits for the network: the
        // next probe comes after the probe gap, and no retry is spent.
        for now in [3_000, 10_000, 100_000] {
            let step = after_attempt(&c, &mut e, Attempt::NOTHING, now, 0.5);
            let gap = clock::probe_delay(&c, now, 0.5);
            assert_eq!(step, Step::Retry { at: now + gap });
            assert_eq!((e.retries, e.last_attempt_at, e.last_status), (2, now, None));
        }
        // An attempt the origin answered does count.
        let step = after_attempt(&c, &mut e, Attempt::status(503), 104_000, 0.5);
        assert_eq!(step, Step::Retry { at: 104_000 + 8_000 });
        assert_eq!(e.retries, 3);
        // So does one that timed out after it was sent.
        let step = after_attempt(&c, &mut e, Attempt { heard: Heard::TimedOut, retry_after_ms: None }, 120_000, 0.5);
        assert_eq!((step, e.retries, e.last_status), (Step::Retry { at: 120_000 + 16_000 }, 4, None));
    }

    #[test]
    fn a_replay_is_checked_against_the_routes_of_now() {
        let e = entry(1, "q", A); // POST http://h/api/chat/1
        assert!(still_a_write(&Config::default(), "http://h", &e));
        assert!(!still_a_write(&Config::default(), "http://other", &e), "another origin");
        let narrower = Config::from_json(r#"{"writes": ["/api/inbox"]}"#).unwrap();
        assert!(!still_a_write(&narrower, "http://h", &e), "no longer a write route");
        let mut e = e;
        assert_eq!(off_route(&mut e, 5), DeadReason::NotAWrite);
        assert!(matches!(e.state, State::Dead { .. }));
    }

    #[test]
    fn heads_waiting_for_the_network() {
        let mut es = vec![entry(1, "q1", A), entry(2, "q1", A)];
        es[0].last_status = Some(503);
        es[1].last_status = None;
        assert!(!waits_for_network(&es, A), "only heads count, and the head was answered");
        es[0].last_status = None;
        assert!(waits_for_network(&es, A));
        assert!(!waits_for_network(&es, Some("bob")));
    }

    #[test]
    fn retry_after_and_success() {
        let c = Config::default();
        let mut e = entry(1, "q", A);
        let step =
            after_attempt(&c, &mut e, Attempt { retry_after_ms: Some(60_000), ..Attempt::status(429) }, 1_000, 0.5);
        assert_eq!(step, Step::Retry { at: 61_000 });
        let step = after_attempt(&c, &mut e, Attempt::status(201), 61_000, 0.5);
        assert_eq!(step, Step::Delivered);
    }

    #[test]
    fn expiry_dead_letters_instead_of_dropping() {
        let c = Config::default();
        let mut es = vec![entry(1, "q", A), entry(2, "q", A)];
        es[1].created_at = 10;
        assert_eq!(expire(&c, &mut es, c.retention_ms), [1]);
        assert_eq!(es[0].state, State::Dead { reason: DeadReason::Expired, at: c.retention_ms });
        assert_eq!(es[1].state, State::Pending);
    }

    #[test]
    fn new_entries_untried_or_after_a_first_failure() {
        let c = Config::default();
        let req = entry(0, "q", A).request;
        let untried = new_entry(&c, 1, A.map(Into::into), req.clone(), "k".into(), 500, None, 0.5);
        assert_eq!((untried.retries, untried.next_at, untried.queue.as_str()), (0, 500, DEFAULT_QUEUE));
        let failed = new_entry(&c, 2, None, req, "k".into(), 500, Some(Attempt::status(503)), 0.5);
        assert_eq!((failed.retries, failed.next_at, failed.last_status), (1, 2_500, Some(503)));
        assert!(queue_busy(std::slice::from_ref(&untried), DEFAULT_QUEUE, A));
        assert!(!queue_busy(&[], DEFAULT_QUEUE, A));
        // Another user's waiting writes hold nobody back.
        assert!(!queue_busy(&[untried], DEFAULT_QUEUE, Some("someone-else")));
    }

    #[test]
    fn a_401_parks_without_spending_a_retry() {
        let c = Config::default();
        let mut e = entry(1, "q", A);
        e.retries = 2;
        e.next_at = 100;
        let step = after_attempt(&c, &mut e, Attempt::status(401), 100, 0.5);
        assert_eq!(step, Step::Parked);
        assert_eq!((e.retries, e.next_at, &e.state), (2, 100, &State::Pending));
    }

    #[test]
    fn a_401_for_a_write_of_nobody_is_a_dead_letter() {
        let c = Config::default();
        let mut e = entry(1, "q", None);
        let step = after_attempt(&c, &mut e, Attempt::status(401), 100, 0.5);
        assert_eq!(step, Step::Dead(DeadReason::Refused { status: 401 }));
    }

    #[test]
    fn parked_users_entries_are_neither_due_nor_heads() {
        let es = vec![entry(1, "q", Some("a")), entry(2, "q", Some("b")), entry(3, "q", Some("a"))];
        assert_eq!(due(&es, Some("b"), &[], 0, 8, Trigger::Scheduled), [2]);
        assert_eq!(due(&es, Some("a"), &[], 0, 8, Trigger::Scheduled), [1]);
        assert!(due(&es, None, &[], 0, 8, Trigger::Explicit).is_empty());
        assert_eq!(next_wake(&es, Some("c")), None);
    }

    #[test]
    fn sync_event_endings() {
        assert_eq!(sync_end(false, false), SyncEnd::Done);
        assert_eq!(sync_end(false, true), SyncEnd::Done);
        assert_eq!(sync_end(true, false), SyncEnd::AskAgain);
        assert_eq!(sync_end(true, true), SyncEnd::Reregister);
    }

    /// A tiny deterministic generator, so the simulation replays exactly.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> f64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// 600 entries over 4 queues against an origin that fails 40 % of the
    /// time (no answer, 503, 429 with Retry-After) and refuses 1 %: driven
    /// by simulated time, every entry ends delivered once or dead-lettered,
    /// and each queue's deliveries are in order.
    #[test]
    fn simulation_many_entries_many_failures() {
        let c = Config::default();
        let mut rng = Lcg(42);
        let mut entries: Vec<Entry> =
            (1..=600).map(|id| entry(id, ["a", "b", "c", "d"][(id % 4) as usize], A)).collect();
        let mut delivered: Vec<(String, u64)> = Vec::new();
        let mut dead = 0;
        let mut now = 0u64;
        let mut rounds = 0;
        while let Some(wake) = next_wake(&entries, A) {
            rounds += 1;
            assert!(rounds < 100_000, "the simulation must converge");
            now = now.max(wake);
            for id in due(&entries, A, &[], now, 8, Trigger::Scheduled) {
                let roll = rng.next();
                let attempt = if roll < 0.15 {
                    Attempt::NOTHING
                } else if roll < 0.35 {
                    Attempt::status(503)
                } else if roll < 0.40 {
                    Attempt { retry_after_ms: Some(3_000), ..Attempt::status(429) }
                } else if roll < 0.41 {
                    Attempt::status(400)
                } else {
                    Attempt::status(200)
                };
                let i = entries.iter().position(|e| e.id == id).unwrap();
                match after_attempt(&c, &mut entries[i], attempt, now, rng.next()) {
                    Step::Delivered => {
                        let e = entries.remove(i);
                        delivered.push((e.queue, e.id));
                    }
                    Step::Dead(_) => dead += 1,
                    Step::Retry { .. } | Step::Parked => {}
                }
            }
        }
        assert_eq!(delivered.len() + dead, 600, "every entry is delivered or dead-lettered");
        assert!(entries.iter().all(|e| matches!(e.state, State::Dead { .. })));
        let mut ids: Vec<u64> = delivered.iter().map(|d| d.1).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), delivered.len(), "no entry delivered twice");
        for q in ["a", "b", "c", "d"] {
            let order: Vec<u64> = delivered.iter().filter(|d| d.0 == q).map(|d| d.1).collect();
            assert!(order.windows(2).all(|w| w[0] < w[1]), "queue {q} out of order");
        }
        assert!(dead > 0 && delivered.len() > 500, "delivered {} dead {dead}", delivered.len());
    }
}
