//! The web side: carries out what `core` decides, with web-sys, one module
//! per browser concept. The few decisions kept here are listed, with why, in
//! `docs/architecture.md`.

mod clock;
mod db;
mod error;
mod events;
mod global;
mod identity;
mod outbox;
mod reads;
mod request;
mod response;
mod runner;
mod task;
mod uploads;

use error::{Error, Result};
use global::Whole;
use std::cell::RefCell;
use std::rc::Rc;

use js_sys::Promise;
use wasm_bindgen::prelude::*;
use web_sys::{Request, Response};

use crate::core::clock::{Heard, Trigger};
use crate::core::config::Config;
use crate::core::identity::{self as who, Learned, Source};
use crate::core::json::{self, obj, Value};
use crate::core::protocol;
use crate::core::queue::{sync_end, SyncEnd};
use crate::core::route::{route_request, AuthRoute, Route};
use crate::core::text::cat;
use clock::{Clock, Part};
use identity::Identity;
use outbox::Outbox;
use reads::{ReadRoute, Reads};
use uploads::Uploads;

struct Inner {
    config: Rc<Config>,
    origin: String,
    version: String,
    /// When this worker instance started (browsers stop idle workers and
    /// start new ones; `status()` shows which one answers).
    started_at: u64,
    parts: RefCell<Option<Rc<Parts>>>,
    /// Resolves once `parts` is set (or rejects with why it could not be).
    opening: RefCell<Option<Promise>>,
    /// Reads in flight, by `core::reads::share_key`: an identical read made
    /// meanwhile (another tab, another component) waits for the same one.
    /// A few at a time: a `Vec` (a `HashMap` cost the wasm its hashing and
    /// table code).
    inflight: InFlight,
    /// Work that outlives the request that started it (the login warm-up, a
    /// read's copy): the bootstrap keeps the worker alive until it settles
    /// (`settled`).
    background: Background,
    /// Answers to the requests that came before storage was ready (the
    /// request that started this worker, mostly): the start's own work
    /// (replays, the user check, the shell) waits for them, at most
    /// `START_YIELD_MS`, so a cold start's first answer does not share the
    /// worker's one thread with it.
    cold_answers: RefCell<Vec<Promise>>,
}

/// Reads in flight, shared by identical reads (`Inner::shared_fetch`).
/// Whatever makes a write reach the origin (the page's write, a replay, a
/// finished upload) empties it: a read made after that must not get the
/// answer to one sent before it.
pub(crate) type InFlight = Rc<RefCell<Vec<(String, Promise)>>>;

/// Work the event that started it waits for (`Outpost::settled`).
pub(crate) type Background = Rc<RefCell<Vec<Promise>>>;

/// How long the start's own work gives way to the requests that came
/// before storage was ready.
const START_YIELD_MS: u32 = 100;

/// What `start()` opens.
#[derive(Clone)]
struct Parts {
    outbox: Rc<Outbox>,
    reads: Rc<Reads>,
    uploads: Rc<Uploads>,
    identity: Rc<Identity>,
    clock: Rc<Clock>,
}

impl Inner {
    /// The whole status: the outbox's, the uploads', the storage estimate.
    async fn status(&self, parts: &Parts) -> Result<protocol::Status> {
        let mut status = parts.outbox.status().whole().await?;
        let estimate = global::storage_estimate().whole().await;
        let (blobs, budget) = parts.uploads.storage(estimate.map(|(_, q)| q as u64)).whole().await?;
        status.uploads = parts.uploads.status().whole().await?;
        status.storage = protocol::Storage {
            usage: estimate.map(|(u, _)| u as u64),
            quota: estimate.map(|(_, q)| q as u64),
            budget,
            blobs,
        };
        status.worker_started_at = self.started_at;
        status.worker_heap_bytes = crate::heap::in_use() as u64;
        Ok(status)
    }

