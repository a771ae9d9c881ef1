//! The outbox in Chromium against the real origin: every scenario ends by
//! comparing what the origin stored with what the page sent.

mod harness;

use harness::{wait_until, Chromium, Origin, Tab, PATIENCE};
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

/// Logs in as `user`, registers the worker, makes a session; returns its id.
async fn setup(tab: &Tab, user: &str) -> String {
    setup_with(tab, user, "{}").await
}

/// The same, with a worker config.
async fn setup_with(tab: &Tab, user: &str, config: &str) -> String {
    tab.register_outpost_with(config).await;
    tab.eval(HELPERS).await;
    let login = tab.eval(&format!("post('/api/auth/login', {{ user: '{user}' }})")).await;
    assert_eq!(login["status"], 200, "{login}");
    let s = tab.eval("post('/api/chat/sessions', { title: 'offline' })").await;
    assert_eq!(s["status"], 201, "{s}");
    s["body"]["id"].as_str().unwrap().to_string()
}

/// The messages the origin stored for `session`, oldest first.
async fn stored(state: &AppState, session: &str) -> Vec<String> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT content FROM chat_messages WHERE session_id = $1 ORDER BY created_at, id")
            .bind(session)
            .fetch_all(&state.api.db.pool)
            .await
            .unwrap();
    rows.into_iter().map(|r| r.0).collect()
}

fn batch(session: &str, i: usize) -> Value {
    json!({ "messages": [{ "tempId": format!("t{i}"), "sessionId": session, "role": "user", "content": format!("message {i:03}"), "createdAt": 1 }] })
}

