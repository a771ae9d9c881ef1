//! The retry clock driven by simulated time: outages of 10 s, 10 minutes and
//! 3 days, an origin answering 503, and a worker stopped and restarted at
//! random moments, for queued writes and uploads alike.
//!
//! The model of the web side is the real one's shape: one timer at the
//! earliest wake, passes that send `due` items one at a time and apply each
//! answer, a Hint pass when the worker starts, and (while a page of the app
//! is open) the page waking a stopped worker at its next due time.

use outpost_sw::core::clock::{self, Heard, Trigger};
use outpost_sw::core::config::Config;
use outpost_sw::core::queue::{self, Attempt, Step};
use outpost_sw::core::record::{Credentials, Entry, State, StoredRequest};
use outpost_sw::core::upload::{self, Action, Meta, Upload};

const SEC: u64 = 1_000;
const MIN: u64 = 60 * SEC;
const DAY: u64 = 24 * 60 * MIN;
const USER: Option<&str> = Some("u");

/// A small deterministic generator, so every run replays exactly.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Net {
    Up,
    /// No answer at all.
    Gone,
    /// The origin answers every request 503.
    Refusing,
}

/// The origin: what it applied (by Idempotency-Key, once each) and when.
#[derive(Default)]
struct Origin {
    applied: Vec<(String, u64)>,
    requests: Vec<u64>,
}

impl Origin {
    fn write(&mut self, net: Net, key: &str, now: u64) -> Heard {
        match net {
            Net::Gone => Heard::Nothing,
            Net::Refusing => {
                self.requests.push(now);
                Heard::Status(503)
            }
            Net::Up => {
                self.requests.push(now);
                if !self.applied.iter().any(|(k, _)| k == key) {
                    self.applied.push((key.to_string(), now));
                }
                Heard::Status(201)
            }
        }
    }
}

fn write(c: &Config, id: u64, now: u64, first: Heard) -> Entry {
    let request = StoredRequest {
        method: "POST".into(),
        url: format!("http://h/api/chat/{id}"),
        headers: vec![],
        body: vec![],
        credentials: Credentials::SameOrigin,
    };
    let first = Attempt { heard: first, retry_after_ms: None };
    queue::new_entry(c, id, USER.map(Into::into), request, format!("k{id}"), now, Some(first), 0.5)
}

struct World {
    c: Config,
    rng: Lcg,
    now: u64,
    entries: Vec<Entry>,
    uploads: Vec<Upload>,
    origin: Origin,
    dead: Vec<u64>,
    /// The worker's own timer, which dies with the worker.
    timer: Option<u64>,
    alive: bool,
    page_open: bool,
    /// Chance that the worker is stopped in the middle of any one attempt.
    kill_chance: f64,
    net: Box<dyn Fn(u64) -> Net>,
}

impl World {
    fn new(net: impl Fn(u64) -> Net + 'static) -> World {
        World {
            c: Config::default(),
            rng: Lcg(7),
            now: 0,
            entries: vec![],
            uploads: vec![],
            origin: Origin::default(),
            dead: vec![],
            timer: None,
            alive: true,
            page_open: true,
            kill_chance: 0.0,
            net: Box::new(net),
        }
    }

    fn next_wake(&self) -> Option<u64> {
        let (uploads, _) = upload::next_wake(&self.uploads, USER);
        clock::earliest(&[queue::next_wake(&self.entries, USER), uploads])
    }

