//! Uploads in Chromium against the real origin and its embedded S3 store:
//! every scenario ends by comparing the bytes the store holds with what the
//! page sent (SHA-256).

mod harness;

use harness::scenes::Stage;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use harness::{wait_until, PATIENCE};
use outpost::AppState;
use serde_json::Value;
use sha2::{Digest, Sha256};

const PAGE: &str = "/api/health";
const MIB: usize = 1024 * 1024;

/// The page makes file `seed` of `n` bytes; Rust makes the same bytes.
const FILES: &str = r#"
window.fileOf = (seed, n) => {
  const b = new Uint8Array(n);
  for (let k = 0; k < n; k++) b[k] = (k * 31 + seed * 7 + (k >> 10)) & 255;
  return new Blob([b], { type: 'application/octet-stream' });
};
window.uploads = {};
window.startUpload = async (seed, n) => {
  const { assetId, done } = await outpost.upload(fileOf(seed, n), { filename: `f${seed}.bin` });
  window.uploads[seed] = { assetId, state: 'pending' };
  done.then((e) => { window.uploads[seed] = { assetId, state: 'uploaded', serverId: e.serverId }; },
            (err) => { window.uploads[seed] = { assetId, state: 'failed', error: err.message }; });
  return assetId;
};
window.tryUpload = (seed, n) => startUpload(seed, n).then((id) => ({ ok: id }), (err) => ({ error: err.message }));
true
"#;

fn file_of(seed: usize, n: usize) -> Vec<u8> {
    (0..n).map(|k| ((k * 31 + seed * 7 + (k >> 10)) & 255) as u8).collect()
}

fn sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Counts presign calls; delays the first `slow_presigns` of them by
/// `presign_delay_ms` after the origin made the URL.
#[derive(Default)]
struct Faults {
    presigns: AtomicUsize,
    slow_presigns: AtomicUsize,
    presign_delay_ms: AtomicU64,
}

fn origin_with(state: AppState, faults: &Arc<Faults>) -> axum::Router {
    use axum::extract::Request;
    use axum::middleware::Next;
    let faults = Arc::clone(faults);
    outpost::app(state).layer(axum::middleware::from_fn(move |req: Request, next: Next| {
        let f = Arc::clone(&faults);
        async move {
            let presign = req.uri().path() == "/api/assets/presign";
            let res = next.run(req).await;
            if presign {
                let n = f.presigns.fetch_add(1, Ordering::SeqCst);
                if n < f.slow_presigns.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(f.presign_delay_ms.load(Ordering::SeqCst))).await;
                }
            }
            res
        }
    }))
}

struct Scene {
    stage: Stage,
    faults: Arc<Faults>,
    config: String,
}
on_stage!(Scene);

impl Scene {
    async fn new(config: &str) -> Scene {
        Self::with(config, outpost::Settings::default()).await
    }

    async fn with(config: &str, settings: outpost::Settings) -> Scene {
        let faults = Arc::new(Faults::default());
        let f = Arc::clone(&faults);
        let stage = Stage::build().settings(settings).page(PAGE).app(move |state| origin_with(state, &f)).open().await;
        let scene = Scene { stage, faults, config: config.to_string() };
        scene.prepare().await;
        let login = scene.tab.post("/api/auth/login", &serde_json::json!({ "user": "alice" })).await.unwrap();
        assert_eq!(login["status"], 200, "{login}");
        scene
    }

    async fn prepare(&self) {
        self.tab.register_outpost_with(&self.config).await;
        self.tab.eval(FILES).await;
    }

    fn up(&mut self) {
        self.stage.origin.restart_app(origin_with(self.stage.state.clone(), &self.faults));
    }

    async fn status(&self) -> Value {
        self.tab.eval("outpost.status()").await
    }

