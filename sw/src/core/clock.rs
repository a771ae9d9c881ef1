//! The retry clock: one set of timing rules for queued writes and uploads.
//! It says when an item that failed goes again, what a trigger changes,
//! and when the worker must wake next. Pure: `now` and the jitter draw are
//! arguments; the web side keeps a single timer and carries out the answer.
//!
//! Two kinds of failure, two clocks:
//! - **The origin answered** (5xx, 408, 429, or a request that timed out
//!   after it was sent): the seed's backoff, 2, 4, 8, 16, 32 s, each retry
//!   counted, then a dead letter.
//! - **No answer at all** (network gone, connection refused or reset): no
//!   retry is spent. The item waits for the network, probed every
//!   `probe_delay` while the worker runs, and at once on any hint that the
//!   network is back. Only the retention limit ends that wait.

use super::config::Config;

/// What started a pass over the outbox or the uploads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Trigger {
    /// The retry timer, or a page waking the worker at its next due time:
    /// items go at their due time only.
    Scheduled,
    /// A hint that the network is back: any answer from the origin below
    /// 500, the page going online or becoming visible, the worker starting.
    /// Hints come in bursts, so an item that got no answer goes early only
    /// once `HINT_GAP_MS` have passed since its last attempt.
    Hint,
    /// The page asked (`flush()`, Retry) or the browser did (a Background
    /// Sync event, which the browser itself spaces out): an item that got no
    /// answer goes at once.
    Explicit,
}

/// The least time between two attempts of an item that a hint may cause.
pub const HINT_GAP_MS: u64 = 2_000;

/// While a pass runs, pages are told to wake the worker this long after it
/// began. A browser may stop a worker in the middle of a pass (Firefox does,
/// when no event keeps it alive: a pass its own timer started); the pass
/// then never reports its next wake, and a page told "nothing pending" would
/// never start the worker again. A worker still running its pass when the
/// page's wake comes just joins the pass, and the wake's event keeps it alive.
pub const RUNNING_RECHECK_MS: u64 = 2_000;

/// The probe gap grows with the item's age: one millisecond of gap per this
/// many of waiting (a write 90 s old is probed every 2 s, one 20 minutes old
/// every 30 s), between the schedule's first and last steps.
pub const PROBE_AGE_DIVISOR: u64 = 40;

/// How an attempt ended, as far as the clock cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// No answer at all: offline, refused, reset before a response.
    Nothing,
    /// Sent, but no answer within the configured time: counts like a 5xx
    /// (a network that is gone fails fast; one that swallows requests is a
    /// server problem, and must not keep the item for ever).
    TimedOut,
    /// The origin (or the object store) answered with this status.
    Status(u16),
}

impl Heard {
    /// The status to keep on the record (None: no status was heard).
    pub fn status(self) -> Option<u16> {
        match self {
            Heard::Status(s) => Some(s),
            Heard::Nothing | Heard::TimedOut => None,
        }
    }

    /// Whether the origin is known to be reachable after this: any status
    /// below 500 (a 5xx may come from a proxy in front of a dead origin).
    pub fn is_hint(self) -> bool {
        matches!(self, Heard::Status(s) if s < 500)
    }
}

/// Where an item stands on the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub next_at: u64,
    /// Its last attempt got no answer (or it was never tried).
    pub silent: bool,
    pub last_attempt_at: u64,
}

/// Whether an item is due now for `trigger`. An item the origin answered
/// (503, 429...) keeps its backoff whatever the trigger: only the origin's
/// own silence can be cut short by a hint.
pub fn due(t: Timing, now: u64, trigger: Trigger) -> bool {
    if t.next_at <= now {
        return true;
    }
    t.silent
        && match trigger {
            Trigger::Scheduled => false,
            Trigger::Hint => now >= t.last_attempt_at.saturating_add(HINT_GAP_MS),
            Trigger::Explicit => true,
        }
}

