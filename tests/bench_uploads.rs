//! On-demand measurement of uploads in Chromium (not part of the test
//! command; it asserts nothing about speed):
//!
//!     cargo test --release --test bench_uploads -- --ignored --nocapture
//!
//! Uploads the same 64 MiB to the embedded S3 store three times each way,
//! interleaved: through the worker (`outpost.upload`, multipart in 8 MiB
//! parts, kept in IndexedDB first) and straight from the page (presign, one
//! `fetch` PUT, complete). Prints the median of each.

mod harness;

use harness::{Chromium, Origin};

const MIB: usize = 1024 * 1024;

const BENCH: &str = r#"
window.bytes = (() => { const b = new Uint8Array(64 * 1024 * 1024); for (let k = 0; k < b.length; k++) b[k] = (k * 31) & 255; return b; })();
window.direct = async () => {
  const file = new Blob([bytes], { type: 'application/octet-stream' });
  const t = performance.now();
  const p = await (await fetch('/api/assets/presign', { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ op: 'put', filename: 'direct.bin', contentType: 'application/octet-stream', size: file.size }) })).json();
  const put = await fetch(p.url, { method: 'PUT', headers: p.headers, body: file });
  if (!put.ok) throw new Error('PUT ' + put.status);
  const done = await fetch(`/api/assets/${p.assetId}/complete`, { method: 'POST' });
  if (!done.ok) throw new Error('complete ' + done.status);
  return performance.now() - t;
};
window.viaWorker = async () => {
  const file = new Blob([bytes], { type: 'application/octet-stream' });
  const t = performance.now();
  const { done } = await outpost.upload(file, { filename: 'worker.bin' });
  const accepted = performance.now() - t;
  await done;
  return [performance.now() - t, accepted];
};
true
"#;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run on demand with --ignored --nocapture"]
async fn upload_throughput() {
    let (state, _data) = harness::sqlite_state().await;
    let origin = Origin::start(state.clone());
    let mut chromium = Chromium::launch().await;
    let tab = chromium.open(&origin.url("/api/health")).await;
    tab.register_outpost().await;
    let login = tab.post("/api/auth/login", &serde_json::json!({ "user": "bench" })).await.unwrap();
    assert_eq!(login["status"], 200);
    tab.eval(BENCH).await;
    let (mut direct, mut worker, mut accepted) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        direct.push(tab.eval("direct()").await.as_f64().unwrap());
        let w = tab.eval("viaWorker()").await;
        worker.push(w[0].as_f64().unwrap());
        accepted.push(w[1].as_f64().unwrap());
    }
    let rate = |ms: f64| 64.0 / (ms / 1000.0);
    let (d, w, a) = (median(direct), median(worker), median(accepted));
    println!("| 64 MiB to the embedded store (median of 3) | time | throughput |");
    println!("|---|---|---|");
    println!("| page `fetch` PUT, presign + PUT + complete | {d:.0} ms | {:.0} MiB/s |", rate(d));
    println!(
        "| through the worker, until `done` (kept in IndexedDB, 8 x 8 MiB parts) | {w:.0} ms | {:.0} MiB/s |",
        rate(w)
    );
    println!("| through the worker, until the page has its temp id | {a:.0} ms | |");
    let _ = MIB;
    chromium.close().await;
}
