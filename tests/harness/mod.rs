//! The real-browser test harness: the reference origin on a loopback port,
//! Debian's Chromium driven over the DevTools protocol, and bounded polling.
//!
//! Nothing here is mocked: pages, the service worker, Cache Storage,
//! IndexedDB and fetch are Chromium's own, and the origin is the real
//! server. A missing Chromium fails the test with a message naming the
//! setup script; it never skips.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod firefox;
pub mod instance;
pub mod pg;
pub mod pgbouncer;
pub mod scenes;
pub mod webkit;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::service_worker::{
    DispatchSyncEventParams, EnableParams, EventWorkerErrorReported, EventWorkerRegistrationUpdated,
    EventWorkerVersionUpdated, RegistrationId, ServiceWorkerVersionRunningStatus, StopAllWorkersParams,
};
use chromiumoxide::cdp::browser_protocol::target::{FilterEntry, SetAutoAttachParams, TargetFilter};
use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
use chromiumoxide::error::CdpError;
use chromiumoxide::Page;
use futures::StreamExt;
use outpost::{app, AppState};
use serde_json::Value;
use tokio::task::JoinHandle;

/// How long any single wait may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Polls `check` until it returns `Some`, failing the test after `timeout`.
/// Tests wait this way, never with fixed sleeps.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until one of the worker's stored read copies holds `needle`
/// (read from its IndexedDB by the page): the copy is written just after
/// the answer, so a test that stops workers or the origin next waits here.
pub async fn wait_for_stored_read(tab: &impl Js, needle: &str) {
    let js = format!(
        "(async () => {{ const db = await new Promise((res, rej) => {{ const r = indexedDB.open('outpost'); \
         r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error); }}); \
         const all = await new Promise((res) => {{ const q = db.transaction('reads').objectStore('reads').getAll(); \
         q.onsuccess = () => res(q.result); }}); db.close(); \
         return all.some((v) => new TextDecoder().decode(v).includes({needle:?})); }})()"
    );
    wait_until(&format!("a stored copy holding {needle}"), PATIENCE, || async {
        (tab.try_eval(&js).await.ok()? == true).then_some(())
    })
    .await;
}

/// Notes the page's active worker, before a redeploy, for
/// `wait_for_new_worker`.
pub async fn mark_active_worker(tab: &impl Js) {
    tab.eval("navigator.serviceWorker.getRegistration().then((r) => { window.oldActive = r.active; return true; })")
        .await;
}

