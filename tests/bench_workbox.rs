//! Outpost against Workbox (and no service worker), side by side in the same
//! headless Chromium against the same origin, interleaved over several
//! rounds. Run with `./scripts/bench.sh` (it builds the Workbox worker from
//! npm first); it asserts nothing about speed. It writes `BENCH.md` (and
//! JSON where `OUTPOST_BENCH_JSON` names a file).

mod harness;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use harness::{wait_until, Chromium, Origin, Tab, LATENCY};
use outpost::{AppState, Bundle};
use serde_json::{json, Value};

const N: usize = 1000;
const GETS: usize = 300;
const COLD_STARTS: usize = 5;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    None,
    Workbox,
    Outpost,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::None => "no worker",
            Mode::Workbox => "Workbox",
            Mode::Outpost => "Outpost",
        }
    }
}

fn workbox_sw() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/workbox/dist/workbox-sw.js")
}

fn origin_app(state: AppState) -> axum::Router {
    outpost::app(state).route_service("/workbox-sw.js", tower_http::services::ServeFile::new(workbox_sw()))
}

const WORKBOX_QUEUED: &str = r#"new Promise((resolve, reject) => {
  const open = indexedDB.open('workbox-background-sync');
  open.onerror = () => reject(open.error);
  open.onsuccess = () => {
    const db = open.result;
    if (!db.objectStoreNames.contains('requests')) { db.close(); resolve(0); return; }
    const count = db.transaction('requests').objectStore('requests').count();
    count.onsuccess = () => { db.close(); resolve(count.result); };
    count.onerror = () => reject(count.error);
  };
})"#;

async fn register(tab: &Tab, mode: Mode) {
    match mode {
        Mode::None => {}
        Mode::Outpost => tab.register_outpost().await,
        Mode::Workbox => {
            tab.eval(
                "(async () => { await navigator.serviceWorker.register('/workbox-sw.js'); \
                 await navigator.serviceWorker.ready; if (!navigator.serviceWorker.controller) \
                 await new Promise((r) => navigator.serviceWorker.addEventListener('controllerchange', r, { once: true })); \
                 return true; })()",
            )
            .await;
        }
    }
}

async fn stored(state: &AppState) -> Vec<String> {
    let rows: Vec<(String,)> = sqlx::query_as("SELECT content FROM chat_messages ORDER BY created_at, id")
        .fetch_all(&state.api.db.pool)
        .await
        .unwrap();
    rows.into_iter().map(|r| r.0).collect()
}

/// One mode's measurements in one round.
#[derive(Default, Debug, Clone)]
struct Round {
    enqueue_per_s: Option<f64>,
    replay_per_s: Option<f64>,
    duplicates: Option<usize>,
    out_of_order: Option<usize>,
    lost: Option<usize>,
    pass_p50: f64,
    pass_p99: f64,
    cached_p50: Option<f64>,
    cached_p99: Option<f64>,
    cold_ms: f64,
    /// Outpost only: each cold start's `outpost:timings` (shim/sw.js).
    cold_phases: Vec<Value>,
}

/// The worker's own account of its last start (`outpost:timings`).
const TIMINGS: &str = r#"new Promise((resolve) => {
  const channel = new MessageChannel();
  channel.port1.onmessage = (e) => resolve(e.data);
  navigator.serviceWorker.controller.postMessage({ type: 'outpost:timings' }, [channel.port2]);
})"#;

/// The phases of a cold start, from the worker's timings: (label, from, to).
/// The first answer takes the first five (the bootstrap's cold read, no
/// wasm); the wasm's own start runs beside and after it.
const PHASES: [(&str, &str, &str); 11] = [
    ("worker start → sw.js running (thread, script fetch, compile, glue)", "", "script"),
    ("sw.js running → the cold-read table known (Cache Storage)", "script", "coldRead"),
    ("the fetch event → the bootstrap sends the cold read", "fetch", "coldRead"),
    ("the cold read sent → its answer to the page (the network)", "coldRead", "answered"),
    ("the fetch event → first request answered", "fetch", "answered"),
    ("sw.js running → wasm out of Cache Storage", "script", "cache"),
    ("wasm compiled and instantiated (streaming; starts once the cold read's body is in)", "cache", "wasm"),
    ("`outpostNew()` and `start()` (IndexedDB opens in the background)", "wasm", "ready"),
    ("wasm ready → the wasm holds the database, then the user", "ready", "identity"),
    ("wasm ready → storage ready (outbox, reads, uploads set up)", "ready", "storage"),
    ("the fetch event → wasm ready (what a second request waits for)", "fetch", "ready"),
];