/// Spreads `base` over ±20 % with a draw in `[0, 1)`, so that clients that
/// failed together do not come back together.
pub fn spread(base: u64, jitter: f64) -> u64 {
    (base as f64 * (0.8 + 0.4 * jitter.clamp(0.0, 1.0))).round() as u64
}

/// The wait before the next probe of an item that got no answer, for an
/// item `age_ms` old: short while it is new (networks often come back
/// within seconds, and the page should see its write go then), growing with
/// the wait to the schedule's last step (32 s by default), never longer.
pub fn probe_delay(config: &Config, age_ms: u64, jitter: f64) -> u64 {
    let last = u64::from(*config.backoff_ms.last().expect("config keeps one step at least"));
    let first = u64::from(config.backoff_ms[0]).min(last);
    spread((age_ms / PROBE_AGE_DIVISOR).clamp(first, last), jitter)
}

/// The wake a part asks for after a pass. An item still due when its pass
/// ended is blocked (a write waiting for an upload's server id, a login in
/// progress); whatever unblocks it starts a pass, and the timer only looks
/// again after `HINT_GAP_MS`, so a blocked item cannot make the timer spin.
pub fn after_pass(next_due: Option<u64>, now: u64) -> Option<u64> {
    next_due.map(|at| if at > now { at } else { now + HINT_GAP_MS })
}

/// The earliest of several wake-up times (None: nothing to wake for). A
/// plain loop over a slice: `flatten().min()` over each caller's iterator
/// was an iterator adapter per caller.
pub fn earliest(times: &[Option<u64>]) -> Option<u64> {
    let mut first = None;
    for &t in times {
        if let Some(t) = t {
            if first.is_none_or(|f| t < f) {
                first = Some(t);
            }
        }
    }
    first
}

/// What each part of the worker (the outbox, the uploads) asks the timer
/// for: its next wake and whether it waits for the network.
///
/// A part reports after every pass, from the items it read when the pass
/// began; an item stored while the pass ran (`due_by`) is not among them.
/// So a report keeps the wakes noted since its pass began: without that, a
/// pass that read an empty outbox would clear the wake of a write queued
/// meanwhile, and nothing would ever send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wakes<const N: usize> {
    at: [Option<u64>; N],
    silent: [bool; N],
    /// Wakes noted by `due_by` since the part's pass began.
    noted: [Option<u64>; N],
    noted_silent: [bool; N],
    /// When the part's running pass began (None: no pass runs).
    since: [Option<u64>; N],
}

impl<const N: usize> Default for Wakes<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Wakes<N> {
    pub fn new() -> Self {
        Wakes { at: [None; N], silent: [false; N], noted: [None; N], noted_silent: [false; N], since: [None; N] }
    }

    /// A pass of `part` begins at `now`: it is about to read what it holds.
    pub fn begin(&mut self, part: usize, now: u64) {
        self.noted[part] = None;
        self.noted_silent[part] = false;
        self.since[part] = Some(now);
    }

    /// The part's pass ended: its next wake as it saw it, merged with any
    /// item stored while it ran.
    pub fn report(&mut self, part: usize, at: Option<u64>, silent: bool) {
        let noted = self.noted[part].take();
        let noted_silent = std::mem::take(&mut self.noted_silent[part]);
        let merged = earliest(&[at, noted]);
        self.since[part] = None;
        self.at[part] = merged;
        self.silent[part] = merged.is_some() && (silent || noted_silent);
    }

    /// A new item of `part` is due at `at`: an earlier wake stays.
    pub fn due_by(&mut self, part: usize, at: u64, silent: bool) {
        self.noted[part] = earliest(&[self.noted[part], Some(at)]);
        self.noted_silent[part] |= silent;
        self.at[part] = earliest(&[self.at[part], Some(at)]);
        self.silent[part] |= silent;
    }

    /// The parts about to run: until their pass reports, they ask for no
    /// wake, so the timer cannot fire again for them.
    pub fn running(&mut self, part: usize) {
        self.at[part] = None;
        self.silent[part] = false;
    }

