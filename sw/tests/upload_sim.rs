//! Uploads driven through `core::upload::api` on a simulated clock, against
//! a simulated origin and object store that answer with the reference
//! origin's JSON: the requests the core asks for are the ones made, and
//! each answer goes back to it, as the web adapter does.
//!
//! A worker stop loses whatever was not saved: the record is saved after
//! each step and after each batch of parts, as the adapter saves it.

use std::collections::{BTreeMap, BTreeSet};

use outpost_sw::core::clock::{Heard, Trigger};
use outpost_sw::core::config::Config;
use outpost_sw::core::record::DeadReason;
use outpost_sw::core::upload::api::{self, Call, Method, OriginCall, Step, Then};
use outpost_sw::core::upload::{self, Meta, Upload};

const SEC: u64 = 1_000;
const MIN: u64 = 60 * SEC;
const MIB: u64 = 1024 * 1024;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Net {
    Up,
    Gone,
    Refusing,
}

/// A small deterministic generator, so every run replays exactly.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The origin and its store. The origin's clock runs 5 minutes ahead of
/// the device's: a URL's lifetime must be read from the answer, not from
/// comparing clocks.
#[derive(Default)]
struct Origin {
    /// Idempotency-Key → asset id: a repeated presign names the same asset.
    assets: BTreeMap<String, String>,
    /// Asset → URL → expiry on the origin's clock.
    urls: BTreeMap<String, u64>,
    /// Parts (or the whole file as part 0) the store holds, per asset.
    stored: BTreeMap<String, BTreeSet<u32>>,
    completed: Vec<String>,
    calls: Vec<(u64, String)>,
}

const SKEW: u64 = 5 * MIN;
const PART: u64 = 8 * MIB;

impl Origin {
    fn call(&mut self, c: &OriginCall, size: u64, now: u64) -> (Heard, Vec<u8>) {
        let clock = now + SKEW;
        self.calls.push((now, format!("{} {}", c.method.as_str(), c.path)));
        let body: serde_json::Value = c.body.as_deref().map(|b| serde_json::from_str(b).unwrap()).unwrap_or_default();
        let answer = match (c.method, c.path.as_str()) {
            (Method::Post, "/api/assets/presign") => {
                let id = match body["assetId"].as_str() {
                    Some(id) => id.to_string(),
                    None => {
                        let key = c.idempotency_key.clone().expect("a presign carries its key");
                        let n = self.assets.len();
                        self.assets.entry(key).or_insert_with(|| format!("asset-{n}")).clone()
                    }
                };
                if body["op"] == "multipart" {
                    serde_json::json!({ "assetId": id, "partSize": PART, "partCount": size.div_ceil(PART) })
                } else {
                    let url = format!("put:{id}:{clock}");
                    self.urls.insert(url.clone(), clock + 3_600_000);
                    serde_json::json!({ "assetId": id, "url": url, "method": "PUT", "headers": {},
                                        "issuedAt": clock, "expiresAt": clock + 3_600_000 })
                }
            }
            (m, p) if p.ends_with("/parts") => {
                let id = p.trim_start_matches("/api/assets/").trim_end_matches("/parts").to_string();
                let have = self.stored.get(&id).cloned().unwrap_or_default();
                if m == Method::Get {
                    let uploaded: Vec<_> = have.iter().map(|n| serde_json::json!({ "partNumber": n })).collect();
                    serde_json::json!({ "partSize": PART, "partCount": size.div_ceil(PART), "uploaded": uploaded })
                } else {
                    let parts: Vec<_> = body["partNumbers"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|n| {
                            let url = format!("part:{id}:{n}:{clock}");
                            self.urls.insert(url.clone(), clock + 3_600_000);
                            serde_json::json!({ "partNumber": n, "url": url })
                        })
                        .collect();
                    serde_json::json!({ "parts": parts })
                }
            }
            (Method::Post, p) if p.ends_with("/complete") => {
                let id = p.trim_start_matches("/api/assets/").trim_end_matches("/complete").to_string();
                let have = self.stored.get(&id).cloned().unwrap_or_default();
                let whole = have.contains(&0) || have.len() as u64 == size.div_ceil(PART);
                if !whole {
                    return (Heard::Status(422), br#"{"error":{"code":"incomplete"}}"#.to_vec());
                }
                if !self.completed.contains(&id) {
                    self.completed.push(id);
                }
                serde_json::json!({ "ok": true })
            }
            other => panic!("a call the origin does not have: {other:?}"),
        };
        (Heard::Status(200), answer.to_string().into_bytes())
    }

    /// A PUT to the store: refused (403) once the URL expired.
    fn put(&mut self, url: &str, now: u64) -> Heard {
        let expiry = *self.urls.get(url).expect("a URL the origin made");
        if now + SKEW >= expiry {
            return Heard::Status(403);
        }
        let fields: Vec<&str> = url.split(':').collect();
        let part = if fields[0] == "part" { fields[2].parse().unwrap() } else { 0 };
        self.stored.entry(fields[1].to_string()).or_default().insert(part);
        Heard::Status(200)
    }
}

struct World {
    c: Config,
    origin: Origin,
    net: Box<dyn Fn(u64) -> Net>,
    now: u64,
    rng: Lcg,
    kill_chance: f64,
    kills: u32,
    /// The saved record (what a restarted worker reads back).
    saved: Upload,
}

impl World {
    fn new(size: u64, net: impl Fn(u64) -> Net + 'static) -> World {
        let meta = Meta { filename: "clip.mp4".into(), content_type: "video/mp4".into(), size, project_id: None };
        let saved = Upload::new("local-1".into(), Some("u".into()), meta, "key-1".into(), 0);
        World {
            c: Config::default(),
            origin: Origin::default(),
            net: Box::new(net),
            now: 0,
            rng: Lcg(7),
            kill_chance: 0.0,
            kills: 0,
            saved,
        }
    }