async fn run(mode: Mode) -> Round {
    let (state, _data) = harness::sqlite_state().await;
    let mut origin = Origin::start_app(origin_app(state.clone()));
    let mut chromium = Chromium::launch().await;
    let tab = chromium.open(&origin.url("/api/health")).await;
    register(&tab, mode).await;
    let login = tab.post("/api/auth/login", &json!({ "user": "bench" })).await.unwrap();
    assert_eq!(login["status"], 200);
    let session = tab.post("/api/chat/sessions", &json!({ "title": "bench" })).await.unwrap();
    let session = session["body"]["id"].as_str().unwrap().to_string();
    let project = tab.post("/api/projects", &json!({ "name": "bench" })).await.unwrap();
    assert_eq!(project["status"], 201);

    let mut round = Round::default();
    let pass = tab.eval(&format!("{LATENCY}('/api/health', {GETS})")).await;
    (round.pass_p50, round.pass_p99) = (pass[0].as_f64().unwrap(), pass[1].as_f64().unwrap());
    // The read route once online, so the workers hold a copy.
    assert_eq!(tab.fetch("/api/projects").await.unwrap()["status"], 200);

    // Cold start: workers stopped, time to the first answered fetch.
    let mut colds = Vec::new();
    for _ in 0..COLD_STARTS {
        if mode != Mode::None {
            tab.stop_all_workers().await;
        }
        let ms = tab
            .eval("(async () => { const t = performance.now(); await (await fetch('/api/projects')).text(); return performance.now() - t; })()")
            .await;
        colds.push(ms.as_f64().unwrap());
        if mode == Mode::Outpost {
            let marks = tab.eval(TIMINGS).await;
            eprintln!("cold start marks: {marks}");
            round.cold_phases.push(marks);
        }
    }
    round.cold_ms = median(colds);

    if mode == Mode::None {
        // The floor for a replay: the page itself sending the same writes
        // one after another, online, with nothing in between.
        let started = Instant::now();
        let sent = tab.eval(&send_all(&session)).await;
        assert_eq!(sent, N);
        round.replay_per_s = Some(N as f64 / started.elapsed().as_secs_f64());
        assert_eq!(stored(&state).await.len(), N);
        chromium.close().await;
        return round;
    }

    origin.stop();
    let cached = tab.eval(&format!("{LATENCY}('/api/projects', {GETS})")).await;
    round.cached_p50 = cached[0].as_f64();
    round.cached_p99 = cached[1].as_f64();

    let started = Instant::now();
    let accepted = tab.eval(&send_all(&session)).await;
    let enqueue = started.elapsed();
    assert_eq!(accepted, N);
    let queued = match mode {
        Mode::Outpost => tab.eval("outpost.status()").await["pending"].as_u64().unwrap() as usize,
        _ => tab.eval(WORKBOX_QUEUED).await.as_u64().unwrap() as usize,
    };
    assert_eq!(queued, N, "{} stored every write", mode.name());
    round.enqueue_per_s = Some(N as f64 / enqueue.as_secs_f64());

    origin.restart_app(origin_app(state.clone()));
    let tag = if mode == Mode::Outpost { "outpost-outbox" } else { "workbox-background-sync:outbox" };
    let started = Instant::now();
    tab.dispatch_sync(&origin.origin(), tag, false).await;
    let done = wait_until("the replay", Duration::from_secs(600), || async {
        (stored(&state).await.len() >= N).then_some(started.elapsed())
    })
    .await;
    round.replay_per_s = Some(N as f64 / done.as_secs_f64());
    // Late duplicates would show up after the last first delivery.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = stored(&state).await;
    let want: Vec<String> = (0..N).map(|i| format!("message {i:04}")).collect();
    let mut seen = std::collections::HashSet::new();
    round.duplicates = Some(got.iter().filter(|m| !seen.insert(m.as_str())).count());
    round.lost = Some(want.iter().filter(|m| !seen.contains(m.as_str())).count());
    round.out_of_order = Some(got.windows(2).filter(|w| w[1] < w[0]).count());
    chromium.close().await;
    round
}