    /// The network request of a read, shared with identical reads in flight
    /// (`core::reads::share_key`). The first read's fetch is never consumed:
    /// every caller, the first included, gets its own clone of the answer.
    fn shared_fetch(&self, request: &Request) -> Result<Promise> {
        let headers = request::headers_of(request)?;
        let generation = self.parts.borrow().as_ref().map(|p| p.identity.generation());
        let credentials = match request.credentials() {
            web_sys::RequestCredentials::Omit => "omit",
            web_sys::RequestCredentials::Include => "include",
            _ => "same-origin",
        };
        let key = crate::core::reads::share_key(&request.url(), credentials, generation, &headers);
        let existing = self.inflight.borrow().iter().find(|(k, _)| *k == key).map(|(_, p)| p.clone());
        let shared = match existing {
            Some(p) => p,
            None => {
                let p = global::start_fetch(request);
                self.inflight.borrow_mut().push((key.clone(), p.clone()));
                // Settled: later reads make their own request.
                let inflight = Rc::clone(&self.inflight);
                let mine = p.clone();
                global::on_settled(&p, move || {
                    // Only this entry: after a write, a new read of the
                    // same key may be in flight under it.
                    let mut inflight = inflight.borrow_mut();
                    if let Some(i) = inflight.iter().position(|(_, q)| q.loose_eq(&mine)) {
                        drop(inflight.remove(i));
                    }
                });
                p
            }
        };
        Ok(global::cloned_response(&shared))
    }

    /// The opened parts, waiting for IndexedDB to open if it has not yet.
    async fn parts(&self) -> Result<Rc<Parts>> {
        if let Some(parts) = self.parts.borrow().clone() {
            return Ok(parts);
        }
        let opening = self.opening.borrow().clone();
        match opening {
            Some(p) => {
                crate::web::global::wait(p).await?;
            }
            None => return Err(Error::worker("the worker has not started")),
        }
        self.parts.borrow().clone().ok_or_else(|| Error::worker("the worker could not open its storage"))
    }

    async fn outbox(&self) -> Result<Rc<Outbox>> {
        Ok(Rc::clone(&self.parts().whole().await?.outbox))
    }

    /// Acts on what an answer said about the user. A logout takes effect
    /// first (nothing more goes out as the old user), then every user's
    /// cached reads and kept files on this device are forgotten; files not
    /// yet uploaded stay, parked for their user.
    async fn learned(&self, source: Source, learned: Learned, sent_at: Option<u64>) -> Result<()> {
        let parts = self.parts().whole().await?;
        // None: a login's or logout's own answer, the change itself.
        parts.identity.apply(&learned, sent_at.unwrap_or_else(|| parts.identity.generation())).whole().await?;
        if source == Source::Logout {
            parts.reads.clear_users().whole().await?;
            parts.uploads.forget_copies().whole().await?;
        }
        Ok(())
    }