    /// Waits until the origin marks the asset behind temp id `temp`
    /// uploaded; returns its server id.
    async fn wait_uploaded(&self, temp: &str) -> String {
        wait_until(&format!("upload {temp} to complete"), PATIENCE * 4, || async {
            let _ = self.tab.try_eval("outpost.flush()").await;
            let status = self.tab.try_eval("outpost.status()").await.ok()?;
            let pending = status["uploads"].as_array()?.iter().any(|u| u["assetId"] == temp);
            if pending {
                return None;
            }
            let rows: Vec<(String,)> = sqlx::query_as("SELECT id FROM assets WHERE status = 'uploaded'")
                .fetch_all(&self.state.api.db.pool)
                .await
                .unwrap();
            let mine = self.server_id_of(temp).await?;
            rows.iter().any(|r| r.0 == mine).then_some(mine)
        })
        .await
    }

    /// The server id the worker learned for a temp id (its id map).
    async fn server_id_of(&self, temp: &str) -> Option<String> {
        let uploads = self.tab.try_eval("window.uploads").await.ok()?;
        let found = uploads.as_object()?.values().find(|u| u["assetId"] == temp)?;
        found["serverId"].as_str().map(str::to_string)
    }

    /// SHA-256 of the object the store holds for asset `id`.
    async fn stored_sha(&self, id: &str) -> String {
        let (key,): (String,) = sqlx::query_as("SELECT object_key FROM assets WHERE id = $1")
            .bind(id)
            .fetch_one(&self.state.api.db.pool)
            .await
            .unwrap();
        let url = self.state.api.store.presigner.presign_get(&key, Duration::from_secs(60)).unwrap();
        let bytes = reqwest::get(url.as_str()).await.unwrap().bytes().await.unwrap();
        sha(&bytes)
    }

    #[cfg(feature = "test-counters")]
    fn part_puts(&self) -> u64 {
        self.state.api.store.embedded.as_ref().expect("the embedded store").counts().part_puts.load(Ordering::SeqCst)
    }