    /// One pass over writes then uploads, as the worker runs it. Returns
    /// false if the worker was stopped during it.
    fn pass(&mut self, trigger: Trigger) -> bool {
        self.dead.extend(queue::expire(&self.c, &mut self.entries, self.now));
        let mut attempted = vec![];
        while let Some(&id) = queue::due(&self.entries, USER, &attempted, self.now, 1, trigger).first() {
            attempted.push(id);
            let net = (self.net)(self.now);
            let i = self.entries.iter().position(|e| e.id == id).unwrap();
            let heard = self.origin.write(net, &self.entries[i].idempotency_key, self.now);
            if self.rng.next() < self.kill_chance {
                // Stopped before the answer was stored: the entry is as it
                // was, whether or not the origin applied it.
                self.stop();
                return false;
            }
            self.now += 20; // a loopback round trip
            match queue::after_attempt(
                &self.c,
                &mut self.entries[i],
                Attempt { heard, retry_after_ms: None },
                self.now,
                self.rng.next(),
            ) {
                Step::Delivered => {
                    self.entries.remove(i);
                }
                Step::Dead(_) => self.dead.push(id),
                Step::Retry { .. } | Step::Parked => {}
            }
        }
        for i in 0..self.uploads.len() {
            loop {
                let action = upload::next(&self.c, &self.uploads[i], self.now, trigger);
                if action == Action::Wait {
                    break;
                }
                let heard = match (self.net)(self.now) {
                    Net::Up => Heard::Status(200),
                    Net::Gone => Heard::Nothing,
                    Net::Refusing => Heard::Status(503),
                };
                if self.rng.next() < self.kill_chance {
                    self.stop();
                    return false;
                }
                self.now += 20;
                let u = &mut self.uploads[i];
                if let (Action::Presign { .. }, Heard::Status(200)) = (&action, heard) {
                    let put = upload::Phase::Put {
                        url: "s".into(),
                        headers: vec![],
                        issued_at: self.now,
                        expires_at: self.now + 3_600_000,
                    };
                    upload::presigned(u, "srv".into(), put);
                    continue;
                }
                if !upload::after(&self.c, u, heard, self.now, self.rng.next()) {
                    break;
                }
            }
        }
        self.timer = self.next_wake();
        true
    }

    fn stop(&mut self) {
        self.alive = false;
        self.timer = None;
    }

    /// The worker starts (a page's message or a navigation): starting is a hint.
    fn start(&mut self) {
        self.alive = true;
        self.pass(Trigger::Hint);
    }

    /// Runs until `until` (nothing to do meanwhile: time just passes).
    fn run_until(&mut self, until: u64) {
        for _ in 0..10_000_000 {
            // What wakes the worker next: its own timer while it lives, else a
            // page of the app (outpost.js) at the next due time.
            let wake = if self.alive {
                self.timer
            } else if self.page_open {
                self.next_wake()
            } else {
                None
            };
            let Some(at) = wake.filter(|at| *at <= until) else {
                self.now = self.now.max(until);
                return;
            };
            self.now = self.now.max(at);
            if !self.alive {
                self.start();
            } else {
                self.pass(Trigger::Scheduled);
            }
        }
        panic!("the simulation did not settle");
    }

    /// Writes queued at `now` with no answer to their first attempt.
    fn queue_offline(&mut self, n: u64) {
        for _ in 0..n {
            let id = self.entries.len() as u64 + self.origin.applied.len() as u64 + self.dead.len() as u64 + 1;
            let e = write(&self.c, id, self.now, Heard::Nothing);
            self.entries.push(e);
            self.now += 5;
        }
        self.timer = self.next_wake();
    }

    fn add_upload(&mut self) {
        let meta = Meta { filename: "a.png".into(), content_type: "image/png".into(), size: 2 << 20, project_id: None };
        let mut u = Upload::new("local-1".into(), USER.map(Into::into), meta, "uk".into(), self.now);
        upload::after(&self.c, &mut u, Heard::Nothing, self.now, 0.5);
        self.uploads.push(u);
        self.timer = self.next_wake();
    }

    /// Every write applied once, in id order; returns when the last one was.
    fn delivered_once_in_order(&self, n: u64) -> u64 {
        let keys: Vec<&str> = self.origin.applied.iter().map(|(k, _)| k.as_str()).collect();
        let want: Vec<String> = (1..=n).map(|i| format!("k{i}")).collect();
        assert_eq!(keys, want, "applied once each, in order");
        assert!(
            self.entries.is_empty(),
            "nothing left queued: {:?}",
            self.entries.iter().map(|e| e.id).collect::<Vec<_>>()
        );
        assert!(self.dead.is_empty(), "no dead letters: {:?}", self.dead);
        self.origin.applied.iter().map(|(_, at)| *at).max().unwrap()
    }
}

