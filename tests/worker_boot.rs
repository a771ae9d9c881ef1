//! The build chain end to end in Chromium: the worker registers and its
//! wasm answers; it starts cold with no network; a new bundle replaces it.

mod harness;

use chromiumoxide::cdp::browser_protocol::service_worker::ServiceWorkerVersionRunningStatus::Running;
use harness::{wait_until, Chromium, Origin, PATIENCE};
use outpost::Bundle;
use serde_json::Value;

/// Asks the page for the version route and returns the bundle hash the
/// worker's wasm answered with, checking that the wasm (not the origin,
/// which has no such route) answered.
async fn wasm_version(tab: &harness::Tab) -> Result<String, String> {
    // Bounded: a worker that hangs must show as a failure, not stall the poll.
    let res = tokio::time::timeout(std::time::Duration::from_secs(5), tab.fetch("/api/__outpost/version"))
        .await
        .map_err(|_| "no answer within 5 s".to_string())??;
    if res["status"] != 200 || res["headers"]["outpost-source"] != "worker" {
        return Err(format!("not answered by the worker: {res}"));
    }
    Ok(res["body"]["version"].as_str().unwrap().to_string())
}

/// A same-origin page that does not register the worker by itself (the
/// demo at `/` registers it with its own config).
const PAGE: &str = "/api/health";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_registers_controls_the_page_and_the_wasm_answers() {
    let bundle = Bundle::embedded();
    let (state, _data) = harness::sqlite_state().await;
    let origin = Origin::start(state);
    let mut chromium = Chromium::launch().await;
    let tab = chromium.open(&origin.url(PAGE)).await;

    tab.register_outpost().await;
    let controller = tab.eval("navigator.serviceWorker.controller.scriptURL").await;
    assert_eq!(controller, Value::String(origin.url("/sw.js")));
    assert_eq!(wasm_version(&tab).await.unwrap(), bundle.hash);
    // The page client reaches the same worker over postMessage.
    assert_eq!(tab.eval("window.outpost.version()").await, Value::String(bundle.hash.clone()));
    // Requests outside the worker's routes reach the origin untouched.
    let res = tab.fetch("/api/health").await.unwrap();
    assert_eq!(res["status"], 200);
    assert_eq!(res["body"]["ok"], true);
    assert!(res["headers"].get("outpost-source").is_none(), "{res}");
    // The wasm went into Cache Storage at install.
    let cached = tab
        .eval(&format!(
            "caches.open('outpost-wasm-{}').then(c => c.match('/{}')).then(r => r ? r.arrayBuffer() : null).then(b => b && b.byteLength)",
            bundle.hash, bundle.wasm_file
        ))
        .await;
    assert_eq!(cached, Value::from(bundle.wasm.len()));
    chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_starts_cold_with_the_origin_down() {
    let bundle = Bundle::embedded();
    let (state, _data) = harness::sqlite_state().await;
    let mut origin = Origin::start(state);
    let mut chromium = Chromium::launch().await;
    let tab = chromium.open(&origin.url(PAGE)).await;
    tab.register_outpost().await;
    assert_eq!(wasm_version(&tab).await.unwrap(), bundle.hash);

    origin.stop();
    tab.stop_all_workers().await;
    // The origin is really gone: a request the worker does not handle fails.
    let down = tab.fetch("/api/health").await;
    assert!(down.is_err(), "origin still answers: {down:?}");
    // The next fetch starts the worker from cold; its wasm comes from Cache
    // Storage, so it answers with no network.
    tab.stop_all_workers().await;
    assert_eq!(wasm_version(&tab).await.unwrap(), bundle.hash);
    // The running state comes from CDP events, which a recorder applies
    // apart from the evaluation's reply: it may land just after.
    wait_until("the started worker to show as running", PATIENCE, || async {
        tab.worker_versions().iter().any(|v| v.running == Running).then_some(())
    })
    .await;

    // A Background Sync event wakes the stopped worker too.
    tab.stop_all_workers().await;
    tab.dispatch_sync(&origin.origin(), "outpost-outbox", false).await;
    wait_until("the sync event to start the worker", PATIENCE, || async {
        tab.worker_versions().iter().any(|v| v.running == Running).then_some(())
    })
    .await;
    chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_starts_cold_offline_after_a_browser_restart() {
    let bundle = Bundle::embedded();
    let (state, _data) = harness::sqlite_state().await;
    let mut origin = Origin::start(state);
    let mut chromium = Chromium::launch().await;
    let tab = chromium.open(&origin.url(PAGE)).await;
    tab.register_outpost().await;
    drop(tab);

    chromium.restart().await;
    // Reopen the page while the origin is still up, then take it down: the
    // worker of the new browser process must start from Cache Storage.
    let tab = chromium.open(&origin.url(PAGE)).await;
    wait_until("the worker to control the reopened page", PATIENCE, || async {
        tab.eval("navigator.serviceWorker.controller !== null").await.as_bool().unwrap().then_some(())
    })
    .await;
    origin.stop();
    tab.stop_all_workers().await;
    assert_eq!(wasm_version(&tab).await.unwrap(), bundle.hash);
    chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_bundle_replaces_the_old_worker() {
    let old = Bundle::embedded();
    let new = harness::rebuilt_bundle(b"2");
    assert_ne!(new.hash, old.hash);

    let (state, _data) = harness::sqlite_state().await;
    let mut origin = Origin::start(state.clone());
    let mut chromium = Chromium::launch().await;
    let tab = chromium.open(&origin.url(PAGE)).await;
    tab.register_outpost().await;
    assert_eq!(wasm_version(&tab).await.unwrap(), old.hash);

    // Redeploy: same origin, new bundle. The browser's update check sees a
    // changed sw.js, installs it, and the new worker takes over the open tab.
    harness::mark_active_worker(&tab).await;
    origin.restart(state.with_bundle(new.clone()));
    harness::wait_for_new_worker(&tab).await;
    assert_eq!(wasm_version(&tab).await.unwrap(), new.hash, "the new worker's wasm answers");
    assert_eq!(tab.eval("window.outpost.version()").await, Value::String(new.hash.clone()));
    // The old wasm's cache is dropped once the new worker has activated.
    let only_new = serde_json::json!([format!("outpost-wasm-{}", new.hash)]);
    wait_until("the old wasm cache to be deleted", PATIENCE, || async {
        let wasm = "caches.keys().then((ks) => ks.filter((k) => k.startsWith('outpost-wasm-')))";
        (tab.eval(wasm).await == only_new).then_some(())
    })
    .await;
    chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_takes_over_a_hard_reloaded_page() {
    use chromiumoxide::cdp::browser_protocol::page::ReloadParams;
    let (state, _data) = harness::sqlite_state().await;
    let origin = Origin::start(state);
    let mut chromium = Chromium::launch().await;
    let tab = chromium.open(&origin.url(PAGE)).await;
    tab.register_outpost().await;

    // A hard reload (cache ignored) loads the page without a controller.
    tab.page.execute(ReloadParams::builder().ignore_cache(true).build()).await.unwrap();
    wait_until("the hard-reloaded page to load", PATIENCE, || async {
        let state = tab.try_eval("document.readyState").await.ok()?;
        (state == "complete").then_some(())
    })
    .await;
    tab.register_outpost().await;
    assert_eq!(tab.eval("navigator.serviceWorker.controller !== null").await, Value::Bool(true));
    assert_eq!(wasm_version(&tab).await.unwrap(), Bundle::embedded().hash);
    chromium.close().await;
}

/// Two pages of one site passing different configs (or a deploy that
/// changes only the config) register two script URLs for one scope, here
/// at the same moment, while the page's requests are under way. The
/// worker that answers must still start with the network gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_of_config_leaves_a_worker_that_starts_offline() {
    let (state, _data) = harness::sqlite_state().await;
    let mut origin = Origin::start(state.clone());
    let mut chromium = Chromium::launch().await;
    let tab = chromium.open(&origin.url(PAGE)).await;
    tab.eval(
        "(async () => { const { Outpost } = await import('/outpost.js'); \
         const configured = Outpost.register({ config: { networkTimeoutMs: 20000 } }); \
         navigator.serviceWorker.register('/sw.js'); \
         window.outpost = await configured; return true; })()",
    )
    .await;
    let login = tab.post("/api/auth/login", &serde_json::json!({ "user": "alice" })).await.unwrap();
    assert_eq!(login["status"], 200, "{login}");
    let s = tab.post("/api/chat/sessions", &serde_json::json!({ "title": "kept" })).await.unwrap();
    assert_eq!(s["status"], 201, "{s}");
    // Fresh from the origin (a timeout long enough for a loaded machine: a
    // read answered from the login warm-up's copy would leave that copy,
    // from before the session, for the offline read below).
    let online = tab.fetch("/api/chat/sessions").await.unwrap();
    assert_eq!((online["status"].clone(), online["body"][0]["title"].clone()), (200.into(), "kept".into()), "{online}");
    assert_eq!(online["headers"].get("outpost-cache"), None, "{online}");
    // Both scripts installed; one worker is active and answers.
    let lifecycle = "(async () => { const r = await navigator.serviceWorker.getRegistration(); \
                     const w = (x) => x && [x.scriptURL, x.state]; \
                     return { active: w(r.active), waiting: w(r.waiting), installing: w(r.installing) }; })()";
    let settled = wait_until("both workers installed", PATIENCE, || async {
        let l = tab.try_eval(lifecycle).await.ok()?;
        (l["installing"].is_null() && l["active"][1] == "activated").then_some(l)
    })
    .await;
    assert!(wasm_version(&tab).await.is_ok(), "the active worker answers: {settled}");
    // The worker writes a read's copy just after answering it; stopping
    // workers in those milliseconds (no browser stops a worker that soon)
    // would leave the login warm-up's older copy. Wait until it is stored.
    harness::wait_for_stored_read(&tab, "\"kept\"").await;
    origin.stop();
    tab.stop_all_workers().await;
    let res = tab.fetch("/api/chat/sessions").await.unwrap_or_else(|e| {
        panic!("offline read after the change of config: {e}; workers {settled}; errors {:?}", tab.worker_errors())
    });
    assert_eq!(res["status"], 200, "{res}");
    assert_eq!(res["headers"]["outpost-cache"], "stale", "{res}");
    assert_eq!(res["body"][0]["title"], "kept", "{res}");
    // With no page left on the old worker, the new config takes over, and
    // it too starts offline with the copy the old one kept.
    tab.page.clone().close().await.expect("close the tab");
    origin.restart(state);
    let tab = chromium.open(&origin.url(PAGE)).await;
    let bare = Value::String(origin.url("/sw.js"));
    wait_until("the new config's worker to control a new page", PATIENCE, || async {
        let url = tab.try_eval("navigator.serviceWorker.controller && navigator.serviceWorker.controller.scriptURL");
        (url.await.ok()? == bare).then_some(())
    })
    .await;
    origin.stop();
    tab.stop_all_workers().await;
    let res = tab.fetch("/api/chat/sessions").await.expect("offline read under the new config");
    assert_eq!((res["status"].clone(), res["headers"]["outpost-cache"].clone()), (200.into(), "stale".into()), "{res}");
    chromium.close().await;
}

/// Chromium's static router (`InstallEvent.addRoutes`, from the rules the
/// wasm makes of the config): a request the worker would not claim goes
/// straight to the network and does not start a stopped worker; a claimed
/// one starts it as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_the_worker_would_not_claim_never_start_it() {
    let (state, _data) = harness::sqlite_state().await;
    let origin = Origin::start(state);
    let mut chromium = Chromium::launch().await;
    let tab = chromium.open(&origin.url(PAGE)).await;
    tab.register_outpost().await;
    let running = |tab: &harness::Tab| tab.worker_versions().iter().filter(|v| v.running == Running).count();

    tab.stop_all_workers().await;
    // An API route the config does not name, a page outside the API, and a
    // POST to a path no write route has.
    for (method, path) in [("GET", "/api/health"), ("GET", "/nothing-here"), ("POST", "/api/health")] {
        let body = if method == "POST" { ", body: '{}'" } else { "" };
        let answer = tab
            .eval(&format!(
                "fetch('{path}', {{ method: '{method}'{body} }}).then(async (r) => [r.status, r.headers.get('outpost-source'), await r.text()])"
            ))
            .await;
        assert!(answer[0].as_u64().is_some_and(|s| s > 0), "{method} {path}: answered by the origin: {answer}");
        assert!(answer[1].is_null(), "{method} {path}: not the worker's answer: {answer}");
    }
    // Long enough for a worker started by any of them to show as running.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(running(&tab), 0, "a request outside the worker's routes started it: {:?}", tab.worker_versions());

    // The worker's own route starts it, and it answers.
    let version = wasm_version(&tab).await.expect("the version route, from the worker");
    assert_eq!(version, Bundle::embedded().hash);
    wait_until("the started worker to show as running", PATIENCE, || async { (running(&tab) > 0).then_some(()) }).await;
    chromium.close().await;
}

/// A stopped worker's first read goes to the network at the fetch event
/// and is answered as the network answers, before the wasm is ready; the
/// wasm still takes that answer as its own: the copy it keeps serves the
/// same read offline right after, and the origin heard the read once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_read_is_answered_before_the_wasm_is_ready_and_still_kept() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let (state, _data) = harness::sqlite_state().await;
    // How many times the origin heard `GET /api/projects`.
    let heard = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&heard);
    let app = outpost::app(state).layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            if req.method() == "GET" && req.uri().path() == "/api/projects" {
                count.fetch_add(1, Ordering::SeqCst);
            }
            next.run(req)
        },
    ));
    let mut origin = Origin::start_app(app);
    let mut chromium = Chromium::launch().await;
    let tab = chromium.open(&origin.url(PAGE)).await;
    // No login warm-up: it reads the projects too, in the background, and
    // one of its reads landing after `before` would be counted as a second
    // read (the cold-read table is kept at the worker's start, so it does
    // not wait for the warm-up to end).
    tab.register_outpost_with(r#"{"warmUp": []}"#).await;
    let login = tab.post("/api/auth/login", &serde_json::json!({ "user": "alice" })).await.unwrap();
    assert_eq!(login["status"], 200, "{login}");
    let table = wait_until("the wasm to keep the cold-read table", PATIENCE, || async {
        tab.eval(harness::COLD_TABLE_JS).await.as_str().map(str::to_string)
    })
    .await;
    let table: Value = serde_json::from_str(&table).unwrap();
    assert_eq!(table["v"], Bundle::embedded().hash, "{table}");
    let reads: Value = serde_json::from_str(table["t"].as_str().unwrap()).unwrap();
    assert!(reads["reads"].as_array().unwrap().contains(&"/api/projects*".into()), "{reads}");

    let before = heard.load(Ordering::SeqCst);
    let js = "fetch('/api/projects').then(async (r) => ({ status: r.status, body: await r.json() }))";
    let (online, tries) = answered_by_the_bootstrap(&tab, js).await;
    let heard = heard.load(Ordering::SeqCst) - before;
    // One request at the origin per try (a try whose worker something else
    // started is a warm read, also one request).
    assert_eq!(heard, tries, "the wasm took the bootstrap's answer, not a second read");
    origin.stop();
    let offline = kept_for_offline(&tab, "/api/projects", &online).await;
    assert_eq!(offline["headers"]["outpost-cache"], "stale", "{offline}");
    chromium.close().await;
}

