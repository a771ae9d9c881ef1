//! Carries out the outbox: the first attempt of a write, queueing it in
//! IndexedDB when it fails, and replays. Every decision (what to queue,
//! what is due, what an answer means, when to retry) is the core's.

use super::error::{Error, Result};
use super::global::Whole;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::web::db::Db;
use js_sys::Uint8Array;
use wasm_bindgen::prelude::*;
use web_sys::{Request, Response};

use super::clock::{Clock, Part};
use super::events::Events;
use super::global::Fetched;
use super::identity::Identity;
use super::runner::Runner;
use super::{db, global, request, response, InFlight};
use crate::core::backoff::parse_retry_after;
use crate::core::batch;
use crate::core::clock::{self, Heard};
use crate::core::config::Config;
use crate::core::identity::{self, Source};
use crate::core::json::{obj, Value};
use crate::core::outcome::{classify, queue_on_first_attempt, Outcome};
use crate::core::protocol::{self, Event};
use crate::core::queue::{self, Attempt, Step, Trigger};
use crate::core::record::{self, Entry, RecordError, State};
use crate::core::tempid::IdMap;
use crate::core::text::{cat, num};

pub const SYNC_TAG: &str = "outpost-outbox";
/// Waiting writes listed by `status()`.
const STATUS_QUEUE_LEN: usize = 50;
const LOCK: &str = "outpost-outbox";

pub struct Outbox {
    /// The worker's shared reads, emptied when a replay is delivered.
    reads_in_flight: InFlight,
    config: Rc<Config>,
    /// The worker's origin: a replay goes only to a write route of it.
    origin: String,
    db: Rc<Db>,
    identity: Rc<Identity>,
    events: Events,
    clock: Rc<Clock>,
    /// One pass at a time in this worker (and one across workers: the lock).
    runner: Runner,
    /// Whether the current user had writes pending after the last pass.
    left: Cell<bool>,
    /// Frees what may be freed when the browser's quota refuses a write.
    on_full: RefCell<Option<Box<dyn Fn() -> js_sys::Promise>>>,
    /// Whether the queue holds pending entries, as last seen (None: not
    /// read yet in this worker). Spares each new write a full read of the
    /// outbox.
    queue_busy: Cell<Option<bool>>,
    /// Entries stored so far by this worker. A pass that sees it change
    /// while it ran knows its view of the outbox lacks them.
    stored: Cell<u64>,
    /// First attempts under way; passes wait while one is out, so two
    /// writes of a queue are never in flight together.
    first_in_flight: Cell<u32>,
    /// The end of the last write the page handed over: each write waits for
    /// the one before it to be sent or queued, so writes keep the order the
    /// page sent them in even when the page does not wait between them.
    gate: RefCell<Option<js_sys::Promise>>,
    /// Page writes to a batch route waiting for others to join them.
    held: RefCell<Option<Held>>,
    /// Counts held batches, so a timer knows whether its batch was sent.
    held_round: Cell<u64>,
    /// When a page write to a batch route last went out.
    last_batch_at: Cell<Option<u64>>,
}

/// Writes held for one batch request: same user, URL and headers.
struct Held {
    user: Option<String>,
    items: usize,
    writes: Vec<HeldWrite>,
    round: u64,
}

/// One page write in a held batch, and how its page is answered.
struct HeldWrite {
    stored: crate::core::record::StoredRequest,
    key: String,
    items: usize,
    reply: Reply,
}

/// Answers one held page write.
struct Reply {
    resolve: js_sys::Function,
    reject: js_sys::Function,
}

impl Reply {
    fn send(self, answer: Result<Response>) {
        match answer {
            Ok(r) => global::settle(&self.resolve, &r),
            Err(e) => global::settle(&self.reject, &JsValue::from(e)),
        }
    }
}

impl HeldWrite {
    fn new(
        stored: crate::core::record::StoredRequest,
        key: String,
        items: usize,
    ) -> (HeldWrite, std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response>>>>) {
        let global::Deferred { promise, resolve, reject } = global::deferred();
        let reply = Reply { resolve, reject };
        let write = HeldWrite { stored, key, items, reply };
        let reply = Box::pin(async move { Ok(crate::web::global::wait(promise).await?.unchecked_into::<Response>()) });
        (write, reply)
    }
}

/// An answer's headers to pass on with a share of its body (its length and
/// encoding no longer apply).
fn response_headers(r: &Response) -> Vec<(String, String)> {
    let mut headers = Vec::new();
    for (name, value) in &global::headers_of(&r.headers()) {
        if name != "content-length" && name != "content-encoding" {
            headers.push((name.clone(), value.clone()));
        }
    }
    headers
}

/// The answer to a write the worker could neither send nor keep: `507`,
/// `storage_full` when the browser's quota is why, else `storage_error`.
fn not_kept(e: &Error, full: bool) -> Result<Response> {
    let body = if full {
        let message = "This device has no room left to keep the write until the network is back \
                       (the browser's storage quota is full, even after freeing every copy that could go). \
                       Free some space, or retry once online.";
        obj! { "error": obj! { "code": "storage_full", "message": message } }
    } else {
        global::log_error("could not keep a write", e);
        let message = cat!("This device could not keep the write until the network is back (", e.text(), ").");
        obj! { "error": obj! { "code": "storage_error", "message": message } }
    };
    response::json(507, &body.to_json())
}