    /// Reads an auth route's answer for the user; hands it on unread.
    /// `sent_at`: for "me", the user's generation when it was asked; its
    /// answer is not learned if a login or logout came in between (it
    /// speaks of the session before). A login's or logout's own answer is
    /// always learned: it is the change.
    async fn observe(&self, source: Source, answer: Response, sent_at: Option<u64>) -> Result<Response> {
        let parts = self.parts().whole().await?;
        if Heard::Status(answer.status()).is_hint() {
            parts.clock.hint(None);
        }
        let body = match global::copy(&answer) {
            Ok(copy) => global::body_bytes(&copy).whole().await.unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        self.learned(source, who::learn(source, Some(answer.status()), &body), sent_at).whole().await?;
        Ok(answer)
    }

    async fn auth(self: &Rc<Self>, request: Request, kind: AuthRoute) -> Result<Response> {
        let source = match kind {
            AuthRoute::Me => {
                let sent_at = self.parts().whole().await?.identity.generation();
                return self.observe(Source::Me, global::fetch(&request).whole().await?, Some(sent_at)).whole().await;
            }
            AuthRoute::Login => Source::Login,
            AuthRoute::Logout => Source::Logout,
        };
        // The request and what its answer says about the user happen while
        // no replay runs (the outbox lock), so the user changes before any
        // other request can go out with the new cookie.
        let me = Rc::clone(self);
        let work = async move {
            let identity = Rc::clone(&me.parts().whole().await?.identity);
            match global::fetch(&request).whole().await {
                Ok(r) => {
                    // An answered logout ended the session at the origin; a
                    // login replaced it: either way no logout is owed.
                    if source == Source::Logout || r.ok() {
                        identity.set_logout_pending(false).whole().await?;
                    }
                    me.observe(source, r, None).whole().await.map(Into::into)
                }
                Err(e) => {
                    // An offline logout still ends the user's session here,
                    // and is owed to the origin: it goes before anything else.
                    if source == Source::Logout {
                        identity.set_logout_pending(true).whole().await?;
                    }
                    me.learned(source, who::learn(source, None, &[]), None).whole().await?;
                    Err(e)
                }
            }
        };
        let answer = self.outbox().whole().await?.switching_user(global::work(work)).whole().await?;
        let logged_in = self.parts().whole().await.is_ok_and(|p| p.identity.current().is_some());
        if source == Source::Login && logged_in {
            self.warm_up();
        }
        Ok(answer.unchecked_into())
    }

    /// Reads the `warmUp` routes in the background (`core::warmup`), so the
    /// user's data is on the device before they need it offline. Stops if
    /// the user changes; pages hear `warm-up {done, total}`.
    fn warm_up(self: &Rc<Self>) {
        if self.config.warm_up.is_empty() {
            return;
        }
        let me = Rc::clone(self);
        let work = promise(async move {
            if let Err(e) = me.warm_up_now().whole().await {
                global::log_error("the login warm-up stopped", &e);
            }
            Ok(JsValue::UNDEFINED)
        });
        self.background.borrow_mut().push(work);
    }

    async fn warm_up_now(self: &Rc<Self>) -> Result<()> {
        let parts = self.parts().whole().await?;
        let user = parts.identity.current();
        let events = events::Events::new();
        let first = self.warm_read(&parts, &self.config.warm_up[0]).whole().await?;
        let answer = first.and_then(|b| json::parse(&b).ok()).unwrap_or_default();
        let rest =
            crate::core::warmup::expand(&self.config.warm_up, &answer, self.config.warm_up_max_requests as usize);
        let total = rest.len() + 1;
        events.emit(protocol::Event::WarmUp, obj! { "done": 1u32, "total": total });
        for (i, path) in rest.iter().enumerate() {
            if parts.identity.current() != user {
                return Ok(()); // someone else's session now: not theirs to fetch
            }
            if let Err(e) = self.warm_read(&parts, path).whole().await {
                global::log_error("a warm-up read failed", &e);
            }
            events.emit(protocol::Event::WarmUp, obj! { "done": i + 2, "total": total });
        }
        Ok(())
    }

    /// One warm-up read through the worker's own handling (stored as a read,
    /// or kept as a file); the body when the answer was a success.
    async fn warm_read(&self, parts: &Parts, path: &str) -> Result<Option<Vec<u8>>> {
        let url = cat!(self.origin, path);
        let request = global::get(&url, None)?;
        let answer = match route_request(&self.config, &self.origin, "GET", &url, false) {
            Route::Read(_) => {
                let how = self.read_route(&url, false);
                let started = global::start_fetch(&request);
                parts.reads.handle(request, how, started).whole().await?
            }
            Route::Content => parts.uploads.content(request).whole().await?,
            // Nothing the worker keeps: reading it would only cost the origin.
            _ => return Ok(None),
        };
        if !answer.ok() {
            return Ok(None);
        }
        Ok(Some(global::body_bytes(&answer).whole().await?))
    }

    /// Sends the logout still owed to the origin, if one is. Returns
    /// whether requests may go out (no logout owed any more).
    async fn settle_logout(self: &Rc<Self>) -> Result<bool> {
        let parts = self.parts().whole().await?;
        if !parts.identity.logout_pending() {
            return Ok(true);
        }
        let url = cat!(self.origin, self.config.auth.logout.as_str());
        let how = global::Send { method: "POST", credentials: "same-origin", manual: false, body: None, signal: None };
        let request = global::new_request(&url, &js_sys::Array::new(), how)?;
        // `auth` clears the debt once the origin answers.
        let _ = self.auth(request, AuthRoute::Logout).whole().await;
        Ok(!parts.identity.logout_pending())
    }

    /// The next cold start may answer reads before it could know whether a
    /// logout is owed, as long as none is: the table checked against the
    /// debt in IndexedDB and written (or deleted) under the lock logins and
    /// logouts take. At each start, and at activation (`keepColdReads`).
    async fn keep_cold_reads(&self) {
        let Ok(parts) = self.parts().whole().await else { return };
        let identity = Rc::clone(&parts.identity);
        let work = async move { identity.allow_cold_reads().whole().await.map(|()| JsValue::UNDEFINED) };
        if let Err(e) = parts.outbox.switching_user(global::work(work)).whole().await {
            global::log_error("could not keep the cold-read table", &e);
        }
    }

    /// Asks the origin who is logged in (a login may have happened before
    /// this worker could see it), then lets the outbox replay.
    async fn refresh_user(&self) -> Result<()> {
        let me = self.config.auth.me.as_str();
        if crate::core::text::find_byte(me, b'*').is_none() {
            let url = cat!(self.origin, me);
            let sent_at = self.parts().whole().await?.identity.generation();
            let answer = global::fetch_within(|signal| global::get(&url, Some(signal)), self.config.network_timeout_ms)
                .whole()
                .await;
            if let global::Fetched::Answer(r) = answer {
                self.observe(Source::Me, r, Some(sent_at)).whole().await?;
            }
        }
        Ok(())
    }

    fn read_route(&self, path_url: &str, shell: bool) -> ReadRoute {
        let path = crate::core::url::split(path_url).map(|p| p.path).unwrap_or("");
        let any = |ps: &[crate::core::pattern::Pattern]| ps.iter().any(|p| p.matches(path));
        ReadRoute {
            shell,
            swr: !shell && any(&self.config.stale_while_revalidate),
            names_user: !shell && any(&self.config.auth.user_in),
        }
    }
}

/// The `#[wasm_bindgen]` boundary: the worker's errors become JS `Error`s
/// here, and nowhere else.
fn promise<F, A>(f: F) -> Promise
where
    F: std::future::Future<Output = Result<JsValue>> + Whole<A> + 'static,
{
    global::boxed_promise(global::work(f))
}

/// One per worker start, made by the bootstrap (`sw.js`) once the wasm is
/// instantiated (`outpostNew`); `start()` must resolve before any other call.
/// The bootstrap reaches it through free functions (below) rather than a
/// wasm-bindgen class: a class's glue (its pointer, a finalizer registry,
/// a borrow check in every method) weighed more, and there is only ever one.
pub struct Outpost {
    inner: Rc<Inner>,
}

static OUTPOST: task::Local<Option<Outpost>> = task::Local::new(None);

/// The worker's `Outpost` (made by `outpostNew` before the bootstrap calls
/// anything else).
fn outpost() -> &'static Outpost {
    // SAFETY: set once, by `outpostNew`, before any call reads it.
    unsafe { OUTPOST.get() }.as_ref().expect("outpostNew runs first")
}

