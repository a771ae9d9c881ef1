//! Carries out cached reads: network first with a timeout, the stored copy
//! when the network fails, stale-while-revalidate where configured, and
//! the read cache's bounds. The rules are `core::reads`'.

use super::error::Result;
use super::global::Whole;
use std::rc::Rc;

use crate::web::db::Db;
use js_sys::Promise;
use wasm_bindgen::JsValue;
use web_sys::{Request, Response};

use super::clock::Clock;
use super::events::Events;
use super::global::{self, Raced};
use super::identity::Identity;
use super::{db, response};
use crate::core::clock::Heard;
use crate::core::config::Config;
use crate::core::identity::{self, Learned, Source};
use crate::core::json::obj;
use crate::core::protocol::Event;
use crate::core::reads::{self, CachedRead, Keep, Partition, ReadMeta, Touches};
use crate::core::text::{cat, num};

pub struct Reads {
    config: Rc<Config>,
    db: Rc<Db>,
    identity: Rc<Identity>,
    events: Events,
    clock: Rc<Clock>,
    /// The copies' uses recorded lately (`core::reads::Touches`).
    touches: std::cell::RefCell<Touches>,
    /// Where the writes that outlive an answer go (a copy, a refresh), so
    /// the fetch event that started them waits for them: a worker the
    /// browser stops once its events have settled would lose them.
    background: super::Background,
}

/// How one read is handled.
#[derive(Debug, Clone, Copy)]
pub struct ReadRoute {
    /// App-shell file (shared) rather than a user's API data.
    pub shell: bool,
    /// Answer from the copy at once, refresh behind.
    pub swr: bool,
    /// Its answers name the user (`auth.userIn`).
    pub names_user: bool,
}

/// Whose copy an answer is, fixed when its request started: an answer that
/// arrives after the user changed is not filed under the new user.
#[derive(Clone)]
struct Owner {
    key: String,
    generation: u64,
    /// When the read was sent (`CachedRead::stored_at`).
    sent_at: u64,
}

impl Reads {
    pub fn new(
        config: Rc<Config>,
        db: Rc<Db>,
        identity: Rc<Identity>,
        clock: Rc<Clock>,
        background: super::Background,
    ) -> Reads {
        Reads { config, db, identity, events: Events::new(), clock, touches: Default::default(), background }
    }

    /// Runs `work` after the answer, inside the event that asked for it.
    /// (Boxed by the caller: one wrapper for every kind of work.)
    fn behind(&self, work: global::Work<()>) {
        let work = global::boxed_promise(global::work(async move {
            work.await;
            Ok(JsValue::UNDEFINED)
        }));
        self.background.borrow_mut().push(work);
    }

    fn key(&self, route: ReadRoute, url: &str) -> String {
        let user = self.identity.current();
        let partition = if route.shell { Partition::Shared } else { Partition::User(user.as_deref()) };
        reads::cache_key(partition, url)
    }

    fn owner(&self, route: ReadRoute, url: &str) -> Owner {
        Owner { key: self.key(route, url), generation: self.identity.generation(), sent_at: global::now_ms() }
    }

    /// Answers a read whose network request is already `started`.
    pub async fn handle(self: &Rc<Self>, request: Request, route: ReadRoute, started: Promise) -> Result<Response> {
        let url = request.url();
        let owner = self.owner(route, &url);
        // A fetch the copy answers before, if there is one: the refresh of a
        // stale-while-revalidate read, or a network-first read's fetch that
        // outlived `networkTimeoutMs`.
        let (mut answer, mut waiting) = (None, None);
        if route.swr {
            waiting = Some(started);
        } else {
            match global::race(started, self.config.network_timeout_ms).whole().await {
                Raced::Answer(r) => answer = Some(r),
                Raced::Failed => {}
                Raced::Late(fetch) => waiting = Some(fetch),
            }
            global::mark("network");
        }
        if let Some(fetch) = waiting {
            if let Some(copy) = self.stored(&owner.key).whole().await {
                // The copy answers now; the fetch still refreshes it (and
                // pages hear of a stale-while-revalidate read that changed).
                let old_body = route.swr.then(|| copy.body.clone());
                self.behind(global::work(Rc::clone(self).refresh(fetch, route, url, owner, old_body)));
                return self.answer_from_copy(&copy);
            }
            // Nothing to fall back on: the network is still the best bet.
            answer = global::answer_of(fetch).whole().await;
        }
        let mut fresh = None;
        if let Some(r) = answer {
            let status = r.status();
            let (taken, _) = self.take(r, route, &url, &owner).whole().await?;
            if !reads::serve_stored(Some(status)) {
                return Ok(taken);
            }
            // A 5xx: the copy, if there is one, else the answer as it came.
            fresh = Some(taken);
        }
        match (self.stored(&owner.key).whole().await, fresh) {
            (Some(copy), _) => self.answer_from_copy(&copy),
            (None, Some(fresh)) => Ok(fresh),
            (None, None) => response::json(
                504,
                &obj! { "error": obj! {
                    "code": "offline",
                    "message": cat!(
                        url,
                        " could not be reached and no copy of it is stored on this device; \
                         try again once the network is back"
                    ),
                }}
                .to_json(),
            ),
        }
    }