/// Sends a batch from the page; returns the answer.
async fn send(tab: &Tab, session: &str, i: usize) -> Value {
    tab.eval(&format!("post('/api/chat/messages/batch', {})", batch(session, i))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_queued_offline_are_delivered_once_in_order_on_sync() {
    let (state, _data) = harness::sqlite_state().await;
    let mut origin = Origin::start(state.clone());
    let mut chromium = Chromium::launch().await;
    let tab = chromium.open(&origin.url(PAGE)).await;
    let session = setup(&tab, "alice").await;

    origin.stop();
    let n = 40;
    let mut ids = Vec::new();
    for i in 0..n {
        let r = send(&tab, &session, i).await;
        assert_eq!(r["status"], 202, "{r}");
        assert_eq!(r["body"]["queued"], true);
        assert_eq!(r["headers"]["outpost-queued"], r["body"]["id"]);
        assert!(r["body"]["idempotencyKey"].as_str().is_some_and(|k| k.len() >= 16));
        ids.push(r["body"]["id"].as_str().unwrap().to_string());
    }
    let status = tab.eval("outpost.status()").await;
    assert_eq!(status["pending"], n);
    assert!(stored(&state, &session).await.is_empty());

    origin.restart(state.clone());
    tab.dispatch_sync(&origin.origin(), "outpost-outbox", false).await;
    let want: Vec<String> = (0..n).map(|i| format!("message {i:03}")).collect();
    wait_until("the origin to hold every queued write", PATIENCE, || async {
        (stored(&state, &session).await.len() >= n).then_some(())
    })
    .await;
    assert_eq!(stored(&state, &session).await, want, "exactly once, in order");
    wait_until("the outbox to empty", PATIENCE, || async {
        (tab.eval("outpost.status()").await["pending"] == 0).then_some(())
    })
    .await;
    chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_worker_mid_replay_loses_and_duplicates_nothing() {
    let (state, _data) = harness::sqlite_state().await;
    let mut origin = Origin::start(state.clone());
    let mut chromium = Chromium::launch().await;
    let tab = chromium.open(&origin.url(PAGE)).await;
    let session = setup(&tab, "alice").await;
    origin.stop();
    let n = 60;
    for i in 0..n {
        assert_eq!(send(&tab, &session, i).await["status"], 202);
    }
    origin.restart(state.clone());
    // Start replays and kill the worker while they run, again and again.
    for _ in 0..5 {
        tab.dispatch_sync(&origin.origin(), "outpost-outbox", false).await;
        tokio::time::sleep(std::time::Duration::from_millis(40)).await;
        tab.stop_all_workers().await;
    }
    tab.dispatch_sync(&origin.origin(), "outpost-outbox", false).await;
    wait_until("every write to arrive", PATIENCE, || async {
        (stored(&state, &session).await.len() >= n).then_some(())
    })
    .await;
    let want: Vec<String> = (0..n).map(|i| format!("message {i:03}")).collect();
    assert_eq!(stored(&state, &session).await, want, "0 lost, 0 duplicated, in order");
    chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_write_is_dead_lettered_and_can_be_retried_or_discarded() {
    let (state, _data) = harness::sqlite_state().await;
    let mut origin = Origin::start(state.clone());
    let mut chromium = Chromium::launch().await;
    let tab = chromium.open(&origin.url(PAGE)).await;
    let session = setup(&tab, "alice").await;
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
    let (state, _data) = harness::sqlite_state().await;
    let mut origin = Origin::start(state.clone());
    let mut chromium = Chromium::launch().await;
    let tab = chromium.open(&origin.url(PAGE)).await;
    let session = setup(&tab, "alice").await;
    origin.stop();
    for i in 0..3 {
        assert_eq!(send(&tab, &session, i).await["status"], 202);
    }
    // Damage the outbox by hand: garbage under a key between real entries.
    tab.eval(
        r#"new Promise((resolve, reject) => {
            const open = indexedDB.open('outpost');
            open.onsuccess = () => {
              const tx = open.result.transaction('outbox', 'readwrite');
              tx.objectStore('outbox').put(new Uint8Array([1, 255, 255, 255, 7]), 1.5);
              tx.objectStore('outbox').put('not even bytes', 2.5);
              tx.oncomplete = () => { open.result.close(); resolve(true); };
              tx.onerror = () => reject(tx.error);
            };
            open.onerror = () => reject(open.error);
        })"#,
    )
    .await;
    origin.restart(state.clone());
    let status = tab.eval("outpost.flush()").await;
    assert_eq!(stored(&state, &session).await, ["message 000", "message 001", "message 002"]);
    let dead = status["deadLetters"].as_array().unwrap();
    assert_eq!(dead.len(), 2, "{status}");
    assert!(dead.iter().all(|d| d["reason"].as_str().unwrap().contains("unreadable")));
    for d in dead {
        assert_eq!(tab.eval(&format!("outpost.discard('{}')", d["id"].as_str().unwrap())).await, true);
    }
    assert!(tab.eval("outpost.status()").await["deadLetters"].as_array().unwrap().is_empty());
    chromium.close().await;
}

/// Fast backoff, so retry-heavy scenarios finish in seconds.
const FAST: &str = "{ backoffMs: [200, 400, 800, 1600, 3200] }";

/// The origin with faults on `messages/batch`: of every ten requests, three
/// get a 503 without being processed, and one is processed and then loses
/// its connection before the answer (a crash after commit). Deterministic,
/// so no entry can fail more than twice in a row.
fn flaky(state: AppState) -> axum::Router {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_origin_still_gets_every_write_once_in_order() {
    let (state, _data) = harness::sqlite_state().await;
    let mut origin = Origin::start(state.clone());
    let mut chromium = Chromium::launch().await;
    let tab = chromium.open(&origin.url(PAGE)).await;
    let session = setup_with(&tab, "alice", FAST).await;
    origin.stop();
    let n = 30;
    for i in 0..n {
        assert_eq!(send(&tab, &session, i).await["status"], 202);
    }
    origin.restart_app(flaky(state.clone()));
    tab.dispatch_sync(&origin.origin(), "outpost-outbox", false).await;
    wait_until("every write through the flaky origin", PATIENCE, || async {
        // Asking for the status also keeps the worker (and its retry timer) alive.
        let _ = tab.try_eval("outpost.status()").await;
        (stored(&state, &session).await.len() >= n).then_some(())
    })
    .await;
    let want: Vec<String> = (0..n).map(|i| format!("message {i:03}")).collect();
    assert_eq!(stored(&state, &session).await, want, "0 lost, 0 duplicated, in order");
    let status = tab.eval("outpost.status()").await;
    assert!(status["deadLetters"].as_array().unwrap().is_empty(), "{status}");
    chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_writes_survive_a_browser_restart() {
    let (state, _data) = harness::sqlite_state().await;
    let mut origin = Origin::start(state.clone());
    let mut chromium = Chromium::launch().await;
    let tab = chromium.open(&origin.url(PAGE)).await;
    let session = setup_with(&tab, "alice", FAST).await;
    origin.stop();
    let n = 20;
    for i in 0..n {
        assert_eq!(send(&tab, &session, i).await["status"], 202);
    }
    drop(tab);
    chromium.close().await;
    origin.restart(state.clone());

    // A new browser process on the same profile: opening the app starts the
    // worker, and starting is a replay trigger.
    chromium.restart().await;
    let tab = chromium.open(&origin.url(PAGE)).await;
    wait_until("the writes queued before the restart to arrive", PATIENCE, || async {
        (stored(&state, &session).await.len() >= n).then_some(())
    })
    .await;
    let want: Vec<String> = (0..n).map(|i| format!("message {i:03}")).collect();
    assert_eq!(stored(&state, &session).await, want);
    drop(tab);
    chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_write_waits_behind_queued_ones() {
    let (state, _data) = harness::sqlite_state().await;
    // The first batch the origin sees gets a 503; the next ones go through.
    let origin = Origin::start_app(flaky(state.clone()));
    let mut chromium = Chromium::launch().await;
    let tab = chromium.open(&origin.url(PAGE)).await;
    let session = setup_with(&tab, "alice", FAST).await;
    let first = send(&tab, &session, 0).await;
    assert_eq!(first["status"], 202, "the 503 queues the first write: {first}");
    // The origin would take this one, but it must not overtake the first.
    let second = send(&tab, &session, 1).await;
    assert_eq!(second["status"], 202, "{second}");
    wait_until("both writes to arrive", PATIENCE, || async {
        let _ = tab.try_eval("outpost.status()").await;
        (stored(&state, &session).await.len() >= 2).then_some(())
    })
    .await;
    assert_eq!(stored(&state, &session).await, ["message 000", "message 001"]);
    chromium.close().await;
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
    let (state, _data) = harness::sqlite_state().await;
    let mut origin = Origin::start(state.clone());
    let mut chromium = Chromium::launch().await;
    let tab = chromium.open(&origin.url(PAGE)).await;
    let session = setup_with(&tab, "alice", FAST).await;
    origin.stop();
    let n = 10;
    for i in 0..n {
        assert_eq!(send(&tab, &session, i).await["status"], 202);
    }
    origin.restart(state.clone());
    wait_until("the writes to arrive without a sync event", PATIENCE, || async {
        let _ = tab.try_eval("outpost.status()").await;
        (stored(&state, &session).await.len() >= n).then_some(())
    })
    .await;
    let want: Vec<String> = (0..n).map(|i| format!("message {i:03}")).collect();
    assert_eq!(stored(&state, &session).await, want);
    chromium.close().await;
}