    fn heard<T>(&mut self, answer: impl FnOnce(&mut Origin) -> T, silent: T) -> T {
        self.now += 50;
        match (self.net)(self.now) {
            Net::Up => answer(&mut self.origin),
            Net::Gone => silent,
            Net::Refusing => silent,
        }
    }

    /// One pass, as the adapter runs it: poll, make the call, hand the
    /// answer back, save; a stop loses the step in flight. Returns false
    /// when the worker was stopped.
    fn pass(&mut self, trigger: Trigger) -> bool {
        let mut u = self.saved.clone();
        for _ in 0..64 {
            let Some(mut call) = api::poll(&self.c, &u, self.now, trigger) else { break };
            let moved = loop {
                if self.rng.next() < self.kill_chance {
                    self.kills += 1;
                    return false; // stopped mid-step: nothing of it saved
                }
                let jitter = self.rng.next();
                let refusing = (self.net)(self.now) == Net::Refusing;
                let then = match call {
                    Call::Origin(c) => {
                        let size = u.size;
                        let now = self.now;
                        let silent = if refusing { (Heard::Status(503), vec![]) } else { (Heard::Nothing, vec![]) };
                        let (heard, body) = self.heard(|o| o.call(&c, size, now), silent);
                        api::on_origin(&self.c, &mut u, c.step, heard, &body, self.now, jitter)
                    }
                    Call::Put { url, .. } => {
                        let now = self.now;
                        let heard = self.heard(|o| o.put(&url, now), Heard::Nothing);
                        break api::on_put(&self.c, &mut u, heard, self.now, jitter);
                    }
                    Call::Parts(puts) => {
                        let mut ended = None;
                        for batch in puts.chunks(3) {
                            let now = self.now;
                            let heard: Vec<(u32, Heard)> = batch
                                .iter()
                                .map(|p| (p.number, self.heard(|o| o.put(&p.url, now), Heard::Nothing)))
                                .collect();
                            ended = api::on_parts(&self.c, &mut u, &heard, self.now, jitter);
                            self.saved = u.clone(); // saved after each batch
                            if ended.is_some() {
                                break;
                            }
                        }
                        break ended.unwrap_or(true);
                    }
                };
                match then {
                    Then::Saved { moved } => break moved,
                    Then::Presigned { .. } => break true,
                    Then::Next(next) => call = next,
                }
            };
            self.saved = u.clone();
            if u.is_done() || !moved {
                break;
            }
        }
        true
    }