    /// The store counts its writes only in test builds: said, never skipped.
    #[cfg(not(feature = "test-counters"))]
    fn part_puts(&self) -> u64 {
        panic!("counting the store's part PUTs needs the test-counters feature: run ./scripts/test.sh, or cargo test --features outpost/test-counters")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_online_and_offline_reach_the_store_byte_identical() {
    let mut s = Scene::new("{}").await;
    let online = s.tab.eval(&format!("startUpload(1, {})", 3 * MIB)).await;
    let online = online.as_str().unwrap().to_string();
    assert!(online.starts_with("local-"), "{online}");
    let id = s.wait_uploaded(&online).await;
    assert_eq!(s.stored_sha(&id).await, sha(&file_of(1, 3 * MIB)));

    s.origin.stop();
    let offline = s.tab.eval(&format!("startUpload(2, {})", 2 * MIB)).await.as_str().unwrap().to_string();
    let status = s.status().await;
    let pending = &status["uploads"][0];
    assert_eq!((pending["assetId"].as_str(), pending["state"].as_str()), (Some(offline.as_str()), Some("pending")));
    assert!(status["storage"]["blobs"].as_u64().unwrap() >= 2 * MIB as u64, "{status}");
    s.up();
    let id = s.wait_uploaded(&offline).await;
    assert_eq!(s.stored_sha(&id).await, sha(&file_of(2, 2 * MIB)));
    // Uploaded: the device keeps only metadata.
    let status = s.status().await;
    assert_eq!(status["storage"]["blobs"], 0, "{status}");
    s.chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_upload_survives_a_killed_worker_and_a_browser_restart_resending_only_missing_parts() {
    let _ = tracing_subscriber::fmt().with_env_filter("outpost=warn").with_test_writer().try_init();
    let mut s = Scene::new("{}").await;
    let n = 64 * MIB;
    let parts = (n / (8 * MIB)) as u64;
    let temp = s.tab.eval(&format!("startUpload(3, {n})")).await.as_str().unwrap().to_string();
    let done = |min: u64| {
        let tab = &s.tab;
        let temp = temp.clone();
        async move {
            wait_until(&format!("{min} bytes of {temp} in the store"), PATIENCE * 4, || async {
                let status = tab.try_eval("outpost.status()").await.ok()?;
                let up = status["uploads"].as_array()?.iter().find(|u| u["assetId"] == temp.as_str())?.clone();
                (up["done"].as_u64()? >= min).then_some(())
            })
            .await
        }
    };
    done(2 * 8 * MIB as u64).await;
    s.tab.stop_all_workers().await;
    done(5 * 8 * MIB as u64).await; // a status request restarts the worker, which resumes
    s.chromium.restart().await;
    s.tab = s.chromium.open(&s.origin.url(PAGE)).await;
    s.prepare().await;
    let said = std::cell::Cell::new(std::time::Instant::now());
    let id = wait_until("the upload to finish after the restart", PATIENCE * 4, || async {
        let _ = s.tab.try_eval("outpost.flush()").await;
        let status = s.tab.try_eval("outpost.status()").await.ok()?;
        if !status["uploads"].as_array()?.is_empty() {
            // What it waits on, every 20 s, for a run that times out.
            if said.get().elapsed() > std::time::Duration::from_secs(20) {
                said.set(std::time::Instant::now());
                eprintln!("still uploading: {}", status["uploads"]);
            }
            return None;
        }
        let row: Option<(String,)> = sqlx::query_as("SELECT id FROM assets WHERE status = 'uploaded'")
            .fetch_optional(&s.state.api.db.pool)
            .await
            .unwrap();
        row.map(|r| r.0)
    })
    .await;
    assert_eq!(s.stored_sha(&id).await, sha(&file_of(3, n)), "byte-identical");
    let puts = s.part_puts();
    eprintln!("64 MiB upload: {puts} part PUTs for {parts} parts, across a worker kill and a browser restart");
    // Each of the two interruptions can cost at most the parts in flight
    // (three at a time): a part the store did not get whole is missing.
    assert!((parts..=parts + 2 * 3).contains(&puts), "{puts} part PUTs for {parts} parts");
    s.chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_presigned_url_is_replaced_and_the_upload_completes() {
    let settings = outpost::Settings { presign_ttl_secs: 2, ..outpost::Settings::default() };
    let s = Scene::with("{}", settings).await;
    // The first presign answer arrives after its URL has expired.
    s.faults.slow_presigns.store(1, Ordering::SeqCst);
    s.faults.presign_delay_ms.store(2_500, Ordering::SeqCst);
    let temp = s.tab.eval(&format!("startUpload(4, {})", MIB)).await.as_str().unwrap().to_string();
    let id = s.wait_uploaded(&temp).await;
    assert_eq!(s.stored_sha(&id).await, sha(&file_of(4, MIB)));
    let presigns = s.faults.presigns.load(Ordering::SeqCst);
    eprintln!("expired URL: {presigns} presign calls");
    assert!(presigns >= 2, "a fresh URL was asked for");
    let assets: Vec<(String,)> = sqlx::query_as("SELECT id FROM assets").fetch_all(&s.state.api.db.pool).await.unwrap();
    assert_eq!(assets.len(), 1, "re-presigning made no second asset");
    let mut s = s;
    s.chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_budget_evicts_least_recently_used_uploaded_files_never_pending_ones() {
    // 10 MiB budget: eviction starts past 9 MiB and goes down to 7 MiB.
    let config = format!(r#"{{"blobBudgetBytes": {}, "keepUploadedBlobs": true}}"#, 10 * MIB);
    let mut s = Scene::new(&config).await;
    let two = 2 * MIB;
    let mut ids = Vec::new();
    for seed in 10..14 {
        let temp = s.tab.eval(&format!("startUpload({seed}, {two})")).await.as_str().unwrap().to_string();
        ids.push(s.wait_uploaded(&temp).await);
    }
    let [a, b, c, d] = [&ids[0], &ids[1], &ids[2], &ids[3]];
    // A is used again: B, then C, are now the least recently used.
    let local = s.tab.fetch(&format!("/api/assets/{a}/content")).await.unwrap();
    assert_eq!(local["headers"]["outpost-cache"], "local", "{}", local["headers"]);
    let e = s.tab.eval(&format!("startUpload(14, {two})")).await.as_str().unwrap().to_string();
    s.wait_uploaded(&e).await;
    let status = s.status().await;
    assert_eq!(status["storage"]["blobs"].as_u64(), Some(3 * two as u64), "A, D and E are left: {status}");

    // Offline, B and C are gone and A and D are still here.
    s.origin.stop();
    for gone in [b, c] {
        let r = s.tab.fetch(&format!("/api/assets/{gone}/content")).await.unwrap();
        assert_eq!(r["status"], 504, "{r}");
    }
    for kept in [a, d] {
        let r = s.tab.fetch(&format!("/api/assets/{kept}/content")).await.unwrap();
        assert_eq!(r["headers"]["outpost-cache"], "local", "{r}");
    }
    // Online, B comes back through a presigned GET, byte-identical, and is kept.
    s.up();
    let again = s
        .tab
        .eval(&format!(
            "fetch('/api/assets/{b}/content').then(async r => ({{ source: r.headers.get('outpost-source'), \
             hex: [...new Uint8Array(await crypto.subtle.digest('SHA-256', await r.arrayBuffer()))]\
             .map(x => x.toString(16).padStart(2, '0')).join('') }}))"
        ))
        .await;
    assert_eq!(again["source"], "store", "{again}");
    assert_eq!(again["hex"], sha(&file_of(11, two)));
    s.origin.stop();
    let offline = s.tab.fetch(&format!("/api/assets/{b}/content")).await.unwrap();
    assert_eq!((offline["status"].as_u64(), offline["headers"]["outpost-cache"].as_str()), (Some(200), Some("local")));

    // Offline, uploads stay pending and pinned: once pending files fill the
    // budget the next one is refused with a clear 507, and the pending
    // ones are intact.
    let mut pending = Vec::new();
    let refusal = loop {
        let seed = 20 + pending.len();
        let r = s.tab.eval(&format!("tryUpload({seed}, {two})")).await;
        match (r["ok"].as_str(), r["error"].as_str()) {
            (Some(temp), _) => pending.push(temp.to_string()),
            (_, Some(message)) => break message.to_string(),
            _ => panic!("{r}"),
        }
        assert!(pending.len() <= 5, "a 10 MiB budget holds five 2 MiB files at most");
    };
    assert_eq!(pending.len(), 5, "every evictable file made room before the refusal");
    assert!(refusal.contains("No room on this device"), "{refusal}");
    let status = s.status().await;
    assert_eq!(status["uploads"].as_array().unwrap().len(), 5, "{status}");
    s.up();
    for (i, temp) in pending.iter().enumerate() {
        let id = s.wait_uploaded(temp).await;
        assert_eq!(s.stored_sha(&id).await, sha(&file_of(20 + i, two)), "pending upload {i} intact");
    }
    s.chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_naming_a_pending_upload_waits_for_it_and_goes_with_the_server_id() {
    let mut s = Scene::new("{}").await;
    s.origin.stop();
    let temp = s.tab.eval(&format!("startUpload(30, {})", MIB)).await.as_str().unwrap().to_string();
    let write = s.tab.post("/api/inbox", &serde_json::json!({ "cover": temp })).await.unwrap();
    assert_eq!(write["status"], 202, "queued behind the upload: {write}");
    s.up();
    let id = s.wait_uploaded(&temp).await;
    let body: Vec<u8> = wait_until("the inbox write to arrive", PATIENCE, || async {
        let _ = s.tab.try_eval("outpost.flush()").await;
        let row: Option<(Vec<u8>,)> =
            sqlx::query_as("SELECT body FROM inbox").fetch_optional(&s.state.api.db.pool).await.unwrap();
        row.map(|r| r.0)
    })
    .await;
    let sent: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(sent, serde_json::json!({ "cover": id }), "the temp id was replaced by the server id");
    s.chromium.close().await;
}

/// An upload or blob record the worker cannot read (damaged, or written by
/// hand) is not dropped from view while its file holds the budget: it is a
/// dead letter of the user who was logged in, and discarding it removes the
/// file too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_upload_and_blob_records_are_dead_letters_discarded_with_their_files() {
    let mut s = Scene::new("{}").await;
    let keys = "(async () => { const db = await new Promise((res, rej) => { const r = indexedDB.open('outpost'); \
                r.onsuccess = () => res(r.result); r.onerror = () => rej(r.error); }); \
                const keys = await new Promise((res) => { const q = db.transaction('blobs').objectStore('blobs').getAllKeys(); \
                q.onsuccess = () => res(q.result); }); db.close(); return keys.sort(); })()";
    // Schema bytes this build reads (upload 3, blob meta 1) over damaged payloads.
    let planted = s
        .tab
        .eval(
            "new Promise((resolve, reject) => { const open = indexedDB.open('outpost'); \
             open.onsuccess = () => { const db = open.result; \
               const tx = db.transaction(['uploads', 'blobs', 'blob_meta'], 'readwrite'); \
               tx.objectStore('uploads').put(new Uint8Array([3, 255, 255]), 'local-bad'); \
               tx.objectStore('blobs').put(new Blob([new Uint8Array(4096)]), 'local-bad'); \
               tx.objectStore('blob_meta').put(new Uint8Array([1, 255]), 'local-bad2'); \
               tx.objectStore('blobs').put(new Blob([new Uint8Array(8192)]), 'local-bad2'); \
               tx.oncomplete = () => { db.close(); resolve(true); }; tx.onerror = () => reject(tx.error); }; \
             open.onerror = () => reject(open.error); })",
        )
        .await;
    assert_eq!(planted, true);
    assert_eq!(s.tab.eval(keys).await, serde_json::json!(["local-bad", "local-bad2"]));
    let dead = wait_until("the unreadable records as dead letters", PATIENCE, || async {
        let status = s.tab.try_eval("outpost.status()").await.ok()?;
        let ids: Vec<String> =
            status["deadLetters"].as_array()?.iter().filter_map(|d| d["id"].as_str().map(str::to_string)).collect();
        (ids.contains(&"upload:local-bad".to_string()) && ids.contains(&"blob:local-bad2".to_string()))
            .then_some(status)
    })
    .await;
    assert!(dead["uploads"].as_array().unwrap().is_empty(), "an unreadable upload is not shown as going: {dead}");
    assert_eq!(s.tab.eval("outpost.discard('upload:local-bad')").await, true);
    assert_eq!(s.tab.eval("outpost.discard('blob:local-bad2')").await, true);
    assert_eq!(s.tab.eval(keys).await, serde_json::json!([]), "their files went with them");
    let after = s.status().await;
    assert_eq!(after["deadLetters"], serde_json::json!([]), "{after}");
    s.chromium.close().await;
}

/// A 20 MiB file kept on the device (an upload made offline) answers byte
/// ranges as a `<video>` seeking asks for them: `206` with exactly those
/// bytes, `416` past the end, `Accept-Ranges` on the whole answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_kept_on_the_device_answers_byte_ranges_offline() {
    let mut s = Scene::new("{}").await;
    s.origin.stop();
    let size = 20 * MIB;
    let id = s.tab.eval(&format!("startUpload(3, {size})")).await.as_str().unwrap().to_string();
    let get = |range: &str| {
        format!(
            "fetch('/api/assets/{id}/content', {{ headers: {range} }}).then(async (r) => ({{ status: r.status, \
             range: r.headers.get('content-range'), accept: r.headers.get('accept-ranges'), \
             length: r.headers.get('content-length'), source: r.headers.get('outpost-source'), \
             bytes: r.status === 206 ? Array.from(new Uint8Array(await r.arrayBuffer())) : (await r.arrayBuffer()).byteLength }}))"
        )
    };
    let seek = s.tab.eval(&get("{ Range: 'bytes=10000000-10000099' }")).await;
    assert_eq!(seek["status"], 206, "{seek}");
    assert_eq!(seek["range"], format!("bytes 10000000-10000099/{size}"));
    assert_eq!((seek["length"].as_str(), seek["source"].as_str()), (Some("100"), Some("worker")));
    let want: Vec<u8> = file_of(3, size)[10_000_000..10_000_100].to_vec();
    assert_eq!(serde_json::from_value::<Vec<u8>>(seek["bytes"].clone()).unwrap(), want, "exactly those bytes");
    let tail = s.tab.eval(&get("{ Range: 'bytes=-10' }")).await;
    assert_eq!(
        (tail["status"].as_u64(), tail["range"].as_str()),
        (Some(206), Some(&*format!("bytes {}-{}/{size}", size - 10, size - 1)))
    );
    let past = s.tab.eval(&get(&format!("{{ Range: 'bytes={size}-' }}"))).await;
    assert_eq!(
        (past["status"].as_u64(), past["range"].as_str()),
        (Some(416), Some(&*format!("bytes */{size}"))),
        "{past}"
    );
    let whole = s.tab.eval(&get("{}")).await;
    assert_eq!(
        (whole["status"].as_u64(), whole["accept"].as_str(), whole["bytes"].as_u64()),
        (Some(200), Some("bytes"), Some(size as u64))
    );
    s.chromium.close().await;
}

/// Log in, then lose the network without opening any view: the login
/// warm-up has put the sessions, the latest session's messages, the
/// projects and the images on the device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_login_the_users_lists_and_images_are_on_the_device() {
    let mut s = Scene::new("{}").await;
    let post = |path: &'static str, body: Value| {
        let tab = &s.tab;
        async move { tab.post(path, &body).await.unwrap() }
    };
    let session = post("/api/chat/sessions", serde_json::json!({ "title": "trip" })).await;
    let session = session["body"]["id"].as_str().unwrap().to_string();
    let batch = serde_json::json!({ "messages": [
        { "tempId": "w1", "sessionId": session, "role": "user", "content": "pack the tent", "createdAt": 1 }] });
    assert_eq!(post("/api/chat/messages/batch", batch).await["status"], 200);
    assert_eq!(post("/api/projects", serde_json::json!({ "name": "map" })).await["status"], 201);
    let image = s
        .tab
        .eval(
            "(async () => { const { assetId, done } = await outpost.upload(new Blob([new Uint8Array([137, 80, 78, 71, 1, 2, 3])], \
             { type: 'image/png' }), { filename: 'tent.png' }); return (await done).serverId; })()",
        )
        .await;
    let image = image.as_str().unwrap().to_string();
    // A logout forgets everything this device kept; the next login warms it up.
    assert_eq!(s.tab.eval("outpost.logout()").await["ok"], true);
    s.tab.eval("window.warm = null; outpost.on('warm-up', (e) => { window.warm = e; }); true").await;
    assert_eq!(post("/api/auth/login", serde_json::json!({ "user": "alice" })).await["status"], 200);
    let warm = wait_until("the warm-up to finish", PATIENCE, || async {
        let w = s.tab.try_eval("window.warm").await.ok()?;
        (w["total"].as_u64().is_some() && w["done"] == w["total"]).then_some(w)
    })
    .await;
    assert_eq!(warm["total"], 5, "sync/init, sessions, the latest session's messages, projects, one image: {warm}");
    s.origin.stop();
    let sessions = s.tab.fetch("/api/chat/sessions").await.unwrap();
    assert_eq!(
        (sessions["status"].as_u64(), sessions["body"][0]["title"].as_str()),
        (Some(200), Some("trip")),
        "{sessions}"
    );
    assert_eq!(sessions["headers"]["outpost-cache"], "stale");
    let messages = s.tab.fetch(&format!("/api/chat/sessions/{session}/messages")).await.unwrap();
    assert_eq!(messages["body"][0]["content"], "pack the tent", "{messages}");
    let projects = s.tab.fetch("/api/projects").await.unwrap();
    assert_eq!(projects["body"][0]["name"], "map", "{projects}");
    let bytes = s
        .tab
        .eval(&format!(
            "fetch('/api/assets/{image}/content').then(async (r) => ({{ status: r.status, \
             source: r.headers.get('outpost-source'), bytes: Array.from(new Uint8Array(await r.arrayBuffer())) }}))"
        ))
        .await;
    assert_eq!(bytes, serde_json::json!({ "status": 200, "source": "worker", "bytes": [137, 80, 78, 71, 1, 2, 3] }));
    s.chromium.close().await;
}
