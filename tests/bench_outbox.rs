//! On-demand measurements of the outbox in Chromium (not part of the test
//! command; they assert nothing about speed):
//!
//!     cargo test --release --test bench_outbox -- --ignored --nocapture
//!     OUTPOST_BENCH_CONFIG='{"batches": []}' cargo test --release --test bench_outbox -- --ignored --nocapture
//!
//! Prints enqueue and replay rates for 1,000 writes against a loopback
//! origin, the p50/p99 of a GET the worker passes through and of a read
//! route (network-first online, from the cache offline), each beside the
//! same GET with no worker.

mod harness;

use std::time::Instant;

use harness::{wait_until, Chromium, Origin, LATENCY, PATIENCE};

const N: usize = 1000;

async fn count(state: &outpost::AppState) -> usize {
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM chat_messages").fetch_one(&state.api.db.pool).await.unwrap();
    n as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run on demand with --ignored --nocapture"]
async fn outbox_rates() {
    let (state, _data) = harness::sqlite_state().await;
    let mut origin = Origin::start(state.clone());

    // Without a worker: a fresh profile that never registers one.
    let mut plain = Chromium::launch().await;
    let tab = plain.open(&origin.url("/api/health")).await;
    let bare = tab.eval(&format!("{LATENCY}('/api/health', 300)")).await;
    let login = tab
        .eval("fetch('/api/auth/login', {method:'POST', headers:{'Content-Type':'application/json'}, body: JSON.stringify({user:'plain'})}).then(r => r.status)")
        .await;
    assert_eq!(login, 200);
    let bare_read = tab.eval(&format!("{LATENCY}('/api/projects', 300)")).await;
    drop(tab);
    plain.close().await;

    let mut chromium = Chromium::launch().await;
    let tab = chromium.open(&origin.url("/api/health")).await;
    // OUTPOST_BENCH_CONFIG: the worker's config, e.g. `{"batches": []}` to
    // replay without merging queued batch writes, beside the default.
    let config = std::env::var("OUTPOST_BENCH_CONFIG").unwrap_or_else(|_| "{}".into());
    tab.register_outpost_with(&config).await;
    println!("outbox bench, worker config {config}");
    let through = tab.eval(&format!("{LATENCY}('/api/health', 300)")).await;
    let login = tab
        .eval("fetch('/api/auth/login', {method:'POST', headers:{'Content-Type':'application/json'}, body: JSON.stringify({user:'bench'})}).then(r => r.status)")
        .await;
    assert_eq!(login, 200);
    let session = tab
        .eval("fetch('/api/chat/sessions', {method:'POST', headers:{'Content-Type':'application/json'}, body: JSON.stringify({title:'bench'})}).then(r => r.json()).then(b => b.id)")
        .await;
    let session = session.as_str().unwrap().to_string();
    let read_online = tab.eval(&format!("{LATENCY}('/api/projects', 300)")).await;

    origin.stop();
    let read_offline = tab.eval(&format!("{LATENCY}('/api/projects', 300)")).await;
    let started = Instant::now();
    let queued = tab
        .eval(&format!(
            r#"(async () => {{
                let queued = 0;
                for (let i = 0; i < {N}; i++) {{
                    const body = {{ messages: [{{ tempId: 't' + i, sessionId: '{session}', role: 'user', content: 'message ' + i, createdAt: i }}] }};
                    const r = await fetch('/api/chat/messages/batch', {{ method: 'POST', headers: {{ 'Content-Type': 'application/json' }}, body: JSON.stringify(body) }});
                    if (r.status === 202) queued++;
                }}
                return queued;
            }})()"#
        ))
        .await;
    let enqueue = started.elapsed();
    assert_eq!(queued, N);

    origin.restart(state.clone());
    let started = Instant::now();
    tab.dispatch_sync(&origin.origin(), "outpost-outbox", false).await;
    wait_until("the replay to finish", PATIENCE * 10, || async { (count(&state).await >= N).then_some(()) }).await;
    let replay = started.elapsed();
    assert_eq!(count(&state).await, N);

    println!("| measurement | value |");
    println!("|---|---|");
    println!(
        "| enqueue {N} writes, origin down (sequential fetches from the page) | {:.0} writes/s ({:.2} s) |",
        N as f64 / enqueue.as_secs_f64(),
        enqueue.as_secs_f64()
    );
    println!(
        "| replay {N} writes after a sync event, loopback origin | {:.0} writes/s ({:.2} s) |",
        N as f64 / replay.as_secs_f64(),
        replay.as_secs_f64()
    );
    println!(
        "| GET /api/health p50 / p99, no worker | {:.2} / {:.2} ms |",
        bare[0].as_f64().unwrap(),
        bare[1].as_f64().unwrap()
    );
    println!(
        "| GET /api/health p50 / p99, through the worker (not claimed) | {:.2} / {:.2} ms |",
        through[0].as_f64().unwrap(),
        through[1].as_f64().unwrap()
    );
    let row = |what: &str, v: &serde_json::Value| {
        println!("| {what} | {:.2} / {:.2} ms |", v[0].as_f64().unwrap(), v[1].as_f64().unwrap());
    };
    row("GET /api/projects p50 / p99, no worker", &bare_read);
    row("GET /api/projects p50 / p99, through the worker online (network first, copy stored)", &read_online);
    row("GET /api/projects p50 / p99, through the worker offline (stored copy)", &read_offline);
    chromium.close().await;
}
