//! The outbox in Chromium against the real origin: every scenario ends by
//! comparing what the origin stored with what the page sent.

mod harness;

use harness::scenes::Stage;

use harness::{wait_until, Tab, PATIENCE};
use outpost::AppState;
use serde_json::{json, Value};

/// A same-origin page that does not register the worker by itself (the
/// demo at `/` does, with the default config), so each test controls the
/// registration and its config.
const PAGE: &str = "/api/health";

/// Page-side helpers: JSON POST returning `{status, headers, body}`.
const HELPERS: &str = r#"
window.post = async (path, body, headers = {}) => {
  const r = await fetch(path, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify(body) });
  const text = await r.text();
  let parsed = text; try { parsed = JSON.parse(text); } catch (_) {}
  return { status: r.status, headers: Object.fromEntries(r.headers), body: parsed };
};
true
"#;

/// Logs in as `user`, registers the worker with `config`, makes a session;
/// returns its id.
async fn setup_with(tab: &Tab, user: &str, config: &str) -> String {
    tab.register_outpost_with(config).await;
    tab.eval(HELPERS).await;
    let login = tab.eval(&format!("post('/api/auth/login', {{ user: '{user}' }})")).await;
    assert_eq!(login["status"], 200, "{login}");
    let s = tab.eval("post('/api/chat/sessions', { title: 'offline' })").await;
    assert_eq!(s["status"], 201, "{s}");
    s["body"]["id"].as_str().unwrap().to_string()
}

async fn stored(state: &AppState, session: &str) -> Vec<String> {
    harness::messages_of(state, session).await
}

fn batch(session: &str, i: usize) -> Value {
    json!({ "messages": [{ "tempId": format!("t{i}"), "sessionId": session, "role": "user", "content": format!("message {i:03}"), "createdAt": 1 }] })
}

/// Sends a batch from the page; returns the answer.
async fn send(tab: &Tab, session: &str, i: usize) -> Value {
    tab.eval(&format!("post('/api/chat/messages/batch', {})", batch(session, i))).await
}

/// What the origin should hold after `n` writes: `message 000`...
fn want(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("message {i:03}")).collect()
}

/// One scenario's world: an origin, a browser with a tab whose worker is
/// registered, a logged-in user and a session to write messages to.
struct Scene {
    stage: Stage,
    session: String,
}
on_stage!(Scene);

impl Scene {
    async fn new(config: &str) -> Scene {
        Self::serving(config, outpost::app).await
    }

    /// With the origin's router made by `serve` (faults layered on, say).
    async fn serving(config: &str, serve: impl Fn(AppState) -> axum::Router + 'static) -> Scene {
        let stage = Stage::build().page(PAGE).app(serve).open().await;
        let session = setup_with(&stage.tab, "alice", config).await;
        Scene { stage, session }
    }

    /// Takes the origin down and sends `n` writes, each answered `202`.
    async fn queue_offline(&mut self, n: usize) -> Vec<Value> {
        self.origin.stop();
        let mut answers = Vec::new();
        for i in 0..n {
            let r = send(&self.tab, &self.session, i).await;
            assert_eq!(r["status"], 202, "{r}");
            answers.push(r);
        }
        answers
    }

    async fn stored(&self) -> Vec<String> {
        stored(&self.state, &self.session).await
    }

    /// Waits until the origin holds `n` messages, asking the worker for its
    /// status meanwhile (which also keeps it, and its retry timer, alive).
    async fn wait_for(&self, n: usize, what: &str) {
        wait_until(what, PATIENCE, || async {
            let _ = self.tab.try_eval("outpost.status()").await;
            (self.stored().await.len() >= n).then_some(())
        })
        .await;
    }