/// `config_json` is the worker's JSON config (empty for defaults), `origin`
/// the worker's `location.origin`, `version` the bundle hash the build
/// stamped into `sw.js`.
#[wasm_bindgen(js_name = outpostNew)]
pub fn outpost_new(config_json: &str, origin: String, version: String) -> Result<(), Error> {
    let made = Outpost::new(config_json, origin, version)?;
    // SAFETY: one statement; nothing holds the old value.
    *unsafe { OUTPOST.get() } = Some(made);
    Ok(())
}

#[wasm_bindgen]
pub fn start() -> Promise {
    outpost().start()
}

#[wasm_bindgen]
pub fn claims(method: &str, url: &str, navigate: bool) -> bool {
    outpost().claims(method, url, navigate)
}

/// `navigate`: whether the request's `mode` is `"navigate"`, as for
/// `claims`.
#[wasm_bindgen]
pub fn handle(request: Request, navigate: bool, started: Option<Promise>) -> Promise {
    outpost().handle(request, navigate, started)
}

#[wasm_bindgen(js_name = onSync)]
pub fn on_sync(last_chance: bool) -> Promise {
    outpost().on_sync(last_chance)
}

/// A page's message: its `type` and its `id` (when a string); the reply is
/// JSON text.
#[wasm_bindgen]
pub fn message(kind: String, id: Option<String>) -> Promise {
    outpost().message(kind, id)
}

