//! Offline reads and users in Chromium against the real origin: cached
//! metadata served when the network fails, per-user partitions of the
//! cache and of the outbox.

mod harness;

use harness::scenes::Stage;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use harness::{wait_until, PATIENCE};
use outpost::AppState;
use serde_json::{json, Value};

/// A page that does not register the worker by itself (the demo at `/`
/// does). For the cold-start test it is also the "app shell".
const PAGE: &str = "/style.css";

/// Faults the tests switch on and off in the origin.
#[derive(Default)]
struct Faults {
    /// Delay of `GET /api/projects`, in ms.
    slow_projects_ms: AtomicU64,
    /// Delay of the answer to `GET /api/projects` once it is made (the
    /// origin's state read, the answer held), in ms.
    late_projects_ms: AtomicU64,
    /// Delay of `POST /api/projects` before the origin stores it, in ms.
    hold_project_writes_ms: AtomicU64,
    /// `GET /api/projects` requests the origin answered.
    projects: AtomicUsize,
    /// `GET /api/projects` answered with `Cache-Control: no-store`.
    no_store: AtomicBool,
    /// Batches the origin received (whatever it answered).
    batches: AtomicUsize,
    /// `GET /api/sync/init` requests the origin received, and their delay.
    inits: AtomicUsize,
    slow_init_ms: AtomicU64,
}