/// Waits until a worker other than the one `mark_active_worker` noted is
/// active, asking for an update while nothing new is found. Only the
/// registration is looked at: Chromium hands over once the old worker is
/// idle, and a request to it every few milliseconds (a poll of the
/// worker's version) keeps it for up to 5 minutes (docs/contract.md,
/// "Updates"). Up to 60 s: if Chromium's request to stop the old worker
/// at once found it stopped, the handover waits for its ordinary idle
/// time (30 s).
pub async fn wait_for_new_worker(tab: &impl Js) {
    const TOOK_OVER: &str = "navigator.serviceWorker.getRegistration().then((r) => { \
        if (r.active !== window.oldActive && r.active.state === 'activated') return 'new'; \
        if (r.installing || r.waiting) return 'coming'; \
        return r.update().then(() => 'asked', (e) => 'update failed: ' + e); })";
    const STATE: &str = "navigator.serviceWorker.getRegistration().then((r) => r && ({ \
        installing: r.installing && r.installing.state, waiting: r.waiting && r.waiting.state, \
        active: r.active && r.active.state, controller: navigator.serviceWorker.controller && \
        navigator.serviceWorker.controller.state }))";
    let limit = PATIENCE * 2;
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let state = tab.try_eval(TOOK_OVER).await;
        if state.as_ref().ok().and_then(Value::as_str) == Some("new") {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("the new worker did not take over within {limit:?}: {state:?}; {:?}", tab.try_eval(STATE).await);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Script in a page of either engine (Chromium's `Tab`, Firefox's
/// `FirefoxTab`), so one scenario can run in both.
#[allow(async_fn_in_trait)] // used by the tests of this crate only
/// The cold-read table the wasm keeps for the next start's bootstrap
/// (`shim/sw.js`), as the page sees Cache Storage: its text, or null; null
/// too until the worker has activated (activation deletes the table and
/// writes it again).
pub const COLD_TABLE_JS: &str =
    "navigator.serviceWorker.ready.then((reg) => reg.active.state !== 'activated' ? null : \
     caches.match(new URL('/__outpost/cold-reads', location.href).href, { cacheName: 'outpost-state' }) \
     .then((r) => (r ? decodeURIComponent(r.headers.get('x-outpost-cold-reads')) : null)))";

/// The worker's marks for its last start (`outpost:timings`, shim/sw.js).
pub const TIMINGS_JS: &str = "new Promise((ok) => { const c = new MessageChannel(); \
     c.port1.onmessage = (e) => ok(e.data); \
     navigator.serviceWorker.controller.postMessage({ type: 'outpost:timings' }, [c.port2]); })";

/// Stops the worker (`stop`), then runs `js`, whose request must start it
/// again and be sent by the bootstrap as a cold read. Tried again (three
/// tries in all) when something else (the page client's wake timer, a hint)
/// started the worker before that request's fetch event, so the start is
/// the request's own; and when the start sent no cold read though the
/// request came first: that start found no usable cold-read table (seen
/// twice in about 45 runs of `worker_boot` on this 2-core machine, cause
/// not yet found; such a start only waits for its wasm, as with no table,
/// so no answer is wrong). The next try waits until the table is stored again,
/// and the marks of each such start are printed. Returns what `js`
/// returned, the worker's marks for the last start, and how many tries it
/// took.
pub async fn cold_request<T: Js>(tab: &T, stop: impl AsyncFn() -> bool, js: &str) -> (Value, Value, u64) {
    let mut last = (Value::Null, Value::Null, 0);
    for tries in 1..=3 {
        assert!(stop().await, "the worker could not be stopped");
        let value = tab.eval(js).await;
        let marks = tab.eval(TIMINGS_JS).await;
        let own = match (marks["fetch"].as_f64(), marks["ready"].as_f64()) {
            (Some(fetch), Some(ready)) => fetch < ready,
            (Some(_), None) => true,
            _ => false,
        };
        let cold = marks["coldRead"].is_number();
        last = (value, marks, tries);
        if own && cold {
            break;
        }
        if own && tries < 3 {
            let table = tab.eval(COLD_TABLE_JS).await;
            println!("cold_request: try {tries} sent no cold read; marks {}; table now {table}", last.1);
            wait_until("the cold-read table, before the next try", PATIENCE, || async {
                tab.eval(COLD_TABLE_JS).await.as_str().map(|_| ())
            })
            .await;
        }
    }
    last
}

pub trait Js {
    /// Evaluates `js` in the page, awaiting a returned promise; a thrown
    /// error or rejection is an `Err` with its message.
    async fn try_eval(&self, js: &str) -> Result<Value, String>;

    /// Like `try_eval`, failing the test on a JS error.
    async fn eval(&self, js: &str) -> Value {
        self.try_eval(js).await.unwrap_or_else(|e| panic!("JS failed: {e}\n--- in ---\n{js}"))
    }

    /// Registers the worker through the page client with `config` (a JSON
    /// object literal) and waits until it controls the page.
    async fn register_outpost_with(&self, config: &str) {
        self.eval(&register_js(config)).await;
    }

    /// What the browser printed, where the harness can read it (Firefox's
    /// log, with the console of pages and workers): for a failure's message.
    fn engine_log(&self) -> String {
        String::new()
    }
}

/// The page-side script that registers Outpost as `window.outpost`.
fn register_js(config: &str) -> String {
    format!(
        "(async () => {{ const {{ Outpost }} = await import('/outpost.js'); \
         window.outpost = await Outpost.register({{ config: {config} }}); return true; }})()"
    )
}

impl Js for Tab {
    async fn try_eval(&self, js: &str) -> Result<Value, String> {
        Tab::try_eval(self, js).await
    }
}

/// The reference origin, served from its own runtime so that stopping it
/// closes every connection at once, as a crashed or unplugged server would.
pub struct Origin {
    addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Origin {
    /// Starts the origin on a free loopback port.
    pub fn start(state: AppState) -> Origin {
        Self::start_app(app(state))
    }

    /// Starts any router (the origin with faults layered on, say).
    pub fn start_app(router: axum::Router) -> Origin {
        let mut origin = Origin { addr: "127.0.0.1:0".parse().unwrap(), runtime: None };
        origin.serve(router);
        origin
    }

    /// `http://127.0.0.1:PORT`, as `location.origin` spells it.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin())
    }

    /// Stops serving and drops every open connection.
    pub fn stop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            // Dropping a runtime waits until its tasks (the listener and
            // every connection) are gone, but may not happen on an async
            // thread: do it on a plain one and wait, so the port is free on
            // return.
            std::thread::spawn(move || drop(rt)).join().unwrap();
        }
    }

    /// Serves `state` again on the same port (same origin for the browser),
    /// as a redeploy would.
    pub fn restart(&mut self, state: AppState) {
        self.restart_app(app(state));
    }

    pub fn restart_app(&mut self, router: axum::Router) {
        self.stop();
        self.serve(router);
    }

    fn serve(&mut self, router: axum::Router) {
        let listener =
            std::net::TcpListener::bind(self.addr).unwrap_or_else(|e| panic!("origin: cannot bind {}: {e}", self.addr));
        listener.set_nonblocking(true).unwrap();
        self.addr = listener.local_addr().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, router).await.unwrap();
        });
        self.runtime = Some(runtime);
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where Debian's Chromium lives (override with OUTPOST_CHROMIUM).
fn chromium_path() -> PathBuf {
    let path = std::env::var_os("OUTPOST_CHROMIUM").map(PathBuf::from).unwrap_or_else(|| "/usr/bin/chromium".into());
    assert!(
        path.is_file(),
        "Chromium not found at {}: run ./scripts/setup.sh (installs Debian's chromium), or set OUTPOST_CHROMIUM",
        path.display()
    );
    path
}