    /// The earliest wake of any part: what the worker's own timer is set to.
    pub fn next(&self) -> Option<u64> {
        earliest(&self.at)
    }

    /// The wake pages are told: the earliest due item, or soon after a
    /// running pass began (`RUNNING_RECHECK_MS`), so that a worker stopped
    /// in the middle of its pass is started again.
    pub fn told(&self) -> Option<u64> {
        let mut running = [None; N];
        for (r, s) in running.iter_mut().zip(self.since) {
            *r = s.map(|at| at.saturating_add(RUNNING_RECHECK_MS));
        }
        earliest(&[earliest(&self.at), earliest(&running)])
    }

    /// When `part` wakes (None: nothing pending).
    pub fn of(&self, part: usize) -> Option<u64> {
        self.at[part]
    }

    /// Whether `part` has items waiting for the network.
    pub fn silent(&self, part: usize) -> bool {
        self.silent[part]
    }
}

/// Hints arrive in bursts (every answered read is one, and a page that
/// polls makes many). The gate lets one through at once, then at most one
/// per `HINT_GAP_MS`; a hint that comes too soon is deferred to the end of
/// the gap, never dropped, so the last hint of a burst still gets its pass.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HintGate {
    last: Option<u64>,
    deferred: Option<u64>,
}

impl HintGate {
    /// A hint at `now`: whether its pass runs now (else see `deferred_at`).
    pub fn hint(&mut self, now: u64) -> bool {
        match self.last {
            Some(last) if now < last.saturating_add(HINT_GAP_MS) => {
                self.deferred = Some(last + HINT_GAP_MS);
                false
            }
            _ => {
                self.last = Some(now);
                self.deferred = None;
                true
            }
        }
    }

    /// When a deferred hint is to run.
    pub fn deferred_at(&self) -> Option<u64> {
        self.deferred
    }