#[wasm_bindgen(js_name = settled)]
pub fn background_settled() -> Promise {
    outpost().settled()
}

#[wasm_bindgen(js_name = staticRoutes)]
pub fn static_routes() -> String {
    outpost().static_routes()
}

#[wasm_bindgen(js_name = keepColdReads)]
pub fn keep_cold_reads() -> Promise {
    outpost().keep_cold_reads()
}

/// A reply to a page's message, as the JSON text the bootstrap parses.
fn to_js(value: &Value) -> Result<JsValue> {
    Ok(value.to_json().into())
}

impl Outpost {
    fn new(config_json: &str, origin: String, version: String) -> Result<Outpost, Error> {
        #[cfg(feature = "panic-messages")]
        console_error_panic_hook::set_once();
        let config = Config::from_json(config_json).map_err(|e| Error::new("Error", e.text()))?;
        let inner = Inner {
            config: Rc::new(config),
            origin,
            version,
            started_at: global::now_ms(),
            parts: RefCell::new(None),
            inflight: Rc::default(),
            background: Background::default(),
            cold_answers: RefCell::default(),
            opening: RefCell::new(None),
        };
        Ok(Outpost { inner: Rc::new(inner) })
    }

    /// Starts opening IndexedDB, then replays what an earlier worker left
    /// (starting is one of the replay triggers, for browsers without
    /// Background Sync). Resolves at once: requests that need storage wait
    /// for it, and a read's network request need not (a cold start opens
    /// the database while the network answers).
    pub fn start(&self) -> Promise {
        let inner = Rc::clone(&self.inner);
        let opening = promise(async move {
            let db = db::open().whole().await.inspect_err(|e| {
                // Logged once; every request that needs storage gets the same error.
                global::log_error("the worker could not open IndexedDB", e);
            })?;
            let db = Rc::new(db);
            global::mark("opened");
            let cold_reads = crate::core::route::cold_reads(&inner.config);
            let identity = Rc::new(Identity::load(Rc::clone(&db), cold_reads).whole().await?);
            global::mark("identity");
            let config = Rc::clone(&inner.config);
            let clock = Clock::new();
            let outbox = Outbox::new(
                Rc::clone(&config),
                inner.origin.clone(),
                Rc::clone(&db),
                Rc::clone(&identity),
                Rc::clone(&clock),
                Rc::clone(&inner.inflight),
            );
            let reads = Rc::new(Reads::new(
                Rc::clone(&config),
                Rc::clone(&db),
                Rc::clone(&identity),
                Rc::clone(&clock),
                Rc::clone(&inner.background),
            ));
            let waiting = Rc::clone(&outbox);
            let in_flight = Rc::clone(&inner.inflight);
            let uploads = Uploads::new(
                config,
                db,
                Rc::clone(&identity),
                inner.origin.clone(),
                Rc::clone(&clock),
                // An upload the origin confirmed: the page reads its lists
                // again (`uploaded`), and must not share a read sent before.
                Box::new(move || {
                    in_flight.borrow_mut().clear();
                    waiting.kick(Trigger::Hint)
                }),
            );
            // The one timer runs whichever part is due.
            let (o, u) = (Rc::downgrade(&outbox), Rc::downgrade(&uploads));
            clock.on_run(Box::new(move |part, trigger| match part {
                Part::Outbox => {
                    if let Some(o) = o.upgrade() {
                        o.kick(trigger);
                    }
                }
                Part::Uploads => {
                    if let Some(u) = u.upgrade() {
                        u.kick(trigger);
                    }
                }
            }));
            // A write refused by the quota frees what may go: read copies,
            // and copies of files already safe on the server.
            let (r, u) = (Rc::clone(&reads), Rc::clone(&uploads));
            outbox.on_full(Box::new(move || {
                let (r, u) = (Rc::clone(&r), Rc::clone(&u));
                promise(async move {
                    r.clear_users().whole().await?;
                    u.forget_copies().whole().await?;
                    Ok(JsValue::UNDEFINED)
                })
            }));
            // Any change of user (login, logout, a 401, another worker's
            // login seen in IndexedDB) lets the new user's writes and uploads go.
            let (o, u) = (Rc::clone(&outbox), Rc::clone(&uploads));
            identity.on_change(Box::new(move || {
                o.user_changed();
                u.kick(Trigger::Hint);
            }));
            global::mark("storage");
            *inner.parts.borrow_mut() = Some(Rc::new(Parts {
                outbox: Rc::clone(&outbox),
                reads: Rc::clone(&reads),
                uploads: Rc::clone(&uploads),
                identity,
                clock,
            }));
            let me = Rc::clone(&inner);
            let shell = Rc::clone(&reads);
            global::spawn(async move {
                let first = take_all(&me.cold_answers);
                if first.length() > 0 {
                    let _ = global::race(Promise::all_settled(&first), START_YIELD_MS).whole().await;
                }
                // Asking `me` with a cookie whose logout is still owed would
                // bring the previous user back.
                if !me.settle_logout().whole().await.unwrap_or(false) {
                    // No read before the wasm knows, while the debt stands.
                    if let Err(e) = global::cold_reads(None).whole().await {
                        global::log_error("could not stop cold reads", &e);
                    }
                    outbox.kick(Trigger::Hint);
                    uploads.kick(Trigger::Hint);
                    return;
                }
                me.keep_cold_reads().whole().await;
                if let Err(e) = me.refresh_user().whole().await {
                    global::log_error("could not learn the current user", &e);
                }
                // Starting is a hint: a worker starts when a page opens or
                // navigates, or when the browser has an event for it.
                outbox.kick(Trigger::Hint);
                uploads.kick(Trigger::Hint);
                shell.warm_shell(&me.origin).whole().await;
                // A known user whose device holds none of the warm-up (an
                // update cleared it, a login another worker saw): warm up now.
                let first = me.config.warm_up.first().map(|p| cat!(me.origin, p));
                if let (Some(first), true) =
                    (first, me.parts().whole().await.is_ok_and(|p| p.identity.current().is_some()))
                {
                    if !shell.has_copy(&first).whole().await {
                        me.warm_up();
                    }
                }
            });
            Ok(JsValue::UNDEFINED)
        });
        *self.inner.opening.borrow_mut() = Some(opening);
        Promise::resolve(&JsValue::UNDEFINED)
    }