/// A headless Chromium on a profile of its own, which survives `restart`.
pub struct Chromium {
    browser: Option<Browser>,
    handler: Option<JoinHandle<()>>,
    profile: tempfile::TempDir,
    /// Extra switches, as `(name, value)`; chromiumoxide adds the dashes.
    extra: Vec<(String, String)>,
}

impl Chromium {
    pub async fn launch() -> Chromium {
        Self::launch_with(&[]).await
    }

    /// With extra switches, e.g. `[("disable-features", "BackgroundSync")]`.
    pub async fn launch_with(extra: &[(&str, &str)]) -> Chromium {
        let profile = tempfile::Builder::new().prefix("outpost-chromium-").tempdir().unwrap();
        let extra = extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut chromium = Chromium { browser: None, handler: None, profile, extra };
        chromium.start().await;
        chromium
    }

    async fn start(&mut self) {
        let config = BrowserConfig::builder()
            .chrome_executable(chromium_path())
            .user_data_dir(self.profile.path())
            .new_headless_mode()
            .no_sandbox()
            // chromiumoxide adds the leading dashes itself.
            .args([
                "disable-gpu",
                "disable-quic",
                "no-first-run",
                "disable-background-networking",
                "disable-component-update",
                "disable-sync",
            ])
            .args(self.extra.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .launch_timeout(PATIENCE)
            .request_timeout(PATIENCE)
            .build()
            .expect("valid browser config");
        let (browser, mut handler) = Browser::launch(config)
            .await
            .unwrap_or_else(|e| panic!("cannot launch {}: {e}", chromium_path().display()));
        // The handler must be polled for anything to happen. Messages newer
        // than the crate's protocol are dropped by it, not fatal; a dead
        // socket is the end.
        let handler = tokio::spawn(async move {
            while let Some(item) = handler.next().await {
                if let Err(CdpError::Ws(_)) = item {
                    break;
                }
            }
        });
        self.browser = Some(browser);
        self.handler = Some(handler);
    }

    fn browser(&self) -> &Browser {
        self.browser.as_ref().expect("browser is running")
    }

    /// Opens a tab at `url`, with service-worker events recorded.
    pub async fn open(&self, url: &str) -> Tab {
        let page = self.browser().new_page("about:blank").await.expect("new tab");
        // chromiumoxide asks Chromium to pause every auto-attached target
        // until a debugger resumes it; service workers then stay in
        // "starting" forever. Keep them out of auto-attach.
        let filter = TargetFilter::new(vec![
            FilterEntry::builder().r#type("service_worker").exclude(true).build(),
            FilterEntry::builder().r#type("browser").exclude(true).build(),
            FilterEntry::builder().r#type("tab").exclude(true).build(),
            FilterEntry::builder().build(),
        ]);
        let auto_attach = SetAutoAttachParams::builder()
            .auto_attach(true)
            .wait_for_debugger_on_start(true)
            .flatten(true)
            .filter(filter)
            .build()
            .unwrap();
        page.execute(auto_attach).await.expect("Target.setAutoAttach");
        let workers = Arc::new(Mutex::new(Workers::default()));
        let mut registrations = page.event_listener::<EventWorkerRegistrationUpdated>().await.unwrap();
        let mut versions = page.event_listener::<EventWorkerVersionUpdated>().await.unwrap();
        let mut errors = page.event_listener::<EventWorkerErrorReported>().await.unwrap();
        let sink = Arc::clone(&workers);
        let recorder = tokio::spawn(async move {
            loop {
                tokio::select! {
                    Some(ev) = registrations.next() => {
                        let mut w = sink.lock().unwrap();
                        for r in &ev.registrations {
                            w.registrations.retain(|(_, scope)| scope != &r.scope_url);
                            if !r.is_deleted {
                                w.registrations.push((r.registration_id.clone(), r.scope_url.clone()));
                            }
                        }
                    }
                    Some(ev) = versions.next() => {
                        let mut w = sink.lock().unwrap();
                        for v in &ev.versions {
                            w.versions.retain(|x| x.version_id != v.version_id);
                            w.versions.push(WorkerVersion {
                                version_id: v.version_id.clone(),
                                script_url: v.script_url.clone(),
                                running: v.running_status.clone(),
                            });
                        }
                    }
                    Some(ev) = errors.next() => {
                        let e = &ev.error_message;
                        sink.lock().unwrap().errors.push(format!("{}:{}: {}", e.source_url, e.line_number, e.error_message));
                    }
                    else => break,
                }
            }
        });
        page.execute(EnableParams::default()).await.expect("ServiceWorker.enable");
        page.goto(url).await.unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
        Tab { page, workers, recorder }
    }

    /// Closes the browser cleanly; `start_again` reopens the same profile.
    pub async fn close(&mut self) {
        if let Some(mut browser) = self.browser.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), browser.close()).await;
            if tokio::time::timeout(Duration::from_secs(10), browser.wait()).await.is_err() {
                let _ = browser.kill().await;
            }
        }
        if let Some(mut handler) = self.handler.take() {
            if tokio::time::timeout(Duration::from_secs(5), &mut handler).await.is_err() {
                handler.abort();
            }
        }
    }

    /// A browser restart: close, then launch again on the same profile.
    pub async fn restart(&mut self) {
        self.close().await;
        self.start().await;
    }
}