/// An entry's event: `{id, method, url, status?}`; callers add fields.
fn event(e: &Entry) -> Value {
    let mut v = obj! { "id": num(e.id), "method": &e.request.method, "url": &e.request.url };
    if let (Some(s), Some(o)) = (e.last_status, v.as_object_mut()) {
        o.insert("status", s.into());
    }
    v
}

fn with(mut v: Value, field: &str, value: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.insert(field, value);
    }
    v
}

impl Outbox {
    pub fn new(
        config: Rc<Config>,
        origin: String,
        db: Rc<Db>,
        identity: Rc<Identity>,
        clock: Rc<Clock>,
        reads_in_flight: InFlight,
    ) -> Rc<Outbox> {
        Rc::new(Outbox {
            reads_in_flight,
            config,
            origin,
            db,
            identity,
            events: Events::new(),
            clock,
            runner: Runner::default(),
            left: Cell::new(false),
            on_full: RefCell::new(None),
            queue_busy: Cell::new(None),
            stored: Cell::new(0),
            first_in_flight: Cell::new(0),
            gate: RefCell::new(None),
            held: RefCell::new(None),
            held_round: Cell::new(0),
            last_batch_at: Cell::new(None),
        })
    }

    /// Runs a login or logout request with no replay attempt in flight:
    /// the running pass stops before its next attempt and the request waits
    /// for the outbox lock (which every worker instance shares).
    pub async fn switching_user(&self, work: global::Work) -> Result<JsValue> {
        self.identity.begin_switch();
        let result = global::locked(LOCK, work).whole().await;
        self.identity.end_switch();
        result
    }

    /// What frees room when the quota refuses a write (set once the other
    /// parts exist).
    pub fn on_full(&self, free: Box<dyn Fn() -> js_sys::Promise>) {
        *self.on_full.borrow_mut() = Some(free);
    }

    /// The user changed: other users' entries are parked, this one's may go.
    pub fn user_changed(self: &Rc<Self>) {
        self.queue_busy.set(None);
        self.kick(Trigger::Hint);
    }

    /// The first attempt of a write. Queued (and answered `202`) when the
    /// network fails or the origin answers 5xx, 408 or 429; otherwise the
    /// origin's answer goes to the page as it is.
    pub async fn send(self: &Rc<Self>, incoming: Request) -> Result<Response> {
        // The write belongs to whoever is logged in when the page sends it,
        // even if a login or logout lands while its first attempt is out.
        let user = self.identity.current();
        let stored = match request::capture(&incoming).whole().await {
            Ok(stored) => stored,
            // The body could not be read. Seen in Firefox with the storage
            // quota full (a large body reaches the worker through storage
            // too): the write is neither sent nor kept, and the page hears
            // why, never a bare network error.
            Err(e) => {
                global::log_error("could not read a write's body", &e);
                let full = e.is_quota() || self.looks_full(0).whole().await;
                return not_kept(&e, full);
            }
        };
        let turn = self.turn().whole().await;
        let key = stored.idempotency_key().map(str::to_string).unwrap_or_else(global::uuid);
        // A write to a batch route waits up to `batchDelayMs` for others to
        // join it (`core::batch`); anything else first sends what is held.
        let items = self.batchable(&stored);
        let reply = match items.and_then(|n| self.join_held(&stored, &key, &user, n)) {
            Some(reply) => reply,
            None => {
                self.flush_held().whole().await;
                let waiting = self.first_in_flight.get() > 0
                    || match self.queue_busy.get() {
                        Some(busy) => busy,
                        None => {
                            queue::queue_busy(&self.pending().whole().await?, queue::DEFAULT_QUEUE, user.as_deref())
                        }
                    };
                if !queue::may_go_first(waiting) {
                    return self.enqueue(stored, key, user, None).whole().await;
                }
                let now = global::now_ms();
                let burst = self.last_batch_at.get().is_some_and(|t| now < t + u64::from(self.config.batch_delay_ms));
                match items.filter(|_| burst) {
                    // Writes in a burst wait for each other; an isolated one
                    // (none sent within `batchDelayMs`) goes at once.
                    Some(n) => self.hold(stored, key, user, n),
                    None => {
                        if items.is_some() {
                            self.last_batch_at.set(Some(now));
                        }
                        return self.first_attempt(stored, key, user).whole().await;
                    }
                }
            }
        };
        // Held (joined to the batch, or starting one): sent when full, else
        // when `batchDelayMs` is up.
        if self.held_full() {
            self.flush_held().whole().await;
        }
        drop(turn);
        reply.await
    }