    /// Takes the answer of a fetch the copy already answered for; `old_body`
    /// (a stale-while-revalidate read's copy) makes a changed answer an
    /// `updated` event.
    async fn refresh(
        self: Rc<Self>,
        fetch: Promise,
        route: ReadRoute,
        url: String,
        owner: Owner,
        old_body: Option<Vec<u8>>,
    ) {
        let Some(r) = global::answer_of(fetch).whole().await else { return };
        if let Ok((fresh, body)) = self.take(r, route, &url, &owner).whole().await {
            if old_body.is_some_and(|old| fresh.status() < 300 && body != old) {
                self.events.emit(Event::Updated, obj! { "url": &url });
            }
        }
    }

    /// Learns the user an answer names, stores or forgets its copy as the
    /// core says, and gives the answer back for the page as it came (not
    /// built again from its parts), with its body. The body is read, from a
    /// clone, before the page has the answer, so the copy's write is queued
    /// before anything the page does next (reads it back offline, closes the
    /// tab, has the worker stopped). Read in the background, the copy lagged
    /// behind: an offline read right after got the copy before last.
    async fn take(
        self: &Rc<Self>,
        r: Response,
        route: ReadRoute,
        url: &str,
        owner: &Owner,
    ) -> Result<(Response, Vec<u8>)> {
        let status = r.status();
        if Heard::Status(status).is_hint() {
            // The origin answers: writes and uploads waiting for the network may go.
            self.clock.hint(None);
        }
        let body = global::body_bytes(&global::copy(&r)?).whole().await?;
        // An answer that names its user is filed under that user; any other
        // under the user its request started for, unless the user changed
        // meanwhile (then it is not kept at all).
        let mut key = Some(owner.key.clone());
        // An answer to a read sent as bob that arrives after alice logged in
        // is bob's (filed under him), but does not make him current again
        // (`Identity::apply` with the generation the read was sent at).
        let named = identity::from_header(global::header(&r.headers(), identity::USER_HEADER).as_deref());
        if let (Learned::User(u), false) = (&named, route.shell) {
            // The origin names whose answer this is: filed under them, and
            // they are the current user from now on.
            self.identity.apply(&named, owner.generation).whole().await?;
            key = Some(reads::cache_key(Partition::User(Some(u)), url));
        } else if route.names_user {
            let learned = identity::learn(Source::Data, Some(status), &body);
            if learned != Learned::Nothing {
                self.identity.apply(&learned, owner.generation).whole().await?;
            }
            if let Learned::User(u) = &learned {
                key = Some(reads::cache_key(Partition::User(Some(u)), url));
            }
        }
        // The shell is everyone's: a change of user does not matter to it.
        if !route.shell && self.identity.generation() != owner.generation && key.as_deref() == Some(owner.key.as_str())
        {
            key = None;
        }
        let headers = global::headers_of(&r.headers());
        let cache_control = headers.iter().find(|(k, _)| k == "cache-control").map(|(_, v)| v.as_str());
        match (reads::keep(status, cache_control), key) {
            (Keep::Store, Some(key)) => {
                let mut kept: Vec<(String, String)> = Vec::new();
                for (k, v) in &headers {
                    if reads::keep_header(k) {
                        kept.push((k.clone(), v.clone()));
                    }
                }
                let copy = CachedRead { status, headers: kept, body: body.clone(), stored_at: owner.sent_at };
                // The page does not wait for the copy to be written; the
                // event does.
                let me = Rc::clone(self);
                self.behind(global::work(async move {
                    if let Err(e) = me.store(&key, &copy, global::now_ms()).whole().await {
                        // The answer reached the page; only the copy is lost.
                        global::log_error("could not store a read", &e);
                    }
                }));
            }
            (Keep::Forget, _) => {
                db::delete_keys(&self.db, &[db::READS, db::READS_META], std::slice::from_ref(&owner.key))
                    .whole()
                    .await?
            }
            _ => {}
        }
        Ok((r, body))
    }