    /// The timer fired at `now`: whether the deferred hint runs now.
    pub fn fire(&mut self, now: u64) -> bool {
        match self.deferred {
            Some(at) if at <= now => {
                self.deferred = None;
                self.last = Some(now);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: fn() -> Config = Config::default;

    #[test]
    fn answered_items_keep_their_backoff_silent_ones_take_hints() {
        let answered = Timing { next_at: 10_000, silent: false, last_attempt_at: 1_000 };
        let silent = Timing { silent: true, ..answered };
        for trigger in [Trigger::Scheduled, Trigger::Hint, Trigger::Explicit] {
            assert!(!due(answered, 9_999, trigger), "{trigger:?}");
            assert!(due(answered, 10_000, trigger), "{trigger:?}");
        }
        assert!(!due(silent, 2_999, Trigger::Hint), "a hint within 2 s of the last attempt waits");
        assert!(due(silent, 3_000, Trigger::Hint));
        assert!(!due(silent, 9_999, Trigger::Scheduled));
        assert!(due(silent, 1_001, Trigger::Explicit), "the page asked: at once");
    }

    #[test]
    fn probes_grow_with_age_from_the_first_step_to_the_last() {
        let c = C();
        let mid = |age| probe_delay(&c, age, 0.5);
        assert_eq!(mid(0), 2_000);
        assert_eq!(mid(90_000), 2_250);
        assert_eq!(mid(600_000), 15_000);
        assert_eq!(mid(20 * 60_000), 30_000);
        assert_eq!(mid(3 * 24 * 3_600_000), 32_000, "never longer than the last step");
        assert_eq!(probe_delay(&c, 0, 0.0), 1_600);
        assert_eq!(probe_delay(&c, u64::MAX, 0.999_999), 38_400);
        let odd = Config::from_json(r#"{"backoffMs": [5000, 1000]}"#).unwrap();
        assert_eq!(probe_delay(&odd, 0, 0.5), 1_000, "first step above the last: the last bounds it");
    }

    #[test]
    fn hints_are_answers_below_500() {
        assert!(Heard::Status(200).is_hint() && Heard::Status(404).is_hint() && Heard::Status(401).is_hint());
        assert!(!Heard::Status(503).is_hint() && !Heard::Nothing.is_hint() && !Heard::TimedOut.is_hint());
        assert_eq!((Heard::Status(503).status(), Heard::TimedOut.status()), (Some(503), None));
    }

    #[test]
    fn a_burst_of_hints_makes_two_passes_not_fifty() {
        let mut gate = HintGate::default();
        let mut now_passes = 0;
        for t in 0..50u64 {
            now_passes += usize::from(gate.hint(1_000 + t * 20));
        }
        assert_eq!(now_passes, 1);
        assert_eq!(gate.deferred_at(), Some(3_000));
        assert!(!gate.fire(2_999));
        assert!(gate.fire(3_000));
        assert_eq!(gate.deferred_at(), None);
        assert!(!gate.hint(4_000), "within the gap of the deferred pass");
        assert!(gate.hint(7_000));
    }

    #[test]
    fn a_blocked_item_is_looked_at_again_after_the_gap() {
        assert_eq!(after_pass(Some(100), 1_000), Some(3_000));
        assert_eq!(after_pass(Some(9_000), 1_000), Some(9_000));
        assert_eq!(after_pass(Some(1_200), 1_000), Some(1_200), "a wake soon after the pass stays as it is");
        assert_eq!(after_pass(None, 1_000), None);
    }

    #[test]
    fn an_item_stored_during_a_pass_keeps_its_wake() {
        let mut w = Wakes::<2>::new();
        w.begin(0, 1_000); // the pass reads an empty outbox
        w.due_by(0, 5_000, false); // a write is queued meanwhile
        w.report(0, None, false); // the pass saw nothing
        assert_eq!(w.next(), Some(5_000), "the queued write still wakes the worker");
        assert!(!w.silent(0));
        // The next pass read it and delivered it: nothing left, no wake.
        w.begin(0, 6_000);
        w.report(0, None, false);
        assert_eq!(w.next(), None);
    }

    #[test]
    fn a_wake_noted_before_the_pass_began_is_the_pass_own_to_report() {
        let mut w = Wakes::<2>::new();
        w.due_by(1, 5_000, true);
        assert_eq!((w.of(1), w.silent(1)), (Some(5_000), true));
        w.running(1);
        assert_eq!(w.next(), None, "a running part asks for no wake");
        w.begin(1, 5_000);
        w.report(1, None, false);
        assert_eq!(w.next(), None, "delivered in the pass: no stale wake");
        w.begin(1, 6_000);
        w.due_by(1, 9_000, true);
        w.report(1, Some(7_000), false);
        assert_eq!((w.of(1), w.silent(1)), (Some(7_000), true), "earliest wins; silence is kept");
        assert_eq!(w.of(0), None);
    }

    #[test]
    fn pages_are_never_told_nothing_is_pending_while_a_pass_runs() {
        let mut w = Wakes::<2>::new();
        w.due_by(1, 5_000, true); // an upload waits for the network
        assert_eq!(w.told(), Some(5_000));
        // Its timer fires: the uploads run, and ask the timer for nothing.
        w.running(1);
        w.begin(1, 5_000);
        assert_eq!(w.next(), None);
        // The outbox's pass ends with nothing left while the upload's runs:
        // pages still wake the worker soon, in case it is stopped mid-pass.
        w.begin(0, 5_100);
        w.report(0, None, false);
        assert_eq!(w.told(), Some(5_000 + RUNNING_RECHECK_MS));
        // The upload's pass ends: its own next wake, or nothing at all.
        w.report(1, Some(9_000), true);
        assert_eq!((w.next(), w.told()), (Some(9_000), Some(9_000)));
        w.begin(1, 9_000);
        w.report(1, None, false);
        assert_eq!((w.next(), w.told()), (None, None), "nothing pending, nothing running: nothing to wake for");
    }

    #[test]
    fn earliest_of_none_is_none() {
        assert_eq!(earliest(&[None, None]), None);
        assert_eq!(earliest(&[Some(5), None, Some(3)]), Some(3));
    }
}