/// An outage of `length` from t=0, writes and an upload queued in it, the
/// worker stopped at random moments: delivered once, in order, with no dead
/// letter, within the probe gap of an item that old after the return.
fn outage(length: u64, kill_chance: f64) -> u64 {
    let mut w = World::new(move |t| if t < length { Net::Gone } else { Net::Up });
    w.kill_chance = kill_chance;
    w.queue_offline(5);
    w.add_upload();
    // Stopped now and then by the browser while idle, as well as mid-request.
    let mut t = 0;
    while t < length {
        t += 30 * SEC + (w.rng.next() * 60.0 * SEC as f64) as u64;
        w.run_until(t.min(length));
        w.stop();
    }
    w.run_until(length + 10 * MIN);
    let last = w.delivered_once_in_order(5);
    assert!(w.uploads[0].is_done(), "the upload finished: {:?}", w.uploads[0]);
    let bound = clock::probe_delay(&w.c, length, 0.999_999) + SEC;
    assert!(last - length <= bound, "delivered {} ms after the return (bound {bound} ms)", last - length);
    last - length
}

#[test]
fn an_outage_of_10_seconds() {
    let after = outage(10 * SEC, 0.0);
    assert!(after <= 3 * SEC, "{after} ms");
}

#[test]
fn an_outage_of_10_minutes_with_a_worker_stopped_mid_request() {
    outage(10 * MIN, 0.2);
}

#[test]
fn an_outage_of_3_days_with_a_worker_stopped_mid_request() {
    let after = outage(3 * DAY, 0.1);
    assert!(after <= 40 * SEC, "{after} ms");
}

#[test]
fn an_origin_answering_503_gets_the_seeds_backoff_then_a_dead_letter() {
    let mut w = World::new(|t| if t < 10 * MIN { Net::Refusing } else { Net::Up });
    let first = w.origin.write(Net::Refusing, "k1", 0);
    let e = write(&w.c, 1, 0, first);
    w.entries.push(e);
    w.timer = w.next_wake();
    w.run_until(5 * MIN);
    let gaps: Vec<u64> = w.origin.requests.windows(2).map(|p| p[1] - p[0]).collect();
    // Jitter is ±20 %; the 20 ms is the model's round trip.
    let want = [2, 4, 8, 16, 32];
    assert_eq!(gaps.len(), want.len(), "{gaps:?}");
    for (got, want) in gaps.iter().zip(want) {
        let want = want * SEC;
        assert!(*got >= want * 8 / 10 && *got <= want * 12 / 10 + 20, "{gaps:?}");
    }
    assert_eq!(w.dead, [1]);
    assert!(matches!(w.entries[0].state, State::Dead { .. }));
    // A manual retry once the origin is well delivers it.
    w.run_until(11 * MIN);
    assert!(queue::revive(&mut w.entries[0], w.now));
    w.dead.clear();
    w.pass(Trigger::Explicit);
    assert_eq!(w.delivered_once_in_order(1), 11 * MIN);
}

#[test]
fn with_no_page_and_no_background_sync_the_next_start_sends_them() {
    let mut w = World::new(|t| if t < 5 * MIN { Net::Gone } else { Net::Up });
    w.queue_offline(3);
    w.run_until(40 * SEC);
    w.page_open = false;
    w.stop();
    w.run_until(DAY);
    assert_eq!(w.origin.applied.len(), 0, "nothing wakes a stopped worker with no page");
    assert!(w.dead.is_empty());
    w.start();
    assert_eq!(w.delivered_once_in_order(3), DAY + 40, "sent as the worker starts, one after another");
}

#[test]
fn a_hint_sends_at_once_what_waits_for_the_network() {
    let mut w = World::new(|t| if t < 20 * MIN { Net::Gone } else { Net::Up });
    w.queue_offline(2);
    w.run_until(20 * MIN + 1);
    assert!(w.origin.applied.is_empty());
    // The page's next read is answered: a hint, not a wait for the probe.
    w.pass(Trigger::Hint);
    assert_eq!(w.delivered_once_in_order(2), 20 * MIN + 1 + 20);
}

#[test]
fn longer_than_the_retention_is_a_dead_letter_never_a_silent_drop() {
    let mut w = World::new(|_| Net::Gone);
    w.queue_offline(1);
    w.run_until(6 * DAY);
    assert!(w.dead.is_empty(), "silence alone never dead-letters");
    w.run_until(8 * DAY);
    assert_eq!(w.dead, [1], "past the 7 days of retention");
    assert!(matches!(w.entries[0].state, State::Dead { reason: outpost_sw::core::record::DeadReason::Expired, .. }));
}