/// The page sends `N` message writes one after another; returns how many
/// were accepted (stored by the origin, or queued by the worker).
fn send_all(session: &str) -> String {
    format!(
        r#"(async () => {{
            let accepted = 0;
            for (let i = 0; i < {N}; i++) {{
                const body = {{ messages: [{{ tempId: 't' + i, sessionId: '{session}', role: 'user',
                                              content: 'message ' + String(i).padStart(4, '0'), createdAt: i }}] }};
                try {{
                    const r = await fetch('/api/chat/messages/batch', {{ method: 'POST',
                        headers: {{ 'Content-Type': 'application/json' }}, body: JSON.stringify(body) }});
                    if (r.status === 202 || r.status === 200) accepted++;
                }} catch (_) {{ accepted++; /* Workbox: queued, then the page sees the network error */ }}
            }}
            return accepted;
        }})()"#
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn med(rounds: &[Round], f: impl Fn(&Round) -> Option<f64>) -> Option<f64> {
    let v: Vec<f64> = rounds.iter().filter_map(f).collect();
    (!v.is_empty()).then(|| median(v))
}

fn gzip_len(bytes: &[u8]) -> usize {
    let mut child = std::process::Command::new("gzip")
        .arg("-9c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    child.wait_with_output().unwrap().stdout.len()
}

/// The Workbox version the reference worker was built with (its lockfile).
fn workbox_version() -> String {
    let lock = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/workbox/package-lock.json");
    let lock: Value =
        std::fs::read_to_string(lock).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
    lock["packages"]["node_modules/workbox-core"]["version"].as_str().unwrap_or("unknown").to_string()
}

fn command_line(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run it with ./scripts/bench.sh"]
async fn outpost_against_workbox() {
    assert!(workbox_sw().exists(), "build the Workbox worker first: ./scripts/bench.sh does it");
    let rounds: usize = std::env::var("OUTPOST_BENCH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(3);
    let mut results: Vec<(Mode, Vec<Round>)> =
        vec![(Mode::None, vec![]), (Mode::Workbox, vec![]), (Mode::Outpost, vec![])];
    for r in 0..rounds {
        for (mode, out) in results.iter_mut() {
            eprintln!("round {}/{rounds}: {}", r + 1, mode.name());
            out.push(run(*mode).await);
        }
    }
    let get = |m: Mode| results.iter().find(|(x, _)| *x == m).map(|(_, r)| r.clone()).unwrap();
    let (none, wb, op) = (get(Mode::None), get(Mode::Workbox), get(Mode::Outpost));

    let bundle = Bundle::embedded();
    let outpost_raw = bundle.sw_js.len() + bundle.wasm.len();
    let outpost_gz = gzip_len(&bundle.sw_js) + gzip_len(&bundle.wasm);
    let workbox = std::fs::read(workbox_sw()).unwrap();
    let (workbox_raw, workbox_gz) = (workbox.len(), gzip_len(&workbox));

    let fmt = |v: Option<f64>, unit: &str| v.map_or("n/a".to_string(), |x| format!("{x:.2} {unit}"));
    let ratio = |o: Option<f64>, w: Option<f64>| match (o, w) {
        (Some(o), Some(w)) if w > 0.0 => format!("{:.2}×", o / w),
        _ => "n/a".into(),
    };
    let mut rows: Vec<(String, String, String, String, String)> = Vec::new();
    let mut row = |name: &str, f: &dyn Fn(&[Round]) -> Option<f64>, unit: &str| {
        let (n, w, o) = (f(&none), f(&wb), f(&op));
        rows.push((name.to_string(), fmt(n, unit), fmt(w, unit), fmt(o, unit), ratio(o, w)));
    };
    row(&format!("enqueue {N} writes, origin down (higher is better)"), &|r| med(r, |x| x.enqueue_per_s), "writes/s");
    row(
        &format!("replay {N} writes after the sync event (higher is better)"),
        &|r| med(r, |x| x.replay_per_s),
        "writes/s",
    );
    row("passthrough GET p50, online", &|r| med(r, |x| Some(x.pass_p50)), "ms");
    row("passthrough GET p99, online", &|r| med(r, |x| Some(x.pass_p99)), "ms");
    row("cached read GET p50, offline", &|r| med(r, |x| x.cached_p50), "ms");
    row("cached read GET p99, offline", &|r| med(r, |x| x.cached_p99), "ms");
    row("cold start: workers stopped, first answered read", &|r| med(r, |x| Some(x.cold_ms)), "ms");
    let sum = |r: &[Round], f: fn(&Round) -> Option<usize>| r.iter().filter_map(f).sum::<usize>() as f64;
    for (name, f) in [
        ("lost writes (all rounds)", (|x: &Round| x.lost) as fn(&Round) -> Option<usize>),
        ("duplicated writes (all rounds)", |x: &Round| x.duplicates),
        ("order violations (all rounds)", |x: &Round| x.out_of_order),
    ] {
        rows.push((name.into(), "n/a".into(), format!("{}", sum(&wb, f)), format!("{}", sum(&op, f)), String::new()));
    }
    rows.push((
        "bundle, raw / gzip -9".into(),
        "n/a".into(),
        format!("{:.1} / {:.1} KB", workbox_raw as f64 / 1000.0, workbox_gz as f64 / 1000.0),
        format!("{:.1} / {:.1} KB", outpost_raw as f64 / 1000.0, outpost_gz as f64 / 1000.0),
        format!("{:.2}×", outpost_gz as f64 / workbox_gz as f64),
    ));

    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let browser = command_line("chromium", &["--version"]);
    let date = command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let mut md = String::new();
    md.push_str("# Outpost against Workbox\n\n");
    md.push_str(&format!(
        "Measured by `./scripts/bench.sh` on {date}: {cores} cores ({cpu}), {browser}, headless, loopback origin \
         (the reference server on SQLite). Medians of {rounds} interleaved rounds; each round and each mode gets a \
         fresh browser profile and a fresh database. Workbox {} packages (routing, strategies, background-sync, \
         expiration), production build bundled with esbuild, configured like Outpost's defaults: NetworkFirst with \
         a 3 s timeout on the read routes, BackgroundSyncPlugin on the write routes, ExpirationPlugin on asset \
         content. Outpost bundle {}.\n\n",
        workbox_version(),
        bundle.hash
    ));
    md.push_str("| measurement | no worker | Workbox | Outpost | Outpost / Workbox |\n|---|---|---|---|---|\n");
    for (a, b, c, d, e) in &rows {
        md.push_str(&format!("| {a} | {b} | {c} | {d} | {e} |\n"));
    }
    md.push_str(
        "\nHow each is measured: *enqueue*: the page sends the writes one after another while the origin is down, \
         until the worker has stored them all (Outpost answers `202`; Workbox stores the request, then the page \
         sees the network error). *replay*: from the sync event (fired over CDP, each worker's own tag) until the \
         origin holds every write. *passthrough*: `GET /api/health`, a route neither worker handles (Workbox's \
         fetch event lets it pass; Outpost's static router rule sends it past the worker, which is not \
         consulted). *cached*: \
         `GET /api/projects` with the origin down, answered from each worker's copy. *cold start*: \
         `ServiceWorker.stopAllWorkers`, then one `GET /api/projects`, online, until the page has read its body \
         (Outpost's bootstrap answers it from the network before the wasm is ready: its cold-read table, \
         `docs/contract.md`). Lost, duplicated and out-of-order \
         writes compare what the origin stored with what the page sent.\n",
    );
    // Where Outpost's cold start goes, from inside the worker.
    let phases: Vec<&Value> = op.iter().flat_map(|r| r.cold_phases.iter()).collect();
    if !phases.is_empty() {
        md.push_str(&format!(
            "\n## Where Outpost's cold start goes\n\nMeasured inside the worker (`performance.now()` marks in \
             `shim/sw.js`, answered to `outpost:timings`), medians of the {} cold starts above; times are from the \
             browser starting the worker. The page's figure above also holds the time before that (process and \
             thread start, dispatch).\n\n| phase | ms |\n|---|---|\n",
            phases.len()
        ));
        for (label, from, to) in PHASES {
            let spans: Vec<f64> = phases
                .iter()
                .filter_map(|t| {
                    let end = t[to].as_f64()?;
                    let start = if from.is_empty() { 0.0 } else { t[from].as_f64()? };
                    Some(end - start)
                })
                .collect();
            if !spans.is_empty() {
                md.push_str(&format!("| {label} | {:.2} |\n", median(spans)));
            }
        }
        let answered: Vec<f64> = phases.iter().filter_map(|t| t["answered"].as_f64()).collect();
        if !answered.is_empty() {
            md.push_str(&format!("| worker start → first answer | {:.2} |\n", median(answered)));
        }
    }
    md.push_str(&wasm_composition());
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCH.md");
    std::fs::write(&path, &md).unwrap();
    println!("{md}");
    if let Ok(json_path) = std::env::var("OUTPOST_BENCH_JSON") {
        let to_json =
            |r: &[Round]| -> Value {
                json!(r.iter().map(|x| json!({
                "enqueuePerS": x.enqueue_per_s, "replayPerS": x.replay_per_s, "lost": x.lost,
                "duplicates": x.duplicates, "outOfOrder": x.out_of_order, "passP50": x.pass_p50,
                "passP99": x.pass_p99, "cachedP50": x.cached_p50, "cachedP99": x.cached_p99, "coldMs": x.cold_ms,
            })).collect::<Vec<_>>())
            };
        let out = json!({
            "none": to_json(&none), "workbox": to_json(&wb), "outpost": to_json(&op),
            "bundle": { "outpostRaw": outpost_raw, "outpostGzip": outpost_gz, "workboxRaw": workbox_raw, "workboxGzip": workbox_gz },
        });
        std::fs::write(json_path, serde_json::to_string_pretty(&out).unwrap()).unwrap();
    }
}

/// What the wasm is made of, by crate and by our module, from
/// `scripts/wasm-size.py` on the wasm cargo wrote for this build (before
/// wasm-bindgen, which keeps the names), next to 1 December's figures
/// (before the weight work of issue #16).
fn wasm_composition() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let wasm = target.join("outpost-sw-wasm/wasm32-unknown-unknown/wasm/outpost_sw.wasm");
    let mut md = String::from(
        "\n## What the wasm is made of\n\nFunction bodies of the wasm cargo writes for this bundle, before \
         wasm-bindgen (`python3 scripts/wasm-size.py`; wasm-bindgen's descriptors and the closure shims no glue \
         calls are not shipped). A generic function counts for the crate whose code it is (`core` holds the drop \
         glue and iterators over our types). *1 December* is the wasm before the work of issue #16 (then 589,864 B \
         raw shipped, 225.7 KB gzip bundle).\n\n",
    );
    let out = std::process::Command::new("python3").arg(root.join("scripts/wasm-size.py")).arg(&wasm).output();
    let text = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => {
            md.push_str(&format!("(wasm-size.py failed: {})\n", String::from_utf8_lossy(&o.stderr).trim()));
            return md;
        }
        Err(e) => {
            md.push_str(&format!("(could not run python3 scripts/wasm-size.py: {e})\n"));
            return md;
        }
    };
    let before_crates = [
        ("outpost_sw", 190_792),
        ("core", 118_467),
        ("alloc", 57_286),
        ("js_sys", 77_516),
        ("serde_json", 71_448),
        ("wasm_bindgen", 29_370),
        ("idb + rexie + tokio", 26_096),
        ("serde_core", 13_807),
        ("web_sys", 12_946),
        ("hashbrown", 11_233),
        ("dlmalloc", 7_759),
        ("postcard", 3_460),
    ];
    let before_modules = [
        ("web::outbox", 39_814),
        ("web::uploads", 35_238),
        ("web", 18_913),
        ("core::upload", 17_556),
        ("web::db", 10_447),
        ("web::reads", 10_366),
        ("core::record", 7_022),
        ("web::global", 5_270),
        ("core::protocol", 4_616),
    ];
    let rows = |header: &str| -> Vec<(String, u64)> {
        let mut rows = Vec::new();
        let mut inside = false;
        for line in text.lines() {
            if line.starts_with(header) {
                inside = true;
                continue;
            }
            if inside && line.is_empty() {
                break;
            }
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            if let (true, [name, size]) = (inside, cells.as_slice()) {
                if let Ok(n) = size.parse::<u64>() {
                    rows.push((name.to_string(), n));
                }
            }
        }
        rows
    };
    for (header, title, before) in
        [("| crate ", "crate", &before_crates[..]), ("| outpost_sw module ", "our module", &before_modules[..])]
    {
        let now = rows(header);
        md.push_str(&format!("| {title} | code bytes now | 1 December |\n|---|---|---|\n"));
        for (name, size) in &now {
            if *size < 1000 {
                continue;
            }
            let was = before.iter().find(|(n, _)| n == name).map_or(String::new(), |(_, b)| b.to_string());
            md.push_str(&format!("| {name} | {size} | {was} |\n"));
        }
        for (name, was) in before {
            if !now.iter().any(|(n, _)| n == name) {
                md.push_str(&format!("| {name} | 0 | {was} |\n"));
            }
        }
        md.push('\n');
    }
    md
}

/// Whether V8's compiled-code cache serves the worker's wasm on later cold
/// starts, from a trace: each cold start traced on its own, the `v8.wasm`
/// events counted (`v8.wasm.moduleCacheHit` is a start that got its
/// compiled code from the cache, `v8.wasm.compiledModule`/`cachedModule`
/// one that wrote it), next to the compile phase the worker measured.
/// On demand: `cargo test --release --test bench_workbox wasm_code_cache -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a trace on demand (see the doc comment)"]
async fn wasm_code_cache_on_cold_starts() {
    use chromiumoxide::cdp::browser_protocol::tracing::{
        EndParams, EventDataCollected, EventTracingComplete, StartParams, StartTransferMode, TraceConfig,
    };
    use futures::StreamExt;
    let (state, _data) = harness::sqlite_state().await;
    let origin = Origin::start_app(origin_app(state.clone()));
    let chromium = Chromium::launch().await;
    let tab = chromium.open(&origin.url("/api/health")).await;
    register(&tab, Mode::Outpost).await;
    assert_eq!(tab.post("/api/auth/login", &json!({ "user": "bench" })).await.unwrap()["status"], 200);
    assert_eq!(tab.fetch("/api/projects").await.unwrap()["status"], 200);
    let mut data = tab.page.event_listener::<EventDataCollected>().await.unwrap();
    let mut complete = tab.page.event_listener::<EventTracingComplete>().await.unwrap();
    println!("| cold start | wasm compiled and instantiated | v8.wasm events |\n|---|---|---|");
    for start in 1..=8 {
        // Time for tier-up and a cache write after the previous start.
        tokio::time::sleep(Duration::from_secs(3)).await;
        tab.stop_all_workers().await;
        let config = TraceConfig {
            included_categories: Some(vec!["v8.wasm".into(), "disabled-by-default-v8.wasm.detailed".into()]),
            ..Default::default()
        };
        let params = StartParams {
            trace_config: Some(config),
            transfer_mode: Some(StartTransferMode::ReportEvents),
            ..Default::default()
        };
        tab.page.execute(params).await.expect("Tracing.start");
        assert_eq!(tab.fetch("/api/projects").await.unwrap()["status"], 200);
        let t = tab.eval(TIMINGS).await;
        // Let the cache write (after the worker's first answer) be traced too.
        tokio::time::sleep(Duration::from_secs(3)).await;
        tab.page.execute(EndParams::default()).await.expect("Tracing.end");
        let mut names = std::collections::BTreeMap::<String, usize>::new();
        loop {
            tokio::select! {
                Some(d) = data.next() => {
                    for e in &d.value {
                        if let Some(n) = e["name"].as_str().filter(|n| n.contains("wasm") || n.contains("Wasm")) {
                            *names.entry(n.to_string()).or_default() += 1;
                        }
                    }
                }
                Some(_) = complete.next() => break,
            }
        }
        // Events still queued behind the completion.
        while let Ok(Some(d)) = tokio::time::timeout(Duration::from_millis(200), data.next()).await {
            for e in &d.value {
                if let Some(n) = e["name"].as_str().filter(|n| n.contains("wasm") || n.contains("Wasm")) {
                    *names.entry(n.to_string()).or_default() += 1;
                }
            }
        }
        let compile = t["wasm"].as_f64().unwrap_or(f64::NAN) - t["cache"].as_f64().unwrap_or(f64::NAN);
        let list: Vec<String> = names.iter().map(|(n, c)| format!("{n} ×{c}")).collect();
        println!("| {start} | {compile:.1} ms | {} |", list.join(", "));
    }
}