    /// Runs the worker's timer until `until`; a stopped worker starts again
    /// at its next wake (an open page wakes it).
    fn run_until(&mut self, until: u64) {
        while self.now < until && !self.saved.is_done() && self.saved.dead.is_none() {
            let (wake, _) = upload::next_wake(std::slice::from_ref(&self.saved), Some("u"));
            let Some(wake) = wake else { break };
            self.now = self.now.max(wake);
            if !self.pass(Trigger::Scheduled) {
                self.now += SEC; // the page wakes the stopped worker
            }
        }
    }
}

#[test]
fn a_40_mib_multipart_upload_through_a_10_minute_outage_with_workers_stopped_mid_step() {
    let mut kills = 0;
    for seed in 1..=20 {
        let mut w = World::new(40 * MIB, |t| if t < 10 * MIN { Net::Gone } else { Net::Up });
        w.rng = Lcg(seed);
        w.kill_chance = 0.05;
        w.run_until(60 * MIN);
        assert!(w.saved.is_done(), "seed {seed}: {:?}", w.saved);
        assert_eq!((w.saved.retries, w.saved.dead.clone()), (0, None), "seed {seed}: no answer spends no retry");
        assert_eq!(w.origin.assets.len(), 1, "seed {seed}: one asset, whatever the repeated presigns");
        assert_eq!(w.origin.completed, ["asset-0"], "seed {seed}");
        assert_eq!(w.origin.stored["asset-0"], (1..=5).collect(), "seed {seed}: every part in the store");
        let back = w.origin.calls.iter().find(|(t, _)| *t >= 10 * MIN).map(|(t, _)| *t).unwrap();
        assert!(back - 10 * MIN <= 32 * SEC, "seed {seed}: probed at most 32 s apart, back at {back}");
        kills += w.kills;
    }
    assert!(kills >= 20, "workers were stopped mid-step ({kills} times in 20 runs)");
}

#[test]
fn a_url_that_expired_while_the_device_slept_is_replaced_not_retried() {
    let mut w = World::new(MIB, |_| Net::Up);
    // Presigned, then the PUT fails without an answer; the device sleeps 2 h.
    let presign = api::poll(&w.c, &w.saved, 0, Trigger::Scheduled).unwrap();
    let Call::Origin(c) = presign else { panic!() };
    let (heard, body) = w.origin.call(&c, MIB, 0);
    api::on_origin(&w.c, &mut w.saved, Step::Presign, heard, &body, 0, 0.5);
    w.now = 2 * 60 * MIN;
    w.run_until(3 * 60 * MIN);
    assert!(w.saved.is_done(), "{:?}", w.saved);
    assert_eq!(w.saved.retries, 0, "a URL past its margin is replaced before use, not sent to earn a 403");
    let presigns = w.origin.calls.iter().filter(|(_, c)| c.ends_with("/presign")).count();
    assert_eq!(presigns, 2, "{:?}", w.origin.calls);
}

#[test]
fn an_origin_answering_503_gets_the_seeds_backoff_then_a_dead_letter_then_retry_delivers() {
    let mut w = World::new(MIB, |t| if t < 10 * MIN { Net::Refusing } else { Net::Up });
    let mut attempts = vec![];
    while w.saved.dead.is_none() {
        let (wake, _) = upload::next_wake(std::slice::from_ref(&w.saved), Some("u"));
        w.now = w.now.max(wake.unwrap());
        attempts.push(w.now);
        w.pass(Trigger::Scheduled);
    }
    let gaps: Vec<u64> = attempts.windows(2).map(|p| (p[1] - p[0]) / SEC).collect();
    // 2, 4, 8, 16, 32 s, each within ±20 % (the jitter).
    for (gap, want) in gaps.iter().zip([2u64, 4, 8, 16, 32]) {
        assert!(*gap as f64 >= want as f64 * 0.8 - 1.0 && *gap as f64 <= want as f64 * 1.2 + 1.0, "{gaps:?}");
    }
    assert_eq!(w.saved.dead, Some(DeadReason::RetriesExhausted { status: Some(503) }));
    assert_eq!(upload::status(&w.saved).reason.as_deref(), Some("retries exhausted (last answer HTTP 503)"));
    // The page presses Retry once the origin is back.
    w.now = 11 * MIN;
    assert!(upload::revive(&mut w.saved, w.now));
    w.run_until(12 * MIN);
    assert!(w.saved.is_done(), "{:?}", w.saved);
    assert_eq!(w.origin.completed.len(), 1);
}
