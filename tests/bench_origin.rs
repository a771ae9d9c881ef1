//! On-demand load numbers for the origin as it runs at scale (not part of
//! the test command; it asserts nothing about speed). `scripts/bench-origin.sh`
//! runs it:
//!
//!     cargo test --release --test bench_origin -- --ignored --nocapture
//!
//! PostgreSQL through PgBouncer (transaction pooling, 20 server
//! connections) and Garage; `wrk` on loopback:
//! - `POST /api/chat/messages/batch`, 50 new messages per request (fresh
//!   tempIds every time), and `GET /api/sync/init` for a user with 100
//!   sessions and 500 assets, against one instance and then two (each wrk
//!   thread on its own instance, as a balancer would spread them);
//! - a login herd: 200 connections asking `sync/init` for one user, with
//!   the origin's request sharing and without it (`--no-sync-coalescing`).

mod harness;

#[path = "harness/garage.rs"]
mod garage;

use std::process::Command;

use harness::instance::{self, Instance};
use harness::{pg, pgbouncer};
use serde_json::{json, Value};

const KEYS: &str = "be0cbe0cbe0cbe0cbe0cbe0cbe0cbe0cbe0cbe0cbe0cbe0cbe0cbe0cbe0cbe0c";

fn secs() -> u64 {
    std::env::var("OUTPOST_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(10)
}

/// `wrk` with a Lua script, against `targets` (one per thread, round
/// robin); returns (requests/s, p50, p99, non-2xx).
fn wrk(
    dir: &std::path::Path,
    name: &str,
    script: &str,
    targets: &[String],
    threads: usize,
    conns: usize,
    path: &str,
) -> (f64, String, String, String) {
    let spread: Vec<String> = targets
        .iter()
        .map(|t| {
            let (h, p) = t.split_once(':').unwrap();
            format!("{{\"{h}\", \"{p}\"}}")
        })
        .collect();
    let lua = format!(
        "local targets = {{ {} }}\nlocal n = 0\nfunction setup(thread)\n  n = n + 1\n  local t = targets[(n - 1) % #targets + 1]\n  thread.addr = wrk.lookup(t[1], t[2])[1]\n  thread:set(\"tid\", n)\nend\n{script}",
        spread.join(", ")
    );
    let file = dir.join(format!("{name}.lua"));
    std::fs::write(&file, lua).unwrap();
    let out = Command::new("wrk")
        .args(["-t", &threads.to_string(), "-c", &conns.to_string(), "-d", &format!("{}s", secs()), "--latency", "-s"])
        .arg(&file)
        .arg(format!("http://{}{path}", targets[0]))
        .output()
        .unwrap_or_else(|e| panic!("wrk is needed (scripts/bench-origin.sh installs it): {e}"));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| "-".into())
    };
    let rps = field("Requests/sec:").parse().unwrap_or(0.0);
    let non2xx = field("Non-2xx or 3xx responses:");
    (rps, field("50%"), field("99%"), if non2xx == "-" { "0".into() } else { non2xx })
}

async fn seed(base: &str) -> (String, Vec<String>) {
    let http = reqwest::Client::new();
    let login = http
        .post(format!("{base}/api/auth/login"))
        .header("content-type", "application/json")
        .body(json!({ "user": "bench" }).to_string())
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let mut sessions = Vec::new();
    for i in 0..100 {
        let r: Value = http
            .post(format!("{base}/api/chat/sessions"))
            .header("cookie", &cookie)
            .header("content-type", "application/json")
            .body(json!({ "title": format!("session {i}") }).to_string())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .map(|t| serde_json::from_str(&t).unwrap())
            .unwrap();
        sessions.push(r["id"].as_str().unwrap().to_string());
    }
    for i in 0..500 {
        let r = http
            .post(format!("{base}/api/assets/presign"))
            .header("cookie", &cookie)
            .header("content-type", "application/json")
            .body(
                json!({ "op": "put", "filename": format!("a{i}.png"), "contentType": "image/png", "size": 1000 + i })
                    .to_string(),
            )
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    (cookie, sessions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run on demand with --ignored --nocapture (scripts/bench-origin.sh)"]
async fn origin_at_scale() {
    outpost::store::install_tls();
    let pg = tokio::task::spawn_blocking(pg::TestPostgres::start).await.unwrap();
    let bouncer = pgbouncer::PgBouncer::with_pool(pg.port(), 20);
    let garage = tokio::task::spawn_blocking(garage::Garage::start).await.unwrap();
    let direct = pg.url();
    let through = bouncer.url(direct.rsplit('/').next().unwrap());
    let env = instance::env(&through, &direct, &garage.config, &garage.config.endpoint, KEYS);
    let dir = tempfile::tempdir().unwrap();

    let a = Instance::start(&env, &[]);
    let (cookie, sessions) = seed(&format!("http://{}", a.addr)).await;
    let sessions_lua: Vec<String> = sessions.iter().map(|s| format!("\"{s}\"")).collect();
    let batch = format!(
        "local sessions = {{ {} }}\nlocal k = 0\nwrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"Cookie\"] = \"{cookie}\"\n\
         request = function()\n  k = k + 1\n  local parts = {{}}\n  for i = 1, 50 do\n    parts[i] = string.format('{{\"tempId\":\"%s-%d-%d-%d\",\"sessionId\":\"%s\",\"role\":\"user\",\"content\":\"%s\",\"createdAt\":%d}}', tostring(tid), k, i, math.random(1e9), sessions[(k * 50 + i) % #sessions + 1], string.rep(\"x\", 200), i)\n  end\n  return wrk.format(nil, nil, nil, '{{\"messages\":[' .. table.concat(parts, ',') .. ']}}')\nend\n",
        sessions_lua.join(", ")
    );
    let get = format!("wrk.headers[\"Cookie\"] = \"{cookie}\"\n");
    let mut rows = Vec::new();
    let one = vec![a.addr.clone()];
    rows.push(("messages/batch, 1 instance", wrk(dir.path(), "b1", &batch, &one, 2, 8, "/api/chat/messages/batch")));
    rows.push(("sync/init, 1 instance", wrk(dir.path(), "g1", &get, &one, 2, 8, "/api/sync/init")));
    let b = Instance::start(&env, &[]);
    let two = vec![a.addr.clone(), b.addr.clone()];
    rows.push(("messages/batch, 2 instances", wrk(dir.path(), "b2", &batch, &two, 2, 8, "/api/chat/messages/batch")));
    rows.push(("sync/init, 2 instances", wrk(dir.path(), "g2", &get, &two, 2, 8, "/api/sync/init")));
    drop(b);
    rows.push((
        "sync/init herd (200 conns), shared reads",
        wrk(dir.path(), "h1", &get, &one, 2, 200, "/api/sync/init"),
    ));
    drop(a);
    let plain = Instance::start(&env, &["--no-sync-coalescing"]);
    let solo = vec![plain.addr.clone()];
    rows.push((
        "sync/init herd (200 conns), a read each",
        wrk(dir.path(), "h2", &get, &solo, 2, 200, "/api/sync/init"),
    ));
    drop(plain);

    println!("\nOrigin on PostgreSQL through PgBouncer (transaction mode, 20 server connections), Garage; wrk {} s per run, loopback, 2 cores\n", secs());
    println!("| run | requests/s | p50 | p99 | non-2xx |");
    println!("|---|---|---|---|---|");
    for (name, (rps, p50, p99, bad)) in rows {
        println!("| {name} | {rps:.0} | {p50} | {p99} | {bad} |");
    }
    drop(bouncer);
}