    async fn sync(&self) {
        self.tab.dispatch_sync(&self.origin.origin(), "outpost-outbox", false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_queued_offline_are_delivered_once_in_order_on_sync() {
    let mut scene = Scene::new("{}").await;
    let n = 40;
    for r in scene.queue_offline(n).await {
        assert_eq!(r["body"]["queued"], true);
        assert_eq!(r["headers"]["outpost-queued"], r["body"]["id"]);
        assert!(r["body"]["idempotencyKey"].as_str().is_some_and(|k| k.len() >= 16));
    }
    assert_eq!(scene.tab.eval("outpost.status()").await["pending"], n);
    assert!(scene.stored().await.is_empty());

    scene.stage.origin.restart(scene.stage.state.clone());
    scene.sync().await;
    scene.wait_for(n, "the origin to hold every queued write").await;
    assert_eq!(scene.stored().await, want(n), "exactly once, in order");
    wait_until("the outbox to empty", PATIENCE, || async {
        (scene.tab.eval("outpost.status()").await["pending"] == 0).then_some(())
    })
    .await;
    scene.chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_worker_mid_replay_loses_and_duplicates_nothing() {
    let mut scene = Scene::new("{}").await;
    let n = 60;
    scene.queue_offline(n).await;
    scene.stage.origin.restart(scene.stage.state.clone());
    // Start replays and kill the worker while they run, again and again.
    for _ in 0..5 {
        scene.sync().await;
        tokio::time::sleep(std::time::Duration::from_millis(40)).await;
        scene.tab.stop_all_workers().await;
    }
    scene.sync().await;
    scene.wait_for(n, "every write to arrive").await;
    assert_eq!(scene.stored().await, want(n), "0 lost, 0 duplicated, in order");
    scene.chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_write_is_dead_lettered_and_can_be_retried_or_discarded() {
    let scene = Scene::new("{}").await;
    let Scene { stage: Stage { state, mut origin, mut chromium, tab, .. }, session } = scene;
    origin.stop();
    // A write the origin will refuse (empty title), then a good one.
    let bad = tab.eval("post('/api/chat/sessions', { title: '' })").await;
    assert_eq!(bad["status"], 202);
    let bad_id = bad["body"]["id"].as_str().unwrap().to_string();
    assert_eq!(send(&tab, &session, 1).await["status"], 202);
    origin.restart(state.clone());

    let status = tab.eval("outpost.flush()").await;
    assert_eq!(status["pending"], 0, "{status}");
    let dead = status["deadLetters"].as_array().unwrap();
    assert_eq!(dead.len(), 1, "{status}");
    assert_eq!(dead[0]["id"], bad_id.as_str());
    assert_eq!(dead[0]["status"], 400);
    assert!(dead[0]["reason"].as_str().unwrap().contains("400"));
    assert_eq!(stored(&state, &session).await, ["message 001"], "the good write was not held back");

    // Retry: refused again, still a dead letter. Discard: gone.
    assert_eq!(tab.eval(&format!("outpost.retry('{bad_id}')")).await, true);
    wait_until("the retried write to be refused again", PATIENCE, || async {
        let s = tab.eval("outpost.status()").await;
        (s["deadLetters"].as_array()?.len() == 1 && s["pending"] == 0).then_some(())
    })
    .await;
    assert_eq!(tab.eval(&format!("outpost.discard('{bad_id}')")).await, true);
    let s = tab.eval("outpost.status()").await;
    assert!(s["deadLetters"].as_array().unwrap().is_empty(), "{s}");
    let titles: Vec<(String,)> =
        sqlx::query_as("SELECT title FROM chat_sessions").fetch_all(&state.api.db.pool).await.unwrap();
    assert_eq!(titles.len(), 1, "the refused session was never stored");
    chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_record_is_quarantined_and_the_rest_replays() {
    let mut scene = Scene::new("{}").await;
    scene.queue_offline(3).await;
    // Damage the outbox by hand: garbage under keys between real entries.
    scene.tab.corrupt_outbox(&[(1.5, "new Uint8Array([1, 255, 255, 255, 7])"), (2.5, "'not even bytes'")]).await;
    scene.stage.origin.restart(scene.stage.state.clone());
    let status = scene.tab.eval("outpost.flush()").await;
    assert_eq!(scene.stored().await, want(3));
    let dead = status["deadLetters"].as_array().unwrap();
    assert_eq!(dead.len(), 2, "{status}");
    assert!(dead.iter().all(|d| d["reason"].as_str().unwrap().contains("unreadable")));
    for d in dead {
        assert_eq!(scene.tab.eval(&format!("outpost.discard('{}')", d["id"].as_str().unwrap())).await, true);
    }
    assert!(scene.tab.eval("outpost.status()").await["deadLetters"].as_array().unwrap().is_empty());
    scene.chromium.close().await;
}

/// Fast backoff, so retry-heavy scenarios finish in seconds.
const FAST: &str = "{ backoffMs: [200, 400, 800, 1600, 3200] }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_origin_still_gets_every_write_once_in_order() {
    let mut scene = Scene::new(FAST).await;
    let n = 30;
    scene.queue_offline(n).await;
    scene.stage.origin.restart_app(harness::flaky_app(scene.stage.state.clone()));
    scene.sync().await;
    scene.wait_for(n, "every write through the flaky origin").await;
    assert_eq!(scene.stored().await, want(n), "0 lost, 0 duplicated, in order");
    let status = scene.tab.eval("outpost.status()").await;
    assert!(status["deadLetters"].as_array().unwrap().is_empty(), "{status}");
    scene.chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_writes_survive_a_browser_restart() {
    let mut scene = Scene::new(FAST).await;
    let n = 20;
    scene.queue_offline(n).await;
    scene.chromium.close().await;
    scene.stage.origin.restart(scene.stage.state.clone());

    // A new browser process on the same profile: opening the app starts the
    // worker, and starting is a replay trigger.
    scene.chromium.restart().await;
    scene.tab = scene.chromium.open(&scene.origin.url(PAGE)).await;
    wait_until("the writes queued before the restart to arrive", PATIENCE, || async {
        (scene.stored().await.len() >= n).then_some(())
    })
    .await;
    assert_eq!(scene.stored().await, want(n));
    scene.chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_write_waits_behind_queued_ones() {
    // The first batch the origin sees gets a 503; the next ones go through.
    // Its retry waits 2.4 to 3.6 s, so on a loaded machine too the second
    // write is sent while the first is still queued.
    let mut scene = Scene::serving("{ backoffMs: [3000, 400, 800, 1600, 3200] }", harness::flaky_app).await;
    let first = send(&scene.tab, &scene.session, 0).await;
    assert_eq!(first["status"], 202, "the 503 queues the first write: {first}");
    // The origin would take this one, but it must not overtake the first.
    let second = send(&scene.tab, &scene.session, 1).await;
    assert_eq!(second["status"], 202, "{second}");
    scene.wait_for(2, "both writes to arrive").await;
    assert_eq!(scene.stored().await, want(2));
    scene.chromium.close().await;
}

/// Firefox and Safari have no Background Sync, so delivery must not wait
/// for a sync event. Here none is dispatched: Chromium's own sync attempt
/// fires while the origin is still down and fails, and Chromium retries a
/// failed sync only after minutes, so what delivers within the test is the
/// worker's own retry timer. (`--disable-features=BackgroundSync` does not
/// remove the API in Chromium 156: `registration.sync.register` still
/// resolves, so this test cannot switch it off.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_happens_without_a_sync_event() {
    let mut scene = Scene::new(FAST).await;
    let n = 10;
    scene.queue_offline(n).await;
    scene.stage.origin.restart(scene.stage.state.clone());
    scene.wait_for(n, "the writes to arrive without a sync event").await;
    assert_eq!(scene.stored().await, want(n));
    scene.chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_happens_when_the_browser_refuses_background_sync() {
    use chromiumoxide::cdp::browser_protocol::browser::{PermissionDescriptor, PermissionSetting, SetPermissionParams};
    let mut scene = Scene::new(FAST).await;
    // As in a browser without the API: every sync registration is refused,
    // so no sync event will ever come.
    let deny = SetPermissionParams::builder()
        .permission(PermissionDescriptor::new("background-sync"))
        .setting(PermissionSetting::Denied)
        .origin(scene.origin.origin())
        .build()
        .unwrap();
    scene.tab.page.execute(deny).await.expect("Browser.setPermission");
    let refused = scene
        .tab
        .eval("navigator.serviceWorker.ready.then((r) => r.sync.register('probe')).then(() => 'registered', (e) => e.name)")
        .await;
    assert_eq!(refused, "NotAllowedError", "Background Sync must be refused in this browser");
    let n = 10;
    scene.queue_offline(n).await;
    scene.stage.origin.restart(scene.stage.state.clone());
    scene.wait_for(n, "the writes to arrive with Background Sync refused").await;
    assert_eq!(scene.stored().await, want(n));
    scene.chromium.close().await;
}

/// What the page sends as write `i` to the inbox: JSON, FormData with a
/// file, or binary (write 2 is 1 MiB). JS and Rust make the same bytes.
const MIXED_WRITES: &str = r#"
window.fileBytes = (i, n, mul) => { const b = new Uint8Array(n); for (let k = 0; k < n; k++) b[k] = (k * mul + i) & 255; return b; };
window.sendMixed = async (i) => {
  let init;
  if (i % 3 === 0) {
    init = { headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ i, text: `json ${i}` }) };
  } else if (i % 3 === 1) {
    const fd = new FormData();
    fd.append('i', String(i));
    fd.append('file', new Blob([fileBytes(i, 1000 + i, 7)], { type: 'application/octet-stream' }), `f${i}.bin`);
    init = { body: fd };
  } else {
    init = { headers: { 'Content-Type': 'application/octet-stream' }, body: fileBytes(i, i === 2 ? 1 << 20 : 5000 + i, 31) };
  }
  const r = await fetch('/api/inbox', { method: 'POST', ...init });
  return r.status;
};
true
"#;

fn file_bytes(i: usize, n: usize, mul: usize) -> Vec<u8> {
    (0..n).map(|k| ((k * mul + i) & 255) as u8).collect()
}

/// The file part of a `multipart/form-data` body, and the `i` field.
fn form_parts(content_type: &str, body: &[u8]) -> (String, Vec<u8>) {
    let boundary = content_type.split("boundary=").nth(1).expect("a boundary").trim_matches('"');
    let delimiter = format!("\r\n--{boundary}");
    let text_end = |from: usize| {
        body[from..].windows(delimiter.len()).position(|w| w == delimiter.as_bytes()).map(|p| from + p).unwrap()
    };
    let part = |name: &str| {
        let marker = format!("name=\"{name}\"");
        let at = body.windows(marker.len()).position(|w| w == marker.as_bytes()).expect("the part");
        let start = at + body[at..].windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        body[start..text_end(start)].to_vec()
    };
    (String::from_utf8(part("i")).unwrap(), part("file"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_formdata_and_binary_bodies_replay_byte_identical_once_in_order() {
    let mut scene = Scene::new("{}").await;
    scene.tab.eval(MIXED_WRITES).await;
    scene.origin.stop();
    let n = 200;
    for i in 0..n {
        assert_eq!(scene.tab.eval(&format!("sendMixed({i})")).await, 202, "write {i}");
    }
    scene.stage.origin.restart(scene.stage.state.clone());
    scene.sync().await;
    let rows: Vec<(String, Vec<u8>)> = wait_until("all 200 bodies at the origin", PATIENCE * 2, || async {
        let _ = scene.tab.try_eval("outpost.status()").await;
        let rows: Vec<(String, Vec<u8>)> = sqlx::query_as("SELECT content_type, body FROM inbox ORDER BY id")
            .fetch_all(&scene.state.api.db.pool)
            .await
            .unwrap();
        (rows.len() >= n).then_some(rows)
    })
    .await;
    assert_eq!(rows.len(), n, "exactly once");
    for (i, (content_type, body)) in rows.iter().enumerate() {
        match i % 3 {
            0 => {
                assert_eq!(content_type, "application/json", "write {i}");
                assert_eq!(body, format!(r#"{{"i":{i},"text":"json {i}"}}"#).as_bytes(), "write {i}");
            }
            1 => {
                assert!(content_type.starts_with("multipart/form-data; boundary="), "write {i}: {content_type}");
                let (field, file) = form_parts(content_type, body);
                assert_eq!(field, i.to_string(), "in order");
                assert!(file == file_bytes(i, 1000 + i, 7), "write {i}: the file arrived intact");
            }
            _ => {
                assert_eq!(content_type, "application/octet-stream", "write {i}");
                let len = if i == 2 { 1 << 20 } else { 5000 + i };
                assert!(*body == file_bytes(i, len, 31), "write {i}: {} bytes, byte-identical", body.len());
            }
        }
    }
    scene.chromium.close().await;
}

/// The origin's first `messages/batch` answer comes late and is a 503.
fn slow_first_failure(state: AppState) -> axum::Router {
    use axum::extract::Request;
    use axum::http::StatusCode;
    use axum::middleware::Next;
    use axum::response::IntoResponse;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let first = Arc::new(AtomicBool::new(true));
    outpost::app(state).layer(axum::middleware::from_fn(move |req: Request, next: Next| {
        let first = Arc::clone(&first);
        async move {
            if req.uri().path() == "/api/chat/messages/batch" && first.swap(false, Ordering::SeqCst) {
                tokio::time::sleep(std::time::Duration::from_millis(400)).await;
                return (StatusCode::SERVICE_UNAVAILABLE, "injected slow 503").into_response();
            }
            next.run(req).await
        }
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_sent_together_keep_their_order_when_the_first_fails() {
    let scene = Scene::serving(FAST, slow_first_failure).await;
    // The page does not wait between writes: all five are out at once.
    let statuses = scene
        .tab
        .eval(&format!(
            "Promise.all([0, 1, 2, 3, 4].map((i) => fetch('/api/chat/messages/batch', {{ method: 'POST', \
             headers: {{ 'Content-Type': 'application/json' }}, body: JSON.stringify({{ messages: [{{ tempId: 't' + i, \
             sessionId: '{}', role: 'user', content: 'message 00' + i, createdAt: 1 }}] }}) }}).then((r) => r.status)))",
            scene.session
        ))
        .await;
    assert_eq!(statuses[0], 202, "the first failed and was queued: {statuses}");
    scene.wait_for(5, "all five writes").await;
    assert_eq!(scene.stored().await, want(5), "in the order the page sent them");
    let mut scene = scene;
    scene.chromium.close().await;
}

type Counter = std::sync::Arc<std::sync::atomic::AtomicUsize>;

/// The origin, counting the batch requests it receives in `count`.
fn counting_batches(state: AppState, count: &Counter) -> axum::Router {
    use axum::extract::Request;
    use axum::middleware::Next;
    let count = std::sync::Arc::clone(count);
    outpost::app(state).layer(axum::middleware::from_fn(move |req: Request, next: Next| {
        let count = std::sync::Arc::clone(&count);
        async move {
            if req.uri().path() == "/api/chat/messages/batch" {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            next.run(req).await
        }
    }))
}

/// 300 messages queued offline, one write each, go back merged into
/// batches of at most `batchMaxItems` (15): stored once each, in order, in
/// at most 25 requests, though the worker is killed twice mid-replay (a
/// merged batch sent again after a kill stores nothing twice: the origin
/// keeps each tempId once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_messages_are_replayed_in_merged_batches_once_each_in_order() {
    use std::sync::atomic::Ordering;
    let count = Counter::default();
    let c = Counter::clone(&count);
    let mut scene = Scene::serving("{}", move |state| counting_batches(state, &c)).await;
    let n = 300;
    scene.queue_offline(n).await;
    scene.stage.origin.restart_app(counting_batches(scene.stage.state.clone(), &count));
    let before = count.load(Ordering::SeqCst);
    for kill in 0..2 {
        scene.sync().await;
        // Let some batches through, then stop the worker mid-replay.
        let reached = 60 * (kill + 1);
        wait_until("batches to arrive before the kill", PATIENCE, || async {
            (scene.stored().await.len() >= reached).then_some(())
        })
        .await;
        scene.tab.stop_all_workers().await;
    }
    scene.sync().await;
    scene.wait_for(n, "every message to arrive").await;
    assert_eq!(scene.stored().await, want(n), "0 lost, 0 duplicated, in order");
    let requests = count.load(Ordering::SeqCst) - before;
    println!("outbox: {n} queued messages replayed in {requests} batch requests");
    assert!(requests <= 25, "{requests} requests for {n} messages");
    scene.chromium.close().await;
}

/// 100 messages typed quickly online (one write each, 10 ms apart) reach the
/// origin in at most 8 batch requests (held up to `batchDelayMs` or
/// `batchMaxItems` while a burst lasts), each stored once, in order, and
/// every page request is answered with its own mapping. An isolated write
/// goes at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_typed_quickly_online_go_in_batches_each_answered_with_its_own_mapping() {
    use std::sync::atomic::Ordering;
    let count = Counter::default();
    let c = Counter::clone(&count);
    let scene = Scene::serving("{}", move |state| counting_batches(state, &c)).await;
    let before = count.load(Ordering::SeqCst);
    let answers = scene
        .tab
        .eval(&format!(
            "(async () => {{ const sent = []; for (let i = 0; i < 100; i++) {{ \
               sent.push(post('/api/chat/messages/batch', {{ messages: [{{ tempId: 't' + i, sessionId: '{}', role: 'user', \
                 content: 'message ' + String(i).padStart(3, '0'), createdAt: 1 }}] }})); \
               await new Promise((r) => setTimeout(r, 10)); }} \
             return Promise.all(sent); }})()",
            scene.session
        ))
        .await;
    let answers = answers.as_array().unwrap();
    for (i, a) in answers.iter().enumerate() {
        assert_eq!(a["status"], 200, "{a}");
        let mappings = a["body"]["mappings"].as_array().unwrap();
        assert_eq!(mappings.len(), 1, "write {i} gets only its own mapping: {a}");
        assert_eq!(mappings[0]["tempId"], format!("t{i}"));
    }
    let requests = count.load(Ordering::SeqCst) - before;
    println!("outbox: 100 messages typed 10 ms apart went in {requests} batch requests");
    assert!(requests <= 8, "{requests} requests");
    assert_eq!(scene.stored().await, want(100), "once each, in order");
    // A write long after the burst is not held: it is answered before the
    // batch delay could have passed.
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    let lone = scene
        .tab
        .eval(&format!(
            "(async () => {{ const t = performance.now(); const r = await post('/api/chat/messages/batch', {{ messages: \
               [{{ tempId: 'lone', sessionId: '{}', role: 'user', content: 'message 100', createdAt: 1 }}] }}); \
             return {{ status: r.status, held: performance.now() - t >= 2000 }}; }})()",
            scene.session
        ))
        .await;
    assert_eq!(lone, serde_json::json!({ "status": 200, "held": false }));
}