#[derive(Default)]
struct Workers {
    registrations: Vec<(RegistrationId, String)>,
    versions: Vec<WorkerVersion>,
    /// Errors Chromium reported from the origin's workers.
    errors: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct WorkerVersion {
    pub version_id: String,
    pub script_url: String,
    pub running: ServiceWorkerVersionRunningStatus,
}

/// One tab, plus what Chromium reported about its origin's workers.
pub struct Tab {
    pub page: Page,
    workers: Arc<Mutex<Workers>>,
    recorder: JoinHandle<()>,
}

impl Drop for Tab {
    fn drop(&mut self) {
        self.recorder.abort();
    }
}

impl Tab {
    /// Evaluates `js` in the page, awaiting a returned promise; a thrown
    /// error or rejection is an `Err` with its message.
    pub async fn try_eval(&self, js: &str) -> Result<Value, String> {
        let params =
            EvaluateParams::builder().expression(js).await_promise(true).return_by_value(true).build().unwrap();
        match self.page.evaluate_expression(params).await {
            Ok(result) => Ok(result.value().cloned().unwrap_or(Value::Null)),
            Err(CdpError::JavascriptException(details)) => Err(details
                .exception
                .as_ref()
                .and_then(|e| e.description.clone())
                .unwrap_or_else(|| details.text.clone())),
            Err(e) => Err(format!("evaluate failed: {e}")),
        }
    }