    async fn store(&self, key: &str, copy: &CachedRead, now: u64) -> Result<()> {
        let bytes = reads::encode(copy);
        let meta = ReadMeta { size: bytes.len() as u64 + key.len() as u64, last_used: now };
        let rows = [(db::READS, key, db::bytes(&bytes)), (db::READS_META, key, db::bytes(&reads::encode(&meta)))];
        let replaces = |existing: Option<&[u8]>| reads::replaces(copy.stored_at, existing);
        if db::put_all_unless(&self.db, Some((db::READS, key, &replaces)), &rows).whole().await? {
            self.evict().whole().await?;
        }
        Ok(())
    }

    /// Drops least recently used copies past the configured bounds.
    async fn evict(&self) -> Result<()> {
        let mut index: Vec<(String, ReadMeta)> = Vec::new();
        for (k, v) in &db::records(&self.db, db::READS_META).whole().await? {
            if let (Some(k), Ok(meta)) = (k.as_string(), reads::decode(v)) {
                index.push((k, meta));
            }
        }
        let plan = reads::plan_eviction(&index, self.config.read_cache_max_entries, self.config.read_cache_max_bytes);
        db::delete_keys(&self.db, &[db::READS, db::READS_META], &plan.evict).whole().await
    }

    /// Whether this user's device holds a copy of the read at `url`.
    pub async fn has_copy(&self, url: &str) -> bool {
        let route = ReadRoute { shell: false, swr: false, names_user: false };
        db::get_bytes(&self.db, db::READS, &self.key(route, url)).whole().await.ok().flatten().is_some()
    }

    /// The stored copy under `key`, if it is readable; reading it counts as
    /// a use (recorded at most once a minute, `core::reads::Touches`).
    async fn stored(self: &Rc<Self>, key: &str) -> Option<CachedRead> {
        let bytes = db::get_bytes(&self.db, db::READS, key).whole().await.ok()??;
        let copy: CachedRead = reads::decode(&bytes).ok()?;
        let now = global::now_ms();
        if self.touches.borrow_mut().due(key, now) {
            let meta = ReadMeta { size: bytes.len() as u64 + key.len() as u64, last_used: now };
            let (me, key) = (Rc::clone(self), key.to_string());
            global::spawn(async move {
                let _ = db::put_all(&me.db, &[(db::READS_META, &key, db::bytes(&reads::encode(&meta)))]).whole().await;
            });
        }
        Some(copy)
    }

    fn answer_from_copy(&self, copy: &CachedRead) -> Result<Response> {
        let mut headers = copy.headers.clone();
        headers.push(("Outpost-Cache".into(), "stale".into()));
        headers.push(("Age".into(), num(reads::age_secs(copy.stored_at, global::now_ms()))));
        response::build(copy.status, &headers, &copy.body)
    }

    /// Stores the literal `shell` paths not stored yet, so the app opens
    /// offline even if no page has loaded them through the worker (the
    /// first visit loads them before the worker controls it).
    pub async fn warm_shell(self: &Rc<Self>, origin: &str) {
        let route = ReadRoute { shell: true, swr: false, names_user: false };
        for pattern in self.config.shell.iter().filter(|p| crate::core::text::find_byte(p.as_str(), b'*').is_none()) {
            let url = cat!(origin, pattern.as_str());
            if db::get(&self.db, db::READS, &self.key(route, &url)).whole().await.ok().flatten().is_some() {
                continue;
            }
            let Ok(request) = global::get(&url, None) else { continue };
            let owner = self.owner(route, &url);
            if let Ok(r) = global::fetch(&request).whole().await {
                let _ = self.take(r, route, &url, &owner).whole().await;
            }
        }
    }

    /// Forgets every user's cached reads (on logout); the shared app shell
    /// stays.
    pub async fn clear_users(&self) -> Result<()> {
        let shared = reads::partition_prefix(Partition::Shared);
        let mut keys = Vec::new();
        for (k, _) in &db::records(&self.db, db::READS_META).whole().await? {
            if let Some(k) = k.as_string().filter(|k| !k.starts_with(&shared)) {
                keys.push(k);
            }
        }
        db::delete_keys(&self.db, &[db::READS, db::READS_META], &keys).whole().await
    }
}