    /// The items of a write that may be held for a batch: a POST to a batch
    /// route with a mergeable body, naming no upload's temp id.
    fn batchable(&self, stored: &crate::core::record::StoredRequest) -> Option<usize> {
        if self.config.batch_delay_ms == 0 || crate::core::upload::names_temp_id(&stored.url, &stored.body) {
            return None;
        }
        let path = crate::core::url::split(&stored.url).map(|p| p.path).unwrap_or("");
        let route = batch::route_of(&self.config, &stored.method, path)?;
        batch::items(route, &stored.body).map(|items| items.len())
    }

    /// Adds the write to the held batch if it can go with it; its answer
    /// comes when the batch is sent.
    fn join_held(
        &self,
        stored: &crate::core::record::StoredRequest,
        key: &str,
        user: &Option<String>,
        items: usize,
    ) -> Option<std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response>>>>> {
        let mut held = self.held.borrow_mut();
        let h = held.as_mut()?;
        let first = &h.writes[0].stored;
        let alike = &h.user == user
            && first.url == stored.url
            && first.headers == stored.headers
            && first.credentials == stored.credentials;
        if !alike || h.items + items > self.config.batch_max_items as usize {
            return None;
        }
        let (write, reply) = HeldWrite::new(stored.clone(), key.to_string(), items);
        h.items += items;
        h.writes.push(write);
        Some(reply)
    }