    /// Whether the fetch event should be answered by `handle`. Must stay
    /// synchronous: `respondWith` can only be called during dispatch.
    ///
    /// `navigate`: whether the request's `mode` is `"navigate"` (the
    /// bootstrap compares, so no third string crosses into the wasm).
    pub fn claims(&self, method: &str, url: &str, navigate: bool) -> bool {
        handled(self.route(method, url, navigate))
    }

    /// Answers a request that `claims` accepted.
    ///
    /// `started`: the network request of a cold read the bootstrap sent
    /// before the wasm was ready (`core::route::cold_reads`); the worker
    /// takes its answer as its own (stores the copy, learns the user) instead
    /// of sending the read again.
    pub fn handle(&self, request: Request, navigate: bool, started: Option<Promise>) -> Promise {
        let inner = Rc::clone(&self.inner);
        let route = self.route(&request.method(), &request.url(), navigate);
        let cold = self.inner.parts.borrow().is_none();
        let answer = promise(async move {
            // A logout made offline is still owed: it goes first, and until
            // it has, the device answers as logged out (the HttpOnly cookie
            // would otherwise make the next request the previous user's).
            let needs_session = !matches!(route, Route::Version | Route::Passthrough | Route::Shell(_))
                && !matches!(route, Route::Auth(AuthRoute::Login | AuthRoute::Logout));
            // A cold read the bootstrap already sent (it had the table, which
            // exists only while no logout is owed) does not wait for storage;
            // if a logout turns out to be owed all the same, its answer is
            // dropped. Everything else waits to know, so nothing goes out with
            // the cookie of a user who logged out.
            let cold_read = matches!(route, Route::Read(_)) && started.is_some();
            if needs_session && !cold_read && !inner.settle_logout().whole().await.unwrap_or(true) {
                return logged_out();
            }
            match route {
                Route::Version => response::json(200, &version_body(&inner)).map(Into::into),
                // Without storage (IndexedDB would not open) nothing can be
                // kept: writes and reads go to the network as they are, so
                // the app works as it would with no worker.
                Route::Write(_) => {
                    // A read made after this write must not get the answer
                    // to one sent before it: reads in flight are not shared
                    // any more (they still answer their own callers).
                    inner.inflight.borrow_mut().clear();
                    match inner.parts().whole().await {
                        Ok(parts) => parts.outbox.send(request).whole().await.map(Into::into),
                        Err(_) => global::fetch(&request).whole().await.map(Into::into),
                    }
                }
                Route::Read(_) | Route::Shell(_) => {
                    let how = inner.read_route(&request.url(), matches!(route, Route::Shell(_)));
                    // The network first, while storage may still be opening.
                    let started = match started {
                        Some(sent) if cold_read || matches!(route, Route::Shell(_)) => sent,
                        _ => inner.shared_fetch(&request)?,
                    };
                    match inner.parts().whole().await {
                        Ok(parts) if cold_read && parts.identity.logout_pending() => {
                            let me = Rc::clone(&inner);
                            global::spawn(async move {
                                let _ = me.settle_logout().whole().await;
                            });
                            logged_out()
                        }
                        Ok(parts) => parts.reads.handle(request, how, started).whole().await.map(Into::into),
                        Err(_) => Ok(crate::web::global::wait(started).await?),
                    }
                }
                Route::Auth(kind) => inner.auth(request, kind).whole().await.map(Into::into),
                Route::Upload => inner.parts().whole().await?.uploads.accept(request).whole().await.map(Into::into),
                Route::Content => inner.parts().whole().await?.uploads.content(request).whole().await.map(Into::into),
                // Not claimed (see `handled`); if the bootstrap asks anyway,
                // the request goes to the network untouched.
                Route::Passthrough => global::fetch(&request).whole().await.map(Into::into),
            }
        });
        if cold {
            // A few: storage that never opens never takes them back.
            let mut waiting = self.inner.cold_answers.borrow_mut();
            if waiting.len() < 8 {
                waiting.push(answer.clone());
            }
        }
        answer
    }