    /// Like `try_eval`, failing the test on a JS error.
    pub async fn eval(&self, js: &str) -> Value {
        self.try_eval(js).await.unwrap_or_else(|e| panic!("JS failed: {e}\n--- in ---\n{js}"))
    }

    /// `ServiceWorker.stopAllWorkers`, then waits until Chromium reports
    /// every worker stopped. A worker that was still starting when the
    /// command came may go on to run, so the command is repeated until the
    /// stop holds.
    pub async fn stop_all_workers(&self) {
        let all_stopped = || {
            let w = self.workers.lock().unwrap();
            w.versions.iter().all(|v| v.running == ServiceWorkerVersionRunningStatus::Stopped)
        };
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            self.page.execute(StopAllWorkersParams::default()).await.expect("ServiceWorker.stopAllWorkers");
            let round = tokio::time::Instant::now() + Duration::from_secs(2);
            while tokio::time::Instant::now() < round && !all_stopped() {
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            if all_stopped() {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "service workers still running {PATIENCE:?} after stopAllWorkers: {:?}",
                self.worker_versions()
            );
        }
    }

    /// The registration id Chromium gave the worker registered for `scope`.
    pub async fn registration_id(&self, scope: &str) -> RegistrationId {
        wait_until(&format!("a registration for {scope}"), PATIENCE, || async {
            let w = self.workers.lock().unwrap();
            w.registrations.iter().find(|(_, s)| s == scope).map(|(id, _)| id.clone())
        })
        .await
    }

    /// Fires a Background Sync event at the worker of `origin` (scope `/`).
    pub async fn dispatch_sync(&self, origin: &str, tag: &str, last_chance: bool) {
        let id = self.registration_id(&format!("{origin}/")).await;
        self.page
            .execute(DispatchSyncEventParams::new(origin, id, tag, last_chance))
            .await
            .expect("ServiceWorker.dispatchSyncEvent");
    }

    /// Errors Chromium reported from the workers (uncaught exceptions).
    pub fn worker_errors(&self) -> Vec<String> {
        self.workers.lock().unwrap().errors.clone()
    }

    /// Worker versions Chromium knows for this profile, newest last.
    pub fn worker_versions(&self) -> Vec<WorkerVersion> {
        self.workers.lock().unwrap().versions.clone()
    }

    /// Registers the worker through the page client and waits until it
    /// controls the page.
    pub async fn register_outpost(&self) {
        self.register_outpost_with("{}").await;
    }

    /// The same, with a worker config (a JSON object literal).
    pub async fn register_outpost_with(&self, config: &str) {
        self.eval(&register_js(config)).await;
    }

    /// `fetch(path)` from the page: `{status, headers, body}` (body parsed
    /// as JSON when it is JSON), or `Err` with the network error.
    pub async fn fetch(&self, path: &str) -> Result<Value, String> {
        self.try_eval(&format!(
            "(async () => {{ const r = await fetch({path:?}); const text = await r.text(); \
             let body = text; try {{ body = JSON.parse(text); }} catch (_) {{}} \
             return {{ status: r.status, headers: Object.fromEntries(r.headers), body }}; }})()"
        ))
        .await
    }
}

impl Tab {
    /// A JSON `POST` from the page: `{status, headers, body}`, or `Err`
    /// with the network error.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, String> {
        self.try_eval(&format!(
            "(async () => {{ const r = await fetch({path:?}, {{ method: 'POST', \
             headers: {{ 'Content-Type': 'application/json' }}, body: JSON.stringify({body}) }}); \
             const text = await r.text(); let body = text; try {{ body = JSON.parse(text); }} catch (_) {{}} \
             return {{ status: r.status, headers: Object.fromEntries(r.headers), body }}; }})()"
        ))
        .await
    }