    /// Opens a held batch with this write and sets its timer.
    fn hold(
        self: &Rc<Self>,
        stored: crate::core::record::StoredRequest,
        key: String,
        user: Option<String>,
        items: usize,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response>>>> {
        let (write, reply) = HeldWrite::new(stored, key, items);
        let round = self.held_round.get() + 1;
        self.held_round.set(round);
        *self.held.borrow_mut() = Some(Held { user, items, writes: vec![write], round });
        let me = Rc::clone(self);
        // Fires once (never cleared): a batch sent earlier has another round.
        global::spawn(async move {
            global::sleep(me.config.batch_delay_ms).whole().await;
            let _turn = me.turn().whole().await;
            if me.held.borrow().as_ref().is_some_and(|h| h.round == round) {
                me.flush_held().whole().await;
            }
        });
        reply
    }

    fn held_full(&self) -> bool {
        self.held.borrow().as_ref().is_some_and(|h| h.items >= self.config.batch_max_items as usize)
    }

    /// Sends the held batch, if any, as one request, and answers each of its
    /// writes: its own share of the answer; its own `202` if the batch is
    /// queued (replay merges them again); its own first attempt if the
    /// origin refused the merged request. Called with the turn held, so
    /// later writes wait for it.
    async fn flush_held(self: &Rc<Self>) {
        let Some(held) = self.held.borrow_mut().take() else { return };
        let Held { user, writes, .. } = held;
        self.last_batch_at.set(Some(global::now_ms()));
        let path = crate::core::url::split(&writes[0].stored.url).map(|p| p.path.to_string()).unwrap_or_default();
        let merged = match writes.len() {
            1 => None,
            _ => batch::route_of(&self.config, "POST", &path).and_then(|route| {
                let mut bodies: Vec<&[u8]> = Vec::with_capacity(writes.len());
                for w in &writes {
                    bodies.push(&w.stored.body);
                }
                batch::merged(route, &bodies)
            }),
        };
        // What each write gets after the batch (one await for every case,
        // so each write's attempt is compiled once): its own first attempt,
        // or a place in the queue.
        let mut queued: Option<Option<(Heard, Option<String>)>> = None;
        if let Some(body) = merged {
            let head = &writes[0].stored;
            let key = global::uuid();
            let sent_at = self.identity.generation();
            self.first_in_flight.set(self.first_in_flight.get() + 1);
            let answer = global::fetch_within(
                |signal| {
                    let how = request::Send { signal, replay: false, expect_user: user.as_deref() };
                    request::build(head, &head.url, &body, &key, how)
                },
                self.config.write_timeout_ms,
            )
            .whole()
            .await;
            self.first_in_flight.set(self.first_in_flight.get() - 1);
            let heard = answer.heard();
            let status = answer.response().map(Response::status);
            if let Some(r) = answer.response() {
                if let Err(e) = self.identity.observe(r, sent_at).whole().await {
                    for w in writes {
                        w.reply.send(Err(e.clone()));
                    }
                    return;
                }
                if heard.is_hint() {
                    self.clock.hint(None);
                }
            }
            match (answer, status) {
                (Fetched::Answer(r), Some(200..=299)) => {
                    let headers = response_headers(&r);
                    let bytes = global::body_bytes(&r).whole().await.unwrap_or_default();
                    let mut counts = Vec::with_capacity(writes.len());
                    for w in &writes {
                        counts.push(w.items);
                    }
                    // `split` gives one share per write.
                    let shares = batch::split(&bytes, &counts);
                    for (i, w) in writes.into_iter().enumerate() {
                        w.reply.send(response::build(r.status(), &headers, &shares[i]));
                    }
                    self.kick(Trigger::Scheduled);
                    return;
                }
                // Queued in order: the first with the attempt's answer, the
                // others behind it, never tried.
                (answer, status) if queue_on_first_attempt(status) => {
                    let retry_after = answer.response().and_then(|r| global::header(&r.headers(), "retry-after"));
                    queued = Some(Some((heard, retry_after)));
                }
                // Refused as a whole (one bad item refuses the batch): each
                // write on its own, so only a bad one is refused.
                _ => {}
            }
        }
        for w in writes {
            let answer = match queued.as_mut() {
                Some(failed) => self.enqueue(w.stored, w.key, user.clone(), failed.take()).whole().await,
                None => self.first_attempt(w.stored, w.key, user.clone()).whole().await,
            };
            w.reply.send(answer);
        }
    }

    /// The first attempt of one write, as the page sent it.
    async fn first_attempt(
        self: &Rc<Self>,
        stored: crate::core::record::StoredRequest,
        key: String,
        user: Option<String>,
    ) -> Result<Response> {
        // A write naming an upload's temp id follows the replay rules online
        // too: it waits (queued) while that upload has no server id, and goes
        // with the server id once it has one.
        let (mut url, mut body) = (None, None);
        if crate::core::upload::names_temp_id(&stored.url, &stored.body) {
            let (ids, pending) = self.temp_ids(user.as_deref()).whole().await?;
            if ids.waits_for(&stored.url, &stored.body, &pending) {
                return self.enqueue(stored, key, user, None).whole().await;
            }
            url = ids.rewrite_url(&stored.url);
            body = if stored.is_json() { ids.rewrite_json(&stored.body) } else { None };
        }
        let (url, body) = (url.as_deref().unwrap_or(&stored.url), body.as_deref().unwrap_or(&stored.body));
        let timeout = self.config.write_timeout_ms;
        let sent_at = self.identity.generation();
        self.first_in_flight.set(self.first_in_flight.get() + 1);
        let answer = global::fetch_within(
            |signal| {
                let how = request::Send { signal, replay: false, expect_user: user.as_deref() };
                request::build(&stored, url, body, &key, how)
            },
            timeout,
        )
        .whole()
        .await;
        self.first_in_flight.set(self.first_in_flight.get() - 1);
        let heard = answer.heard();
        if let Fetched::Answer(response) = answer {
            self.identity.observe(&response, sent_at).whole().await?;
            if heard.is_hint() {
                // The origin answers: whatever waits for the network may go.
                self.clock.hint(None);
            }
            if !queue_on_first_attempt(Some(response.status())) {
                // Writes that queued behind this one may go now.
                self.kick(Trigger::Scheduled);
                return Ok(response);
            }
            let retry_after = global::header(&response.headers(), "retry-after");
            return self.enqueue(stored, key, user, Some((heard, retry_after))).whole().await;
        }
        self.enqueue(stored, key, user, Some((heard, None))).whole().await
    }

    /// Waits for the writes handed over before this one; the turn passes
    /// on when the returned guard is dropped.
    async fn turn(&self) -> Turn {
        let mine = global::deferred();
        let before = self.gate.replace(Some(mine.promise));
        if let Some(before) = before {
            let _ = crate::web::global::wait(before).await;
        }
        Turn(mine.resolve)
    }

    /// Stores a write and answers `202`. `failed`: the first attempt's
    /// answer, which schedules retry 1; without one the write was never
    /// tried (older writes of its queue are waiting) and goes as soon as
    /// they have.
    async fn enqueue(
        self: &Rc<Self>,
        stored: crate::core::record::StoredRequest,
        key: String,
        user: Option<String>,
        failed: Option<(Heard, Option<String>)>,
    ) -> Result<Response> {
        let was_busy = self.queue_busy.get() == Some(true);
        let now = global::now_ms();
        let first = failed.as_ref().map(|(heard, retry_after)| Attempt {
            heard: *heard,
            retry_after_ms: retry_after.as_deref().and_then(|v| parse_retry_after(v, now)),
        });
        // The id is the store's to give; the entry is made once.
        let mut entry = queue::new_entry(&self.config, 0, user, stored, key.clone(), now, first, global::random());
        let mut freed = false;
        let id = loop {
            let appended = db::append(&self.db, |id| {
                entry.id = id;
                record::encode(&entry)
            })
            .whole()
            .await;
            let appended = match appended {
                Err(e) if !e.is_quota() && self.looks_full(entry.request.body.len()).whole().await => {
                    let message = cat!("the storage estimate says the quota is full (", e.text(), ")");
                    Err(Error::new("QuotaExceededError", message))
                }
                other => other,
            };
            match appended {
                Ok(id) => break id,
                // The browser's quota: what may go (read copies, files already
                // safe on the server) goes, and the write is stored once more.
                Err(e) if e.is_quota() && !freed => {
                    freed = true;
                    let free = self.on_full.borrow().as_ref().map(|f| f());
                    if let Some(free) = free {
                        let _ = crate::web::global::wait(free).await;
                    }
                }
                // Never a 202 without a record, never the write dropped as a
                // network error: the page hears why.
                // Any other refusal too: the write is not kept, and the page
                // is told so plainly (not a bare network error).
                Err(e) => return not_kept(&e, e.is_quota()),
            }
        };
        self.queue_busy.set(Some(true));
        self.stored.set(self.stored.get() + 1);
        self.events.emit(Event::Queued, event(&entry));
        // An entry queued behind others is not a head: the head's own wake
        // covers it, and waking for it would run a pass (a read of the whole
        // outbox) per queued write.
        if !was_busy {
            self.clock.due_by(Part::Outbox, entry.next_at, entry.last_status.is_none());
        }
        // One registration covers every write queued after it.
        if !was_busy {
            global::register_sync(SYNC_TAG).whole().await;
        }
        let id = num(id);
        let body = obj! { "queued": true, "id": &id, "idempotencyKey": key }.to_json();
        response::json_queued(202, &body, Some(&id))
    }

    /// Whether the browser's quota is what refused `incoming` bytes.
    async fn looks_full(&self, incoming: usize) -> bool {
        match global::storage_estimate().whole().await {
            Some((usage, quota)) => crate::core::upload::over_quota(usage, quota, incoming as u64),
            None => false,
        }
    }

    /// Starts a replay in the background; see `queue::due` for what the
    /// trigger changes.
    pub fn kick(self: &Rc<Self>, trigger: Trigger) {
        let me = Rc::clone(self);
        global::spawn(async move {
            if let Err(e) = me.replay(trigger).whole().await {
                global::log_error("replay failed", &e);
            }
        });
    }

    /// Replays what is due; one replay at a time per worker: a trigger that
    /// arrives meanwhile makes the running one go round again, and waits
    /// for it. Returns whether pending entries are left.
    pub async fn replay(self: &Rc<Self>, trigger: Trigger) -> Result<bool> {
        let me = Rc::clone(self);
        self.runner
            .run(trigger, &move |trigger| {
                // Passes are serialised across worker instances too; each one
                // reads the outbox afresh under the lock, so no instance writes
                // back a stale copy of an entry another one delivered.
                let me = Rc::clone(&me);
                global::work(async move {
                    global::with_lock(LOCK, async move { me.pass(trigger).whole().await.map(|()| JsValue::UNDEFINED) })
                        .whole()
                        .await
                        .map(drop)
                })
            })
            .whole()
            .await?;
        Ok(self.left.get())
    }

    /// Reads every entry; unreadable records go to quarantine as dead
    /// letters instead of blocking the queue.
    async fn pending(&self) -> Result<Vec<Entry>> {
        let mut entries = Vec::new();
        for (key, bytes) in &db::records(&self.db, db::OUTBOX).whole().await? {
            let problem = match (db::entry_id(key), record::decode(bytes)) {
                (Some(id), Ok(entry)) if entry.id == id => {
                    entries.push(entry);
                    continue;
                }
                // Written by a newer Outpost (an update is rolling out): not
                // ours to judge. It stays where it is for the newer worker.
                (_, Err(RecordError::UnknownSchema(_))) => continue,
                (_, Err(e)) => e.text(),
                _ => "its key does not match its entry id".to_string(),
            };
            db::quarantine(&self.db, key, bytes, self.identity.current().as_deref()).whole().await?;
            let reason = cat!("unreadable record: ", problem);
            self.events.emit(Event::DeadLettered, obj! { "id": db::key_text(key), "reason": reason });
        }
        Ok(entries)
    }

    /// One pass: every head is attempted at most once. Deliveries are
    /// committed to IndexedDB in batches (see `Delivered`), and always
    /// before the pass ends.
    async fn pass(&self, trigger: Trigger) -> Result<()> {
        let mut done = Delivered::default();
        // Writes queued while the pass runs are not in what it reads: the
        // clock keeps their wakes, and the pass must not say the queue is
        // idle (a later write would then go ahead of them).
        self.clock.begin(Part::Outbox);
        let stored_before = self.stored.get();
        let result = self.pass_within(trigger, &mut done).whole().await;
        let stored_meanwhile = self.stored.get() != stored_before;
        if stored_meanwhile {
            self.queue_busy.set(None);
        }
        let committed = self.commit(&mut done).whole().await;
        let now = global::now_ms();
        match &result {
            Ok((entries, user)) => {
                let wake = queue::next_wake(entries, user.as_deref());
                self.left.set(wake.is_some() || stored_meanwhile);
                // The pass delivered the last of this user's writes: the temp
                // ids learned for them have served (checked only then, so an
                // online write costs no extra read).
                if done.any && wake.is_none() && self.pending_uploads(user.as_deref()).whole().await?.is_empty() {
                    db::prune_ids(&self.db, user.as_deref()).whole().await?;
                }
                let silent = queue::waits_for_network(entries, user.as_deref());
                self.clock.report(Part::Outbox, clock::after_pass(wake, now), silent);
            }
            // Storage failed mid-pass: look again later rather than never.
            Err(_) => self.clock.report(Part::Outbox, clock::after_pass(Some(now), now), true),
        }
        committed?;
        result.map(drop)
    }

    /// Removes delivered entries and saves the temp ids they taught, in one
    /// transaction, then tells pages.
    async fn commit(&self, done: &mut Delivered) -> Result<()> {
        if done.ids.is_empty() {
            return Ok(());
        }
        db::commit(&self.db, &done.ids, done.user.as_deref(), &done.learned).whole().await?;
        done.any = true;
        // The origin has them: pages read again on `replayed`, and a read
        // in flight may have been sent before these arrived.
        self.reads_in_flight.borrow_mut().clear();
        for ev in std::mem::take(&mut done.events) {
            self.events.emit(Event::Replayed, ev);
        }
        done.ids.clear();
        done.learned.clear();
        Ok(())
    }

    /// The pass proper; returns the entries as it left them, and the user
    /// it ran for, so the wake is computed without reading them again.
    async fn pass_within(&self, trigger: Trigger, done: &mut Delivered) -> Result<(Vec<Entry>, Option<String>)> {
        // Under the lock: another worker instance may have seen a login.
        self.identity.reload().whole().await?;
        let mut entries = self.pending().whole().await?;
        let now = global::now_ms();
        for &e in &queue::expire(&self.config, &mut entries, now) {
            let entry = entries.iter().find(|x| x.id == e).expect("expired entries exist");
            db::put(&self.db, db::OUTBOX, e, &record::encode(entry)).whole().await?;
            self.dead_event(entry);
        }
        let user = self.identity.current();
        let (mut ids, waiting) = self.temp_ids(user.as_deref()).whole().await?;
        done.user = user.clone();
        if self.identity.logout_pending() {
            // The cookie is still the logged-out user's: nothing goes until
            // the owed logout has (the next request of a page sends it).
            return Ok((entries, user));
        }
        let mut attempted: Vec<u64> = Vec::new();
        loop {
            if self.identity.switching() || self.identity.current() != user || self.first_in_flight.get() > 0 {
                // The user is changing, or a first attempt is out: what is
                // left waits for the next pass, which either's end starts.
                return Ok((entries, user));
            }
            let due = queue::due(&entries, user.as_deref(), &attempted, global::now_ms(), 1, trigger);
            let Some(&id) = due.first() else {
                break;
            };
            attempted.push(id);
            let i = entries.iter().position(|e| e.id == id).expect("due ids exist");
            if ids.waits_for(&entries[i].request.url, &entries[i].request.body, &waiting) {
                // Its queue waits with it; the upload's presign starts a new pass.
                break;
            }
            // Queued batch writes right behind it go with it (`core::batch`).
            let mut run = batch::merge_run(&self.config, &entries, i, |e| {
                ids.waits_for(&e.request.url, &e.request.body, &waiting)
            });
            let sent_at = self.identity.generation();
            let mut sent = self.attempt(&mut entries, &run, &mut ids, done).whole().await?;
            if sent == Sent::Split {
                // The merged request was refused: each goes alone, so only
                // a write the origin refuses is a dead letter.
                run.truncate(1);
                sent = self.attempt(&mut entries, &run, &mut ids, done).whole().await?;
            }
            match sent {
                Sent::Split => unreachable!("a single write is never split"),
                Sent::Delivered => {
                    for &k in run.iter().rev() {
                        entries.remove(k);
                    }
                    if done.ids.len() >= COMMIT_EVERY {
                        self.commit(done).whole().await?;
                    }
                }
                Sent::Kept => {}
                Sent::Parked => {
                    // The session is gone (401), or is someone else's (412,
                    // already learned from the answer): nothing more of this
                    // user's can go.
                    if entries[i].last_status == Some(401) {
                        self.identity.apply(&identity::learn(Source::Replay, Some(401), &[]), sent_at).whole().await?;
                    }
                    return Ok((entries, user));
                }
            }
        }
        self.queue_busy.set(Some(queue::queue_busy(&entries, queue::DEFAULT_QUEUE, user.as_deref())));
        Ok((entries, user))
    }

    /// The temp ids learned so far, and the uploads not yet presigned (a
    /// write naming one of those waits for it).
    async fn temp_ids(&self, user: Option<&str>) -> Result<(IdMap, Vec<String>)> {
        let ids = db::id_map(&self.db, user).whole().await?;
        let mut waiting = Vec::new();
        for u in &self.pending_uploads(user).whole().await? {
            if u.asset_id.is_none() {
                waiting.push(u.id.clone());
            }
        }
        Ok((ids, waiting))
    }

    /// `user`'s uploads still under way.
    async fn pending_uploads(&self, user: Option<&str>) -> Result<Vec<crate::core::upload::Upload>> {
        let mut pending = Vec::new();
        for (_, v) in &db::records(&self.db, db::UPLOADS).whole().await? {
            if let Ok(u) = crate::core::upload::decode(v) {
                if u.is_pending() && u.user.as_deref() == user {
                    pending.push(u);
                }
            }
        }
        Ok(pending)
    }

    /// The quarantined records `user` may see and discard: theirs, and
    /// those of the previous build, whose owner is unknown.
    async fn quarantined(&self, user: Option<&str>) -> Result<Vec<(JsValue, Vec<u8>)>> {
        let mut theirs = Vec::new();
        for (k, v) in &db::records(&self.db, db::QUARANTINE).whole().await? {
            if record::quarantine_owner(v).is_none_or(|owner| owner.as_deref() == user) {
                theirs.push((k.clone(), v.clone()));
            }
        }
        Ok(theirs)
    }

    /// Sends the entries of `run` (indexes into `entries`, the due head
    /// first): one entry as it was queued, or several batch writes merged
    /// into one request under a fresh Idempotency-Key (the origin stores
    /// each item once whatever request carries it, see `core::batch`). The
    /// answer is the head's; followers are delivered with it, or stay as
    /// they were (never attempted).
    async fn attempt(
        &self,
        entries: &mut [Entry],
        run: &[usize],
        ids: &mut IdMap,
        done: &mut Delivered,
    ) -> Result<Sent> {
        let merged = if run.len() > 1 {
            let mut bodies: Vec<Vec<u8>> = Vec::with_capacity(run.len());
            for &k in run {
                let e = &entries[k];
                bodies.push(ids.rewrite_json(&e.request.body).unwrap_or_else(|| e.request.body.clone()));
            }
            let path = crate::core::url::split(&entries[run[0]].request.url).map(|p| p.path).unwrap_or("");
            let route = batch::route_of(&self.config, &entries[run[0]].request.method, path);
            let mut refs: Vec<&[u8]> = Vec::with_capacity(bodies.len());
            for b in &bodies {
                refs.push(b);
            }
            route.and_then(|r| batch::merged(r, &refs))
        } else {
            None
        };
        let run = if merged.is_some() { run } else { &run[..1] };
        // What is written back after the attempt (one write for every end
        // but delivery, so the write's future is compiled once).
        let after = 'attempt: {
            let entry = &mut entries[run[0]];
            if !queue::still_a_write(&self.config, &self.origin, entry) {
                break 'attempt Step::Dead(queue::off_route(entry, global::now_ms()));
            }
            let url = ids.rewrite_url(&entry.request.url).unwrap_or_else(|| entry.request.url.clone());
            let rewritten = if entry.request.is_json() { ids.rewrite_json(&entry.request.body) } else { None };
            let body = merged.as_deref().or(rewritten.as_deref()).unwrap_or(&entry.request.body);
            let key = if merged.is_some() { global::uuid() } else { entry.idempotency_key.clone() };
            let sent_at = self.identity.generation();
            let answer = global::fetch_within(
                |signal| {
                    request::build(
                        &entry.request,
                        &url,
                        body,
                        &key,
                        request::Send { signal, replay: true, expect_user: entry.user.as_deref() },
                    )
                },
                self.config.write_timeout_ms,
            )
            .whole()
            .await;
            let now = global::now_ms();
            let heard = answer.heard();
            if heard.is_hint() {
                // Uploads waiting for the network may go too.
                self.clock.hint(Some(Part::Outbox));
            }
            if let Some(r) = answer.response() {
                // Named by the origin: a user other than the entry's (412) is
                // learned here, and the pass stops before the next attempt.
                self.identity.observe(r, sent_at).whole().await?;
            }
            let (retry_after, response_body) = match answer.response() {
                Some(r) => {
                    let retry_after =
                        global::header(&r.headers(), "retry-after").and_then(|v| parse_retry_after(&v, now));
                    let body = if r.ok() {
                        match global::array_buffer(r) {
                            Ok(p) => crate::web::global::wait(p).await.ok().map(|b| Uint8Array::new(&b).to_vec()),
                            Err(_) => None,
                        }
                    } else {
                        None
                    };
                    (retry_after, body)
                }
                None => (None, None),
            };
            if run.len() > 1 && classify(heard.status()) == Outcome::Refused {
                return Ok(Sent::Split);
            }
            let entry = &mut entries[run[0]];
            match queue::after_attempt(
                &self.config,
                entry,
                Attempt { heard, retry_after_ms: retry_after },
                now,
                global::random(),
            ) {
                Step::Delivered => {
                    if let Some(body) = response_body {
                        done.learned.append(&mut ids.learn_from_response(&body));
                    }
                    let status = entry.last_status;
                    for &k in run {
                        let e = &mut entries[k];
                        e.last_status = status;
                        done.ids.push(e.id);
                        done.events.push(event(e));
                    }
                    return Ok(Sent::Delivered);
                }
                step => step,
            }
        };
        let entry = &entries[run[0]];
        db::put(&self.db, db::OUTBOX, entry.id, &record::encode(entry)).whole().await?;
        match after {
            Step::Parked => return Ok(Sent::Parked),
            Step::Retry { at } => {
                let ev = with(event(entry), "retryAt", at.into());
                self.events.emit(Event::RetryScheduled, with(ev, "retries", entry.retries.into()));
            }
            _ => self.dead_event(entry),
        }
        Ok(Sent::Kept)
    }