    /// The Background Sync event for the outbox tag. Rejects while entries
    /// are left (so the browser fires it again later), except on its last
    /// chance, when a new registration takes over.
    pub fn on_sync(&self, last_chance: bool) -> Promise {
        let inner = Rc::clone(&self.inner);
        promise(async move {
            let parts = inner.parts().whole().await?;
            // The browser fires it when the network is back, and spaces its
            // own retries: like the page asking, it sends what got no answer
            // at once. Rejecting while writes are left keeps the
            // registration, so the browser wakes the worker again even with
            // no page open.
            parts.outbox.replay(Trigger::Explicit).whole().await?;
            parts.uploads.replay(Trigger::Explicit).whole().await?;
            // Writes or uploads of the current user still pending.
            let left = parts.clock.next().is_some();
            match sync_end(left, last_chance) {
                SyncEnd::Done => Ok(JsValue::UNDEFINED),
                SyncEnd::AskAgain => Err(Error::worker("writes are still pending")),
                SyncEnd::Reregister => {
                    global::register_sync(outbox::SYNC_TAG).whole().await;
                    Ok(JsValue::UNDEFINED)
                }
            }
        })
    }

    /// A page's request through `outpost.js` (`core::protocol::Request`):
    /// `{type: "outpost:<name>", id?}`, its two fields read by the bootstrap.
    pub fn message(&self, kind: String, id: Option<String>) -> Promise {
        let inner = Rc::clone(&self.inner);
        promise(async move {
            let request = match protocol::Request::parse(&kind, id) {
                Ok(r) => r,
                Err(e) => return to_js(&obj! { "error": e.text() }),
            };
            let parts = match inner.parts().whole().await {
                Ok(parts) => parts,
                // Said, not thrown: the page can show why nothing is kept.
                Err(e) if request == protocol::Request::Status => {
                    let mut status = protocol::Status::without_storage(&e.message, inner.started_at);
                    status.worker_heap_bytes = crate::heap::in_use() as u64;
                    return to_js(&status.to_json());
                }
                Err(e) => return Err(e),
            };
            let (outbox, uploads) = (Rc::clone(&parts.outbox), Rc::clone(&parts.uploads));
            let reply = match request {
                protocol::Request::Version => obj! { "version": &inner.version },
                protocol::Request::Status => inner.status(&parts).whole().await?.to_json(),
                protocol::Request::Flush => {
                    uploads.kick(Trigger::Explicit);
                    outbox.replay(Trigger::Explicit).whole().await?;
                    inner.status(&parts).whole().await?.to_json()
                }
                // The page went online or became visible: a hint.
                protocol::Request::Online => {
                    parts.clock.hint(None);
                    obj! { "nextWakeAt": parts.clock.told() }
                }
                // A page's timer, at the worker's next due time: the browser
                // may have stopped this worker (and its timer) meanwhile.
                // The reply waits for both passes, so the worker is kept
                // alive until they end.
                protocol::Request::Wake => {
                    outbox.replay(Trigger::Scheduled).whole().await?;
                    uploads.replay(Trigger::Scheduled).whole().await?;
                    obj! { "nextWakeAt": parts.clock.told() }
                }
                protocol::Request::Retry(id) => match uploads.retry(&id).whole().await? {
                    Some(ok) => obj! { "ok": ok },
                    None => obj! { "ok": outbox.retry(&id).whole().await? },
                },
                protocol::Request::Discard(id) => match uploads.discard(&id).whole().await? {
                    Some(ok) => obj! { "ok": ok },
                    None => obj! { "ok": outbox.discard(&id).whole().await? },
                },
            };
            to_js(&reply)
        })
    }