    /// Navigates the tab again to where it is (a reload that goes through
    /// the worker like any navigation).
    pub async fn reload(&self) {
        self.page.reload().await.expect("reload the tab");
    }
}

/// Origin state on a fresh SQLite database in a temp dir (kept alive by
/// the returned guard).
pub async fn sqlite_state() -> (AppState, tempfile::TempDir) {
    sqlite_state_with(outpost::Settings::default()).await
}

/// The same, with the origin's settings (presign lifetime, say).
pub async fn sqlite_state_with(settings: outpost::Settings) -> (AppState, tempfile::TempDir) {
    let dir = tempfile::Builder::new().prefix("outpost-data-").tempdir().unwrap();
    let options = outpost::Options { settings, ..outpost::Options::embedded(dir.path()) };
    (AppState::open(options).await.expect("open the origin state"), dir)
}

/// Origin state on a fresh database of the shared throwaway PostgreSQL
/// server (one server per test binary, one database per test).
pub async fn postgres_state(name: &str) -> (AppState, tempfile::TempDir) {
    let url = tokio::task::spawn_blocking({
        let name = name.to_string();
        move || pg::TestPostgres::shared().create_database(&name)
    })
    .await
    .unwrap();
    let dir = tempfile::Builder::new().prefix("outpost-data-").tempdir().unwrap();
    let options = outpost::Options { database_url: Some(url), ..outpost::Options::embedded(dir.path()) };
    (AppState::open(options).await.expect("open the origin state on PostgreSQL"), dir)
}

/// Origin state on a fresh database of the shared PostgreSQL, reached
/// through a shared PgBouncer in transaction pooling mode (migrations go
/// direct, as `--migrate-url` does).
pub async fn pgbouncer_state(name: &str) -> (AppState, tempfile::TempDir) {
    static BOUNCER: std::sync::OnceLock<pgbouncer::PgBouncer> = std::sync::OnceLock::new();
    let (direct, through) = tokio::task::spawn_blocking({
        let name = name.to_string();
        move || {
            let pg = pg::TestPostgres::shared();
            let bouncer = BOUNCER.get_or_init(|| pgbouncer::PgBouncer::start(pg.port()));
            let direct = pg.create_database(&name);
            let db = direct.rsplit('/').next().unwrap().to_string();
            (direct, bouncer.url(&db))
        }
    })
    .await
    .unwrap();
    let dir = tempfile::Builder::new().prefix("outpost-data-").tempdir().unwrap();
    let options = outpost::Options {
        database_url: Some(through),
        migrate_url: Some(direct),
        ..outpost::Options::embedded(dir.path())
    };
    (AppState::open(options).await.expect("open the origin state through PgBouncer"), dir)
}