    fn dead_event(&self, entry: &Entry) {
        let mut ev = event(entry);
        if let State::Dead { reason, .. } = &entry.state {
            ev = with(ev, "reason", reason.text().into());
        }
        self.events.emit(Event::DeadLettered, ev);
    }

    /// `{pending, deadLetters, uploads, storage}` for `outpost.status()`.
    /// The outbox's part of the status (uploads and storage are filled in
    /// by the caller).
    pub async fn status(&self) -> Result<protocol::Status> {
        let user = self.identity.current();
        let entries = self.pending().whole().await?;
        let (mut pending, mut parked) = (0, 0);
        let (mut dead_letters, mut queue) = (Vec::new(), Vec::new());
        for e in &entries {
            match &e.state {
                State::Pending if e.user != user => parked += 1,
                State::Pending => {
                    pending += 1;
                    // The first waiting writes, for a page to show when each goes next.
                    if queue.len() < STATUS_QUEUE_LEN {
                        queue.push(protocol::QueuedWrite {
                            id: num(e.id),
                            method: e.request.method.clone(),
                            url: e.request.url.clone(),
                            retries: e.retries,
                            next_at: e.next_at,
                            status: e.last_status,
                            created_at: e.created_at,
                        });
                    }
                }
                State::Dead { .. } if e.user != user => {}
                State::Dead { reason, at } => dead_letters.push(protocol::DeadLetter {
                    id: num(e.id),
                    method: Some(e.request.method.clone()),
                    url: Some(e.request.url.clone()),
                    status: e.last_status,
                    reason: reason.text(),
                    at: Some(*at),
                }),
            }
        }
        for (key, _) in &self.quarantined(user.as_deref()).whole().await? {
            dead_letters.push(protocol::DeadLetter {
                id: db::key_text(key),
                method: None,
                url: None,
                status: None,
                reason: "unreadable record (quarantined); discard it".into(),
                at: None,
            });
        }
        Ok(protocol::Status {
            user,
            pending,
            parked,
            queue,
            dead_letters,
            uploads: Vec::new(),
            storage: protocol::Storage::default(),
            next_wake_at: self.clock.told(),
            worker_started_at: 0,
            worker_heap_bytes: 0,
            storage_error: None,
        })
    }