/// Two cold reads of one URL in a row, the second failing at the origin
/// (a 503: the network went in between): the page gets the copy the first
/// one brought for the second, as it would from a running worker. The wasm
/// takes each cold read after the ones before it, so the second does not
/// look for the copy before the first has written it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_cold_read_right_after_another_gets_its_copy() {
    use axum::response::IntoResponse;
    let (state, _data) = harness::sqlite_state().await;
    // The first read is slow (`x-slow`) and the second fails at once
    // (`x-fail`): the second's answer is there before the first's copy.
    let app = outpost::app(state).layer(axum::middleware::from_fn(
        |req: axum::extract::Request, next: axum::middleware::Next| async move {
            if req.headers().contains_key("x-fail") {
                return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
            }
            if req.headers().contains_key("x-slow") {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
            next.run(req).await
        },
    ));
    let origin = Origin::start_app(app);
    let mut chromium = Chromium::launch().await;
    let tab = chromium.open(&origin.url(PAGE)).await;
    // No login warm-up: its copy of the projects would hide a missing one.
    tab.register_outpost_with(r#"{"warmUp": []}"#).await;
    let login = tab.post("/api/auth/login", &serde_json::json!({ "user": "alice" })).await.unwrap();
    assert_eq!(login["status"], 200, "{login}");
    assert_eq!(tab.post("/api/projects", &serde_json::json!({ "name": "first" })).await.unwrap()["status"], 201);
    wait_until("the wasm to keep the cold-read table", PATIENCE, || async {
        tab.eval(harness::COLD_TABLE_JS).await.as_str().map(|_| ())
    })
    .await;
    // Nothing stored holds the project yet: the copy the second read gets
    // can only be the first one's.
    let copies = "(async () => { const db = await new Promise((res, rej) => { const r = indexedDB.open('outpost'); \
         r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error); }); \
         const all = await new Promise((res) => { const q = db.transaction('reads').objectStore('reads').getAll(); \
         q.onsuccess = () => res(q.result); }); db.close(); \
         return all.filter((v) => new TextDecoder().decode(v).includes('\"first\"')).length; })()";
    assert_eq!(tab.eval(copies).await, 0, "no copy of the projects before the cold reads");
    // `no-store`: Chromium's HTTP cache would otherwise hold the second GET
    // of the URL until the first's answer is complete, hiding the order.
    let js = "(async () => { const read = (h) => fetch('/api/projects', { headers: h, cache: 'no-store' }) \
                .then(async (r) => ({ status: r.status, cache: r.headers.get('outpost-cache'), body: await r.text() })); \
              const first = read({ 'x-slow': '1' }); const second = read({ 'x-fail': '1' }); \
              return { status: (await first).status, first: await first, second: await second }; })()";
    let (both, _) = answered_by_the_bootstrap(&tab, js).await;
    assert!(both["first"]["body"].as_str().is_some_and(|b| b.contains("\"first\"")), "{both}");
    assert_eq!(both["second"]["status"], 200, "the first read's copy, not the 503: {both}");
    assert_eq!(both["second"]["cache"], "stale", "{both}");
    assert_eq!(both["second"]["body"], both["first"]["body"], "{both}");
    assert!(tab.worker_errors().is_empty(), "{:?}", tab.worker_errors());
    chromium.close().await;
}

/// Stops the workers and makes the read `js` (a page fetch resolving to
/// `{status, body}`) start one: it must be answered (200), and the bootstrap
/// must have sent it before the wasm was ready. Returns the answer and how
/// many tries that took (`harness::cold_request`).
async fn answered_by_the_bootstrap(tab: &harness::Tab, js: &str) -> (Value, u64) {
    let stop = async || {
        tab.stop_all_workers().await;
        true
    };
    let (online, marks, tries) = harness::cold_request(tab, stop, js).await;
    assert_eq!(online["status"], 200, "{online}");
    let sent = marks["coldRead"].as_f64().unwrap_or_else(|| panic!("the bootstrap sent the read itself: {marks}"));
    assert!(marks["ready"].as_f64().is_none_or(|ready| sent < ready), "sent before the wasm was ready: {marks}");
    (online, tries)
}

/// With the origin stopped, `path` is answered from the copy the cold read
/// `online` brought, and the worker logged no error. Returns that answer.
async fn kept_for_offline(tab: &harness::Tab, path: &str, online: &Value) -> Value {
    let offline = tab.fetch(path).await.unwrap();
    assert_eq!(offline["status"], 200, "the copy the cold read brought: {offline}");
    assert_eq!(offline["body"], online["body"]);
    assert!(tab.worker_errors().is_empty(), "{:?}", tab.worker_errors());
    offline
}

/// The same for the app shell (a `shell` GET outside the API, what a page
/// load asks first): answered from the network before the wasm is ready,
/// and the copy kept for offline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_shell_read_is_answered_before_the_wasm_is_ready() {
    let (state, _data) = harness::sqlite_state().await;
    let mut origin = Origin::start(state);
    let mut chromium = Chromium::launch().await;
    let tab = chromium.open(&origin.url(PAGE)).await;
    tab.register_outpost_with(r#"{ "shell": ["/style.css"] }"#).await;
    wait_until("the wasm to keep the cold-read table", PATIENCE, || async {
        let table = tab.eval(harness::COLD_TABLE_JS).await;
        table.as_str().is_some_and(|t| t.contains("style.css")).then_some(())
    })
    .await;
    let js = "fetch('/style.css').then(async (r) => ({ status: r.status, body: await r.text() }))";
    let (online, _) = answered_by_the_bootstrap(&tab, js).await;
    origin.stop();
    kept_for_offline(&tab, "/style.css", &online).await;
    chromium.close().await;
}

/// A cold read whose answer is slow holds up nothing else: a write made
/// right after it is answered while the read still waits on the origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_cold_read_holds_up_no_write() {
    let (state, _data) = harness::sqlite_state().await;
    let slow = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hold = std::sync::Arc::clone(&slow);
    let app = outpost::app(state).layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let held = req.method() == "GET"
                && req.uri().path() == "/api/projects"
                && hold.load(std::sync::atomic::Ordering::SeqCst);
            async move {
                if held {
                    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                }
                next.run(req).await
            }
        },
    ));
    let origin = Origin::start_app(app);
    let mut chromium = Chromium::launch().await;
    let tab = chromium.open(&origin.url(PAGE)).await;
    // No login warm-up: its own read of the projects, held like this one
    // once `slow` is set, is not what this test is about.
    tab.register_outpost_with(r#"{"warmUp": []}"#).await;
    let login = tab.post("/api/auth/login", &serde_json::json!({ "user": "alice" })).await.unwrap();
    assert_eq!(login["status"], 200, "{login}");
    wait_until("the cold-read table", PATIENCE, || async {
        tab.eval(harness::COLD_TABLE_JS).await.as_str().map(|_| ())
    })
    .await;
    slow.store(true, std::sync::atomic::Ordering::SeqCst);
    let stop = async || {
        tab.stop_all_workers().await;
        true
    };
    let (raced, marks, tries) = harness::cold_request(
        &tab,
        stop,
        "(async () => { const read = fetch('/api/projects').then((r) => ['read', r.status]); \
             await new Promise((ok) => setTimeout(ok, 50)); \
             const write = fetch('/api/projects', { method: 'POST', headers: { 'Content-Type': 'application/json' }, \
               body: JSON.stringify({ name: 'not held' }) }).then((r) => ['write', r.status]); \
             return Promise.race([read, write]); })()",
    )
    .await;
    assert_eq!(raced[0], "write", "the write was answered first: {raced}");
    assert!(raced[1].as_u64().is_some_and(|s| s < 300), "{raced}");
    assert!(marks["coldRead"].is_number(), "the read was a cold read: {marks} (try {tries} of 3)");
    chromium.close().await;
}
