//! The promise as people meet it: writes and uploads made while the origin
//! is gone arrive by themselves once it is back, in real time, in Chromium
//! and in Firefox, with a page that just sits there. Nothing here fires a
//! sync event, calls `flush()` or denies Background Sync: the browsers and
//! the worker are left to themselves, as they are for the app's users.
//!
//! `OUTPOST_OUTAGE_SECS` shortens the outage for a quick local run (90 by
//! default, the length the contract's tests name).

mod harness;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::firefox::{Firefox, IDLE_EXTENDED_TIMEOUT_MS, IDLE_TIMEOUT_MS};
use harness::scenes::{assert_clean, page_now, queue_upload, queue_writes, setup, want, World, PAGE, WRITES};
use harness::webkit::WebKit;
use harness::{wait_until, Chromium, Js, PATIENCE};
use outpost::AppState;
use serde_json::{json, Value};

/// How soon after the origin's return everything must be stored.
const DEADLINE: Duration = Duration::from_secs(5);

fn outage() -> Duration {
    let secs = std::env::var("OUTPOST_OUTAGE_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(90);
    Duration::from_secs(secs)
}

/// Waits until `n` writes and `uploads` uploads are stored, at most
/// `DEADLINE`; says how long after `since` that was.
async fn delivered(w: &World, session: &str, n: usize, uploads: usize, since: Instant, what: &str) -> Duration {
    let what = what.replace("{outage}", &format!("{} s outage", outage().as_secs()));
    let took = w.stored_within(session, n, uploads, since, DEADLINE, &what).await;
    println!("delivery: {what}: everything stored {} ms after the origin's return", took.as_millis());
    took
}

/// Sleeps until `at` (the outage itself is real time, on purpose).
async fn until(at: Instant) {
    tokio::time::sleep(at.saturating_duration_since(Instant::now())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_writes_and_an_upload_made_in_an_outage_arrive_by_themselves() {
    let mut w = World::new().await;
    let chromium = Chromium::launch().await;
    let tab = chromium.open(&w.origin.url(PAGE)).await;
    let session = setup(&tab).await;
    w.origin.stop();
    let start = Instant::now();
    queue_writes(&tab, &session, WRITES).await;
    queue_upload(&tab).await;
    // Half way, the worker is stopped (its timer with it), as browsers stop
    // an idle worker; Background Sync stays available all along. Chromium
    // fired the sync event when the writes were queued, and it failed: the
    // registration is kept, so the browser would wake the worker again even
    // with no page open. (Asked of the registration, not of the worker.)
    until(start + outage() / 2).await;
    let tags = tab.eval("navigator.serviceWorker.ready.then((r) => r.sync.getTags())").await;
    assert_eq!(tags, json!(["outpost-outbox"]), "Background Sync stays registered while writes wait");
    tab.stop_all_workers().await;
    until(start + outage()).await;
    let back = w.up();
    delivered(&w, &session, WRITES, 1, back, "Chromium, {outage}, worker stopped mid-way").await;
    assert_clean(&tab, "Chromium").await;
}

/// The origin answering 503 to every write while `refuse` is set; the
/// time of each write request it saw.
fn refusing_app(state: AppState, refuse: Arc<AtomicBool>, seen: Arc<Mutex<Vec<Instant>>>) -> axum::Router {
    use axum::extract::Request;
    use axum::http::StatusCode;
    use axum::middleware::Next;
    use axum::response::IntoResponse;
    outpost::app(state).layer(axum::middleware::from_fn(move |req: Request, next: Next| {
        let (refuse, seen) = (Arc::clone(&refuse), Arc::clone(&seen));
        async move {
            if req.uri().path() != "/api/chat/messages/batch" {
                return next.run(req).await;
            }
            seen.lock().unwrap().push(Instant::now());
            if refuse.load(Ordering::SeqCst) {
                return (StatusCode::SERVICE_UNAVAILABLE, "refusing").into_response();
            }
            next.run(req).await
        }
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_an_origin_answering_503_sees_the_seeds_backoff_then_a_dead_letter_then_retry_delivers() {
    let refuse = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (r, s) = (Arc::clone(&refuse), Arc::clone(&seen));
    let w = World::serving(move |state| refusing_app(state, Arc::clone(&r), Arc::clone(&s))).await;
    let chromium = Chromium::launch().await;
    let tab = chromium.open(&w.origin.url(PAGE)).await;
    let session = setup(&tab).await;
    refuse.store(true, Ordering::SeqCst);
    queue_writes(&tab, &session, 1).await;
    // The first attempt and 5 retries, as the origin saw them.
    let log = wait_until("six attempts at the origin", Duration::from_secs(90), || async {
        let log = seen.lock().unwrap().clone();
        (log.len() >= 6).then_some(log)
    })
    .await;
    let dead = wait_until("the dead letter", PATIENCE, || async {
        let s = tab.try_eval("outpost.status()").await.ok()?;
        s["deadLetters"].as_array().and_then(|d| d.first().cloned())
    })
    .await;
    let gaps: Vec<f64> = log.windows(2).map(|p| (p[1] - p[0]).as_secs_f64()).collect();
    println!("delivery: Chromium, origin answering 503: retries after {gaps:.2?} s");
    assert_eq!(seen.lock().unwrap().len(), 6, "no attempt after the last retry: {gaps:.2?}");
    for (gap, step) in gaps.iter().zip([2.0, 4.0, 8.0, 16.0, 32.0]) {
        // ±20 % jitter, plus up to a second for the worker's own work
        // between its timer and the request (IndexedDB reads under load),
        // plus the page client's 0.5 s of slack when the browser stopped the
        // idle worker before the retry was due and the page woke it.
        assert!(
            *gap >= step * 0.8 - 0.5 && *gap <= step * 1.2 + 1.5,
            "retries after {gaps:.2?} s, not 2, 4, 8, 16, 32"
        );
    }
    assert!(dead["reason"].as_str().unwrap().contains("retries exhausted (last answer HTTP 503)"), "{dead}");
    // The origin is well again; the person presses Retry.
    refuse.store(false, Ordering::SeqCst);
    let id = dead["id"].as_str().unwrap();
    assert_eq!(tab.eval(&format!("outpost.retry('{id}')")).await, true);
    let stored = wait_until("the retried write", PATIENCE, || async {
        let m = harness::messages_of(&w.state, &session).await;
        (!m.is_empty()).then_some(m)
    })
    .await;
    assert_eq!(stored, want(1));
    assert_clean(&tab, "Chromium after Retry").await;
}

/// Writes and a 2 MiB upload queued in an outage with the tab left open;
/// everything stored within the deadline of the origin's return. Returns
/// the worker's status at the end and when the writes were queued (page clock).
async fn left_open<T: Js>(w: &mut World, tab: &T, what: &str) -> (Value, u64) {
    let session = setup(tab).await;
    w.origin.stop();
    let start = Instant::now();
    queue_writes(tab, &session, WRITES).await;
    queue_upload(tab).await;
    let queued_at = page_now(tab).await;
    until(start + outage()).await;
    let back = w.up();
    delivered(w, &session, WRITES, 1, back, what).await;
    (assert_clean(tab, what).await, queued_at)
}

/// Writes queued in an outage, then the tab closed (by `close`); after the
/// outage a tab opens again (by `open`), and that start of the worker sends
/// them.
async fn reopened<T: Js, U: Js>(
    w: &mut World,
    tab: T,
    close: impl AsyncFnOnce(T),
    open: impl AsyncFnOnce(String) -> U,
    what: &str,
) {
    let session = setup(&tab).await;
    w.origin.stop();
    let start = Instant::now();
    queue_writes(&tab, &session, WRITES).await;
    close(tab).await;
    until(start + outage()).await;
    w.up();
    // No page, no Background Sync: the worker's next start sends them.
    let opened = Instant::now();
    let tab = open(w.origin.url(PAGE)).await;
    delivered(w, &session, WRITES, 0, opened, what).await;
    tab.register_outpost_with("{}").await;
    assert_clean(&tab, what).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firefox_writes_and_an_upload_made_in_an_outage_arrive_with_the_tab_left_open() {
    let mut w = World::new().await;
    let firefox = Firefox::launch().await;
    let tab = firefox.open(&w.origin.url(PAGE)).await;
    // Firefox has no Background Sync, and stops the idle worker within
    // seconds here: only the open page can wake it.
    let (status, queued_at) = left_open(&mut w, &tab, "Firefox, {outage}, tab left open").await;
    let started = status["workerStartedAt"].as_u64().unwrap();
    assert!(started > queued_at, "the worker that queued the writes was stopped meanwhile ({started} <= {queued_at})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firefox_writes_made_in_an_outage_arrive_when_the_app_is_opened_again() {
    let mut w = World::new().await;
    let firefox = Firefox::launch().await;
    let tab = firefox.open(&w.origin.url(PAGE)).await;
    let what = "Firefox, {outage}, tab closed and opened again";
    reopened(&mut w, tab, async |t| t.close().await, async |url| firefox.open(&url).await, what).await;
}

/// WebKit has no Background Sync and no way to stop its worker from
/// outside; its automation session is ephemeral, like a private window,
/// where IndexedDB refuses Blobs: the upload must still be kept and sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webkit_writes_and_an_upload_made_in_an_outage_arrive_with_the_tab_left_open() {
    let mut w = World::new().await;
    let webkit = WebKit::launch().await;
    let tab = webkit.open(&w.origin.url(PAGE)).await;
    println!("delivery: WebKit leaves out stopping the worker: nothing outside it can, and it has no idle timeout to shorten");
    left_open(&mut w, &tab, "WebKit, {outage}, tab left open").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webkit_writes_made_in_an_outage_arrive_when_the_app_is_opened_again() {
    let mut w = World::new().await;
    let webkit = WebKit::launch().await;
    let tab = webkit.open(&w.origin.url(PAGE)).await;
    let what = "WebKit, {outage}, tab closed and opened again";
    reopened(&mut w, tab, async |t| t.close().await, async |url| webkit.open(&url).await, what).await;
}

/// The origin, holding every upload call (presign, complete) `hold` before
/// it answers.
fn slow_upload_app(state: AppState, hold: Duration) -> axum::Router {
    use axum::extract::Request;
    use axum::middleware::Next;
    outpost::app(state).layer(axum::middleware::from_fn(move |req: Request, next: Next| async move {
        let path = req.uri().path();
        if path == "/api/assets/presign" || path.ends_with("/complete") {
            tokio::time::sleep(hold).await;
        }
        next.run(req).await
    }))
}

/// Firefox stops a worker whose pass no event keeps alive (one its own
/// timer started) once it has idled past its timeout, and caps any event's
/// keep-alive at the extended timeout. An upload whose calls each take
/// longer than the idle timeout, and whose pass takes longer than the
/// extended one, must still arrive with the tab left open: the page keeps
/// waking the worker while a pass runs, and wakes it again when the
/// browser stopped it mid-pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firefox_an_upload_slower_than_the_workers_lifetime_arrives_with_the_tab_left_open() {
    let hold = Duration::from_millis(u64::from(IDLE_EXTENDED_TIMEOUT_MS) * 6 / 10);
    assert!(hold > Duration::from_millis(u64::from(IDLE_TIMEOUT_MS)) * 2);
    let mut w = World::new().await;
    let firefox = Firefox::launch().await;
    let tab = firefox.open(&w.origin.url(PAGE)).await;
    setup(&tab).await;
    w.origin.stop();
    queue_upload(&tab).await;
    let queued_at = page_now(&tab).await;
    w.origin.restart_app(slow_upload_app(w.state.clone(), hold));
    let back = Instant::now();
    // Presign and complete, each held, with the PUT between: a pass longer
    // than the extended timeout. A stopped worker redoes the held call.
    let deadline = hold * 6 + PATIENCE;
    let took = wait_until("the slow upload", deadline, || async { (w.uploaded().await >= 1).then(Instant::now) }).await;
    println!(
        "delivery: Firefox, upload calls held {} ms each: stored {} ms after the origin's return",
        hold.as_millis(),
        (took - back).as_millis()
    );
    let status = assert_clean(&tab, "Firefox, slow upload").await;
    let started = status["workerStartedAt"].as_u64().unwrap();
    assert!(started > queued_at, "the worker that queued the upload was stopped meanwhile ({started} <= {queued_at})");
}