    /// Puts a dead letter back in line, due now.
    pub async fn retry(self: &Rc<Self>, id: &str) -> Result<bool> {
        let Ok(id) = id.parse::<u64>() else { return Ok(false) };
        let mut entries = self.pending().whole().await?;
        let user = self.identity.current();
        let Some(entry) = entries.iter_mut().find(|e| e.id == id && e.user == user) else { return Ok(false) };
        if !queue::revive(entry, global::now_ms()) {
            return Ok(false);
        }
        db::put(&self.db, db::OUTBOX, id, &record::encode(entry)).whole().await?;
        self.queue_busy.set(Some(true));
        self.kick(Trigger::Explicit);
        Ok(true)
    }

    /// Drops a dead letter (or a quarantined record) for good.
    pub async fn discard(&self, id: &str) -> Result<bool> {
        let entries = self.pending().whole().await?;
        let user = self.identity.current();
        let mine = |e: &&Entry| num(e.id) == id && e.user == user && matches!(e.state, State::Dead { .. });
        if let Some(e) = entries.iter().find(mine) {
            db::delete(&self.db, db::OUTBOX, e.id).whole().await?;
            return Ok(true);
        }
        for (key, _) in &self.quarantined(user.as_deref()).whole().await? {
            if db::key_text(key) == id {
                db::delete_key(&self.db, db::QUARANTINE, key.clone()).whole().await?;
                // An unreadable upload or blob record: its file goes too, so
                // it cannot hold the device's budget for ever.
                if let Some(file) = record::quarantined_file(id) {
                    let keys = [file.to_string()];
                    db::delete_keys(&self.db, &[db::UPLOADS, db::BLOBS, db::BLOB_META], &keys).whole().await?;
                }
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Delivered entries not yet removed from IndexedDB. Removing them in
/// batches spares a transaction per write; if the worker dies before a
/// batch is committed, those writes are sent again with their
/// Idempotency-Keys and the origin answers them from its record, so none
/// applies twice (and their temp ids are learned again from the answers).
#[derive(Default)]
struct Delivered {
    /// Whose writes these are (the pass's user): the temp ids they taught
    /// are that user's.
    user: Option<String>,
    /// Whether this pass delivered anything.
    any: bool,
    ids: Vec<u64>,
    learned: Vec<(String, String)>,
    events: Vec<Value>,
}

/// Deliveries per IndexedDB commit during a replay.
const COMMIT_EVERY: usize = 25;

/// A write's turn to be sent or queued; dropping it lets the next go.
struct Turn(js_sys::Function);

impl Drop for Turn {
    fn drop(&mut self) {
        global::settle(&self.0, &JsValue::UNDEFINED);
    }
}

/// What became of one attempt.
#[derive(Debug, PartialEq, Eq)]
enum Sent {
    /// Every entry of the run reached the origin.
    Delivered,
    /// A merged request was refused: send the head alone.
    Split,
    /// Still in the outbox: retrying, or dead-lettered.
    Kept,
    /// Its user's session is gone (401).
    Parked,
}