    /// Settles once the background work started so far has (the bootstrap
    /// waits for it in the event that started it, so a browser does not stop
    /// the worker in the middle of a warm-up).
    pub fn settled(&self) -> Promise {
        let work = take_all(&self.inner.background);
        if work.length() == 0 {
            return Promise::resolve(&JsValue::UNDEFINED);
        }
        Promise::all_settled(&work)
    }

    /// The browser's static routes for this config, as JSON text
    /// (`core::route::static_routes`): the bootstrap gives them to
    /// `InstallEvent.addRoutes` where the browser has it.
    pub fn static_routes(&self) -> String {
        crate::core::route::static_routes(&self.inner.config)
    }

    /// Writes the cold-read table again if no logout is owed (the
    /// bootstrap deletes it when this worker activates).
    pub fn keep_cold_reads(&self) -> Promise {
        let inner = Rc::clone(&self.inner);
        promise(async move {
            inner.keep_cold_reads().whole().await;
            Ok(JsValue::UNDEFINED)
        })
    }

    fn route(&self, method: &str, url: &str, navigate: bool) -> Route {
        route_request(&self.inner.config, &self.inner.origin, method, url, navigate)
    }
}

/// The promises in `list`, taken out, as one JS array.
fn take_all(list: &RefCell<Vec<Promise>>) -> js_sys::Array {
    let all = js_sys::Array::new();
    let mut list = list.borrow_mut();
    for p in list.iter() {
        all.push(p);
    }
    list.clear();
    all
}

/// The device's own answer while a logout is owed to the origin.
fn logged_out() -> Result<JsValue> {
    let body = r#"{"error":{"code":"unauthenticated","message":"Logged out on this device; the logout reaches the origin when the network is back. Log in again to go on."}}"#;
    response::json(401, body).map(Into::into)
}

/// Every route but a passthrough is answered by the worker.
fn handled(route: Route) -> bool {
    route != Route::Passthrough
}

fn version_body(inner: &Inner) -> String {
    obj! { "version": &inner.version, "package": env!("CARGO_PKG_VERSION") }.to_json()
}