fn origin_with(state: AppState, faults: &Arc<Faults>) -> axum::Router {
    use axum::extract::Request;
    use axum::http::{header, HeaderValue, Method};
    use axum::middleware::Next;
    let faults = Arc::clone(faults);
    outpost::app(state).layer(axum::middleware::from_fn(move |req: Request, next: Next| {
        let f = Arc::clone(&faults);
        async move {
            let projects = req.method() == Method::GET && req.uri().path() == "/api/projects";
            if req.uri().path() == "/api/chat/messages/batch" {
                f.batches.fetch_add(1, Ordering::SeqCst);
            }
            if req.uri().path() == "/api/sync/init" {
                f.inits.fetch_add(1, Ordering::SeqCst);
                let delay = f.slow_init_ms.load(Ordering::SeqCst);
                if delay > 0 {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
            }
            let hold = f.hold_project_writes_ms.load(Ordering::SeqCst);
            if hold > 0 && req.method() == Method::POST && req.uri().path() == "/api/projects" {
                tokio::time::sleep(Duration::from_millis(hold)).await;
            }
            let delay = f.slow_projects_ms.load(Ordering::SeqCst);
            if projects && delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            let late = f.late_projects_ms.load(Ordering::SeqCst);
            let mut res = next.run(req).await;
            if projects {
                f.projects.fetch_add(1, Ordering::SeqCst);
                if late > 0 {
                    tokio::time::sleep(Duration::from_millis(late)).await;
                }
            }
            if projects && f.no_store.load(Ordering::SeqCst) {
                res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            }
            res
        }
    }))
}

struct Scene {
    stage: Stage,
    faults: Arc<Faults>,
}
on_stage!(Scene);

impl Scene {
    async fn new(config: &str) -> Scene {
        let faults = Arc::new(Faults::default());
        let f = Arc::clone(&faults);
        let stage = Stage::build().page(PAGE).app(move |state| origin_with(state, &f)).open().await;
        stage.tab.register_outpost_with(config).await;
        Scene { stage, faults }
    }

    fn up(&mut self) {
        self.stage.origin.restart_app(origin_with(self.stage.state.clone(), &self.faults));
    }

    async fn get(&self, path: &str) -> Value {
        self.tab.fetch(path).await.unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.tab.post(path, &body).await.unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    async fn login(&self, user: &str) -> Value {
        let r = self.post("/api/auth/login", json!({ "user": user })).await;
        assert_eq!(r["status"], 200, "{r}");
        r["body"]["user"].clone()
    }

    async fn project(&self, name: &str) {
        let r = self.post("/api/projects", json!({ "name": name })).await;
        assert_eq!(r["status"], 201, "{r}");
    }
}

/// Project names, sorted (the origin lists the newest first).
fn names(projects: &Value) -> Vec<&str> {
    let mut names: Vec<&str> =
        projects.as_array().expect("a list").iter().map(|p| p["name"].as_str().unwrap()).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_fresh_online_stale_offline_and_504_when_never_seen() {
    let mut s = Scene::new("{}").await;
    let alice = s.login("alice").await;
    s.project("atlas").await;

    let online = s.get("/api/sync/init").await;
    assert_eq!(online["status"], 200, "{online}");
    assert_eq!(online["headers"].get("outpost-cache"), None, "fresh from the origin: {online}");
    assert_eq!(online["body"]["user"], alice);
    assert_eq!(names(&online["body"]["projects"]), ["atlas"]);
    let sessions = s.get("/api/chat/sessions").await;
    assert_eq!(sessions["status"], 200);

    s.origin.stop();
    let offline = s.get("/api/sync/init").await;
    assert_eq!(offline["status"], 200, "{offline}");
    assert_eq!(offline["headers"]["outpost-cache"], "stale");
    assert!(offline["headers"]["age"].as_str().and_then(|a| a.parse::<u64>().ok()).is_some(), "{offline}");
    assert_eq!(offline["body"], online["body"], "the stored copy, byte for byte");
    assert_eq!(s.get("/api/chat/sessions").await["headers"]["outpost-cache"], "stale");

    let never = s.get("/api/assets").await;
    assert_eq!(never["status"], 504, "{never}");
    assert_eq!(never["body"]["error"]["code"], "offline");
    assert!(never["body"]["error"]["message"].as_str().unwrap().contains("/api/assets"), "{never}");
    // Outside the read routes nothing is answered for the origin.
    assert!(s.tab.fetch("/api/health").await.is_err(), "not a read route: the network error reaches the page");
    s.chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_origin_gets_the_stored_copy_at_the_timeout_and_refreshes_it_later() {
    // No warm-up: the login's own read of the projects, run late on a loaded
    // machine, came after the second project was made and put it in the copy
    // before the slow read (a fresh-clone run, 6 December).
    let s = Scene::new(r#"{"networkTimeoutMs": 400, "warmUp": []}"#).await;
    s.login("alice").await;
    s.project("one").await;
    assert_eq!(names(&s.get("/api/projects").await["body"]), ["one"]);

    s.project("two").await;
    s.faults.slow_projects_ms.store(3_000, Ordering::SeqCst);
    let slow = s.get("/api/projects").await;
    assert_eq!(slow["headers"]["outpost-cache"], "stale", "{slow}");
    assert_eq!(names(&slow["body"]), ["one"], "the copy answered, not the slow origin");

    // The late answer still lands in the cache: waited for in the worker's
    // own store (the copy's bytes hold the project's name).
    s.faults.slow_projects_ms.store(0, Ordering::SeqCst);
    let mut s = s;
    harness::wait_for_stored_read(&s.tab, "\"two\"").await;
    s.origin.stop();
    let later = s.get("/api/projects").await;
    assert_eq!(later["headers"]["outpost-cache"], "stale");
    assert_eq!(names(&later["body"]), ["one", "two"], "{later}");
    s.chromium.close().await;
}

/// Answers arrive out of order: one to a read sent before a write can
/// reach the worker after the answer to a read sent after it (a login's
/// warm-up does this to the page's own first reads). The copy kept is the
/// later read's, never the one before the write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_arrives_late_does_not_bring_back_an_older_copy() {
    // No warm-up: its own reads of the projects would come between.
    let mut s = Scene::new(r#"{"warmUp": []}"#).await;
    s.login("alice").await;
    s.project("one").await;
    // The first read is answered by the origin at once (["one"]), and the
    // answer held on its way back.
    s.faults.late_projects_ms.store(2_000, Ordering::SeqCst);
    s.tab.eval("window.early = fetch('/api/projects').then((r) => r.json()); true").await;
    wait_until("the early read answered by the origin", PATIENCE, || async {
        (s.faults.projects.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    s.faults.late_projects_ms.store(0, Ordering::SeqCst);
    s.project("two").await;
    let after = s.get("/api/projects").await;
    assert_eq!(names(&after["body"]), ["one", "two"], "a read after the write shared the one before it: {after}");
    let early = s.tab.eval("window.early").await;
    assert_eq!(names(&early), ["one"], "the page gets the answer to what it asked, as it came");
    // Offline, for a second after the late answer: the copy is the newer.
    s.origin.stop();
    let until = std::time::Instant::now() + Duration::from_secs(1);
    while std::time::Instant::now() < until {
        let offline = s.get("/api/projects").await;
        assert_eq!(offline["headers"]["outpost-cache"], "stale", "{offline}");
        assert_eq!(names(&offline["body"]), ["one", "two"], "the copy went back to before the write: {offline}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.chromium.close().await;
}

/// A page reads its list again when the worker says a queued write was
/// delivered (`replayed`), as the Next.js example does. A read of the same
/// list sent before the write reached the origin, and still in flight,
/// must not answer it: that list lacks the write the event announced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_made_after_a_replay_never_gets_the_answer_to_one_sent_before() {
    // No warm-up (its reads would come between); the held read is waited
    // for rather than answered from a copy.
    let mut s = Scene::new(r#"{"warmUp": [], "networkTimeoutMs": 20000}"#).await;
    s.login("alice").await;
    s.project("one").await;
    s.origin.stop();
    let queued = s.post("/api/projects", json!({ "name": "two" })).await;
    assert_eq!(queued["status"], 202, "{queued}");
    s.tab
        .eval(
            "window.after = null; new BroadcastChannel('outpost').onmessage = (e) => { \
             if (e.data.type === 'replayed' && !window.after) \
             window.after = fetch('/api/projects').then((r) => r.json()); }; true",
        )
        .await;
    // Back: the replay is held at the origin a moment before it is stored,
    // and a read sent meanwhile is answered from the state before it and
    // held on its way back until well after the replay's answer.
    s.faults.hold_project_writes_ms.store(1_500, Ordering::SeqCst);
    s.faults.late_projects_ms.store(6_000, Ordering::SeqCst);
    s.up();
    s.tab.eval("window.early = fetch('/api/projects').then((r) => r.json()); true").await;
    wait_until("the early read answered by the origin", PATIENCE, || async {
        (s.faults.projects.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    s.faults.late_projects_ms.store(0, Ordering::SeqCst);
    let after = wait_until("a read made on `replayed`", PATIENCE, || async {
        let v = s.tab.eval("window.after").await;
        v.is_array().then_some(v)
    })
    .await;
    let early = s.tab.eval("window.early").await;
    assert_eq!(names(&early), ["one"], "the early read was sent before the write was stored");
    assert_eq!(names(&after), ["one", "two"], "the read made on `replayed` shared the one before it: {after}");
    s.chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_store_answer_is_never_served_from_the_cache() {
    let mut s = Scene::new("{}").await;
    s.login("alice").await;
    s.project("p").await;
    assert_eq!(s.get("/api/projects").await["status"], 200);
    // The origin now forbids keeping it: the older copy goes too.
    s.faults.no_store.store(true, Ordering::SeqCst);
    let r = s.get("/api/projects").await;
    assert_eq!(r["headers"]["cache-control"], "no-store");
    s.origin.stop();
    let offline = s.get("/api/projects").await;
    assert_eq!(offline["status"], 504, "{offline}");
    s.chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate_answers_at_once_and_tells_pages_of_the_update() {
    // No login warm-up: its copy of the list would predate the first project.
    let s = Scene::new(r#"{"staleWhileRevalidate": ["/api/projects"], "warmUp": []}"#).await;
    s.login("alice").await;
    s.project("first").await;
    assert_eq!(names(&s.get("/api/projects").await["body"]), ["first"]);
    s.tab
        .eval(
            "window.updates = []; new BroadcastChannel('outpost').onmessage = (e) => { \
             if (e.data.type === 'updated') window.updates.push(e.data.url); }; true",
        )
        .await;
    s.project("second").await;
    let quick = s.get("/api/projects").await;
    assert_eq!(quick["headers"]["outpost-cache"], "stale");
    assert_eq!(names(&quick["body"]), ["first"], "answered from the copy");
    let updated = wait_until("an `updated` event", PATIENCE, || async {
        let u = s.tab.eval("window.updates").await;
        (!u.as_array().unwrap().is_empty()).then_some(u)
    })
    .await;
    assert!(updated[0].as_str().unwrap().ends_with("/api/projects"), "{updated}");
    assert_eq!(names(&s.get("/api/projects").await["body"]), ["first", "second"], "the refreshed copy");
    let mut s = s;
    s.chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_start_offline_the_app_and_its_metadata_still_open() {
    let config = r#"{"shell": ["/style.css", "/outpost.js"]}"#;
    let mut s = Scene::new(config).await;
    let alice = s.login("alice").await;
    s.project("offline-ready").await;
    s.tab.reload().await; // the page itself now comes through the worker
    let online = s.get("/api/sync/init").await;
    assert_eq!(online["status"], 200);
    assert_eq!(names(&online["body"]["projects"]), ["offline-ready"], "{online}");
    // The worker writes the copy just after the page has the answer, and the
    // workers are stopped below by force (CDP; a browser lets the write end):
    // wait until the device holds it, read straight from IndexedDB.
    let held = "new Promise((resolve) => { const open = indexedDB.open('outpost'); open.onsuccess = () => { \
         const c = open.result.transaction('reads', 'readonly').objectStore('reads').openCursor(); \
         c.onsuccess = () => { const at = c.result; if (!at) return resolve(false); \
         if (String(at.key).endsWith('/api/sync/init') && \
             new TextDecoder().decode(at.value).includes('offline-ready')) return resolve(true); \
         at.continue(); }; }; })";
    wait_until("the copy of /api/sync/init on the device", PATIENCE, || async {
        (s.tab.eval(held).await == true).then_some(())
    })
    .await;

    s.tab.stop_all_workers().await;
    s.origin.stop();
    s.tab.reload().await;
    let page = s.tab.eval("document.body.innerText.length > 0 && !!navigator.serviceWorker.controller").await;
    assert_eq!(page, true, "the page loaded from the worker's copy and is controlled");
    let init = s.get("/api/sync/init").await;
    assert_eq!(init["status"], 200, "{init}");
    assert_eq!(init["headers"]["outpost-cache"], "stale");
    assert_eq!(init["body"]["user"], alice);
    assert_eq!(names(&init["body"]["projects"]), ["offline-ready"]);
    s.chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_users_data_and_writes_never_reach_the_next_user() {
    let mut s = Scene::new("{}").await;
    s.login("alice").await;
    let session = s.post("/api/chat/sessions", json!({ "title": "alice's" })).await;
    let session = session["body"]["id"].as_str().unwrap().to_string();
    assert_eq!(s.get("/api/sync/init").await["status"], 200);

    // Offline, alice queues three messages, then logs out.
    s.origin.stop();
    for i in 0..3 {
        let batch = json!({ "messages": [{ "tempId": format!("t{i}"), "sessionId": session, "role": "user",
                                           "content": format!("alice {i}"), "createdAt": 1 }] });
        assert_eq!(s.post("/api/chat/messages/batch", batch).await["status"], 202);
    }
    let out = s.tab.eval("outpost.logout()").await;
    assert_eq!(out, json!({ "ok": false, "status": 0 }), "the origin is down");
    // The logout is owed to the origin: until it gets there the device
    // answers as logged out, and alice's copies are gone either way.
    let after_logout = s.get("/api/sync/init").await;
    assert_eq!(after_logout["status"], 401, "logged out on this device: {after_logout}");
    assert!(after_logout["body"].get("user").is_none(), "none of alice's data: {after_logout}");

    // Bob logs in on the same browser.
    s.up();
    let bob = s.login("bob").await;
    let init = s.get("/api/sync/init").await;
    assert_eq!(init["body"]["user"], bob);
    s.tab.dispatch_sync(&s.origin.origin(), "outpost-outbox", false).await;
    let status = s.tab.eval("outpost.flush()").await;
    assert_eq!(status["pending"], 0, "bob has nothing pending: {status}");
    assert_eq!(status["parked"], 3, "alice's writes wait for her: {status}");
    s.origin.stop();
    let bobs = s.get("/api/sync/init").await;
    assert_eq!(bobs["body"]["user"], bob, "only bob's copy is served to bob: {bobs}");
    s.up();
    assert_eq!(s.faults.batches.load(Ordering::SeqCst), 0, "none of alice's writes reached the origin under bob");
    assert!(harness::messages_of(&s.state, &session).await.is_empty());

    // Alice comes back: her writes go, once each, in order.
    s.login("alice").await;
    wait_until("alice's writes to arrive", PATIENCE, || async {
        let _ = s.tab.try_eval("outpost.status()").await;
        (harness::messages_of(&s.state, &session).await.len() >= 3).then_some(())
    })
    .await;
    // The worker drops each entry once the origin's answer is in: a moment
    // after the origin has the message.
    wait_until("alice's outbox to empty", PATIENCE, || async {
        let status = s.tab.try_eval("outpost.status()").await.ok()?;
        ((status["pending"].as_u64(), status["parked"].as_u64()) == (Some(0), Some(0))).then_some(())
    })
    .await;
    assert_eq!(harness::messages_of(&s.state, &session).await, ["alice 0", "alice 1", "alice 2"]);
    s.chromium.close().await;
}

/// A thundering herd at login: 20 identical `GET /api/sync/init` at once
/// from 3 tabs cost the origin one request, and every caller gets the whole
/// answer. A read made after that one settled goes to the origin again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_reads_in_flight_at_once_are_one_request() {
    // No login warm-up: its own sync/init read would be counted.
    let s = Scene::new(r#"{"warmUp": []}"#).await;
    s.login("alice").await;
    s.project("herd").await;
    let tabs = [s.chromium.open(&s.origin.url(PAGE)).await, s.chromium.open(&s.origin.url(PAGE)).await];
    for tab in &tabs {
        wait_until("the worker to control the tab", PATIENCE, || async {
            (tab.try_eval("!!navigator.serviceWorker.controller").await.ok()? == true).then_some(())
        })
        .await;
    }
    s.faults.slow_init_ms.store(1_500, Ordering::SeqCst);
    let before = s.faults.inits.load(Ordering::SeqCst);
    // Each tab starts its reads at once; the origin holds the first 1.5 s.
    let herd = "Promise.all(Array.from({ length: N }, () => fetch('/api/sync/init').then(async (r) => \
                ({ status: r.status, projects: (await r.json()).projects.length }))))";
    let (seven, six) = (herd.replace('N', "7"), herd.replace('N', "6"));
    let (a, b, c) = tokio::join!(s.tab.eval(&seven), tabs[0].eval(&seven), tabs[1].eval(&six));
    let answers: Vec<Value> = [a, b, c].into_iter().flat_map(|v| v.as_array().unwrap().clone()).collect();
    assert_eq!(answers.len(), 20);
    for answer in &answers {
        assert_eq!(answer, &json!({ "status": 200, "projects": 1 }), "every caller gets the whole answer");
    }
    assert_eq!(s.faults.inits.load(Ordering::SeqCst) - before, 1, "one request at the origin");
    s.faults.slow_init_ms.store(0, Ordering::SeqCst);
    assert_eq!(s.get("/api/sync/init").await["status"], 200);
    assert_eq!(s.faults.inits.load(Ordering::SeqCst) - before, 2, "a later read is a request of its own");
}