/// The embedded bundle rebuilt with a custom section holding `tag`: the
/// same code under a new content hash, as a redeploy would ship.
pub fn rebuilt_bundle(tag: &[u8]) -> outpost::Bundle {
    fn leb128(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = "outpost-test-rebuild";
    let mut payload = Vec::new();
    leb128(name.len(), &mut payload);
    payload.extend_from_slice(name.as_bytes());
    payload.extend_from_slice(tag);
    let mut wasm = outpost::Bundle::embedded().wasm.to_vec();
    wasm.push(0); // custom section id
    leb128(payload.len(), &mut wasm);
    wasm.extend(payload);
    outpost::Bundle::assemble(wasm, outpost::Bundle::embedded_script())
}

/// The origin with faults on `messages/batch`: of every ten requests, three
/// get a 503 without being processed, and one is processed and then loses
/// its connection before the answer (a crash after commit). Deterministic,
/// so no entry can fail more than twice in a row.
pub fn flaky_app(state: AppState) -> axum::Router {
    use axum::extract::Request;
    use axum::http::StatusCode;
    use axum::middleware::Next;
    use axum::response::IntoResponse;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let counter = Arc::new(AtomicU64::new(0));
    outpost::app(state).layer(axum::middleware::from_fn(move |req: Request, next: Next| {
        let counter = Arc::clone(&counter);
        async move {
            if req.uri().path() != "/api/chat/messages/batch" {
                return next.run(req).await;
            }
            match counter.fetch_add(1, Ordering::SeqCst) % 10 {
                0 | 3 | 6 => (StatusCode::SERVICE_UNAVAILABLE, "injected 503").into_response(),
                8 => {
                    let _processed = next.run(req).await;
                    // Unwinding the connection's task drops the socket with no
                    // answer; resume_unwind skips the panic hook's noise.
                    std::panic::resume_unwind(Box::new("injected connection reset"))
                }
                _ => next.run(req).await,
            }
        }
    }))
}

/// Page-side: p50 and p99, in ms, of `rounds` sequential fetches of a path:
/// `({LATENCY})('/path', 300)`.
pub const LATENCY: &str = r#"(async (path, rounds) => {
  const times = [];
  for (let i = 0; i < rounds; i++) {
    const t = performance.now();
    await (await fetch(path, { cache: 'no-store' })).text();
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return [times[Math.floor(rounds / 2)], times[Math.floor(rounds * 0.99)]];
})"#;

/// The contents of the messages the origin stored for `session`, oldest first.
pub async fn messages_of(state: &AppState, session: &str) -> Vec<String> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT content FROM chat_messages WHERE session_id = $1 ORDER BY created_at, id")
            .bind(session)
            .fetch_all(&state.api.db.pool)
            .await
            .unwrap();
    rows.into_iter().map(|r| r.0).collect()
}

impl Tab {
    /// Damages the worker's outbox by hand: puts each `(key, JS value)`
    /// into its IndexedDB store, between (or beside) real entries.
    pub async fn corrupt_outbox(&self, records: &[(f64, &str)]) {
        let puts: String =
            records.iter().map(|(key, value)| format!("tx.objectStore('outbox').put({value}, {key});")).collect();
        self.eval(&format!(
            "new Promise((resolve, reject) => {{ const open = indexedDB.open('outpost'); \
             open.onsuccess = () => {{ const tx = open.result.transaction('outbox', 'readwrite'); {puts} \
             tx.oncomplete = () => {{ open.result.close(); resolve(true); }}; tx.onerror = () => reject(tx.error); }}; \
             open.onerror = () => reject(open.error); }})"
        ))
        .await;
    }
}

/// A TCP proxy in front of a server that can be told to stall: while it
/// is, it accepts connections and reads requests but never answers (nor
/// forwards anything), as a hung object store does.
pub struct StallProxy {
    addr: std::net::SocketAddr,
    stalled: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl StallProxy {
    /// In front of `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> StallProxy {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let target = upstream.trim_start_matches("http://").trim_end_matches('/').to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stalled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stalled.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { return };
                let (target, flag) = (target.clone(), flag.clone());
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(&target).await else { return };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let up = {
                        let flag = flag.clone();
                        async move {
                            let mut buf = vec![0u8; 64 * 1024];
                            loop {
                                let n = match cr.read(&mut buf).await {
                                    Ok(0) | Err(_) => return,
                                    Ok(n) => n,
                                };
                                // Stalled: swallow the request, answer nothing.
                                if !flag.load(Ordering::SeqCst) && sw.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    };
                    let down = async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = match sr.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            if flag.load(Ordering::SeqCst) {
                                continue;
                            }
                            if cw.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    tokio::join!(up, down);
                });
            }
        });
        StallProxy { addr, stalled, task }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stall(&self, on: bool) {
        self.stalled.store(on, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for StallProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
