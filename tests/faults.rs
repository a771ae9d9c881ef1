//! The fault suite: every scenario tries to lose, duplicate or reorder
//! something, and ends by comparing what the origin stored with what the
//! page sent. Each prints `fault <name>: sent N, stored M, lost L,
//! duplicated D, out of order O` and requires L = D = O = 0.
//!
//! Reduced sizes in the test command; the full sizes (1,000 writes, 10
//! worker kills) with `./scripts/faults.sh --full`.

mod harness;

use harness::scenes::Stage;

use std::collections::HashSet;
use std::time::Duration;

use harness::{wait_until, PATIENCE};

use serde_json::json;

struct Size {
    writes: usize,
    kills: usize,
}

fn size() -> Size {
    if std::env::var("OUTPOST_FAULTS_FULL").is_ok_and(|v| v == "1") {
        Size { writes: 1000, kills: 10 }
    } else {
        Size { writes: 100, kills: 3 }
    }
}

/// Backoff short enough for retry-heavy scenarios to end in seconds.
const FAST: &str = "{ backoffMs: [200, 400, 800, 1600, 3200] }";

fn content(tag: &str, i: usize) -> String {
    format!("{tag} {i:04}")
}

/// Lost, duplicated and out-of-order writes of `sent` in `stored`; prints
/// the line and fails on any.
fn report(name: &str, sent: &[String], stored: &[String]) {
    let want: HashSet<&str> = sent.iter().map(String::as_str).collect();
    let mut seen = HashSet::new();
    let duplicated = stored.iter().filter(|m| !seen.insert(m.as_str())).count();
    let lost = want.iter().filter(|m| !seen.contains(*m)).count();
    let position = |m: &str| sent.iter().position(|s| s == m);
    let order: Vec<usize> = stored.iter().filter_map(|m| position(m)).collect();
    let out_of_order = order.windows(2).filter(|w| w[1] < w[0]).count();
    let strangers = stored.iter().filter(|m| !want.contains(m.as_str())).count();
    println!(
        "fault {name}: sent {}, stored {}, lost {lost}, duplicated {duplicated}, out of order {out_of_order}",
        sent.len(),
        stored.len()
    );
    assert_eq!((lost, duplicated, out_of_order, strangers), (0, 0, 0, 0), "fault {name}");
}

struct Scene {
    stage: Stage,
    config: String,
}
on_stage!(Scene);

impl Scene {
    async fn new(config: &str) -> Scene {
        let stage = Stage::build().open().await;
        stage.tab.register_outpost_with(config).await;
        Scene { stage, config: config.to_string() }
    }

    async fn login(&self, user: &str) {
        let r = self.tab.post("/api/auth/login", &json!({ "user": user })).await.unwrap();
        assert_eq!(r["status"], 200, "{r}");
    }

    async fn session(&self, title: &str) -> String {
        let r = self.tab.post("/api/chat/sessions", &json!({ "title": title })).await.unwrap();
        assert_eq!(r["status"], 201, "{r}");
        r["body"]["id"].as_str().unwrap().to_string()
    }

    /// Sends writes `tag 0000`…; each must be answered `want`.
    async fn send(&self, session: &str, tag: &str, n: usize, want: u16) -> Vec<String> {
        let mut sent = Vec::new();
        for i in 0..n {
            let body = json!({ "messages": [{ "tempId": format!("{tag}-{i}"), "sessionId": session,
                                              "role": "user", "content": content(tag, i), "createdAt": 1 }] });
            let r = self.tab.post("/api/chat/messages/batch", &body).await.unwrap();
            assert_eq!(r["status"], want, "write {i}: {r}");
            sent.push(content(tag, i));
        }
        sent
    }

    async fn stored(&self, session: &str) -> Vec<String> {
        harness::messages_of(&self.state, session).await
    }

    /// Waits until the origin holds `n` writes of `session`, nudging the
    /// worker meanwhile; then gives late duplicates a moment to show.
    async fn settle(&self, session: &str, n: usize) -> Vec<String> {
        wait_until(&format!("{n} writes at the origin"), PATIENCE * 4, || async {
            let _ = self.tab.try_eval("outpost.flush()").await;
            (self.stored(session).await.len() >= n).then_some(())
        })
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.stored(session).await
    }

    async fn sync(&self) {
        self.tab.dispatch_sync(&self.origin.origin(), "outpost-outbox", false).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_writes_with_the_origin_down_then_up() {
    let n = size().writes;
    let mut s = Scene::new(FAST).await;
    s.login("alice").await;
    let session = s.session("down").await;
    s.origin.stop();
    let sent = s.send(&session, "down", n, 202).await;
    s.stage.origin.restart(s.stage.state.clone());
    s.sync().await;
    report("origin-down-then-up", &sent, &s.settle(&session, n).await);
    s.chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_worker_killed_mid_replay() {
    let Size { writes: n, kills } = size();
    let mut s = Scene::new(FAST).await;
    s.login("alice").await;
    let session = s.session("kills").await;
    s.origin.stop();
    let sent = s.send(&session, "kill", n, 202).await;
    s.stage.origin.restart(s.stage.state.clone());
    for _ in 0..kills {
        s.sync().await;
        tokio::time::sleep(Duration::from_millis(60)).await;
        s.tab.stop_all_workers().await;
    }
    report("worker-killed-mid-replay", &sent, &s.settle(&session, n).await);
    s.chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_browser_restarted_with_a_pending_queue() {
    let n = size().writes / 4;
    let mut s = Scene::new(FAST).await;
    s.login("alice").await;
    let session = s.session("restart").await;
    s.origin.stop();
    let sent = s.send(&session, "restart", n, 202).await;
    s.chromium.restart().await;
    // The page itself comes from the origin (it is no app-shell page).
    s.stage.origin.restart(s.stage.state.clone());
    s.tab = s.chromium.open(&s.origin.url("/api/health")).await;
    s.tab.register_outpost_with(&s.config).await;
    report("browser-restarted", &sent, &s.settle(&session, n).await);
    s.chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_flaky_origin_503s_and_resets() {
    let n = size().writes / 2;
    let mut s = Scene::new(FAST).await;
    s.login("alice").await;
    let session = s.session("flaky").await;
    s.origin.stop();
    let sent = s.send(&session, "flaky", n, 202).await;
    s.stage.origin.restart_app(harness::flaky_app(s.stage.state.clone()));
    s.sync().await;
    report("flaky-origin", &sent, &s.settle(&session, n).await);
    s.chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_corrupt_records_among_pending_writes() {
    let n = size().writes / 4;
    let mut s = Scene::new(FAST).await;
    s.login("alice").await;
    let session = s.session("corrupt").await;
    s.origin.stop();
    let sent = s.send(&session, "corrupt", n, 202).await;
    s.tab.corrupt_outbox(&[(2.5, "new Uint8Array([1, 255, 255, 255, 7])"), (3.5, "{ not: 'a record' }")]).await;
    s.stage.origin.restart(s.stage.state.clone());
    report("corrupt-records", &sent, &s.settle(&session, n).await);
    let status = s.tab.eval("outpost.status()").await;
    let quarantined = status["deadLetters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["reason"].as_str().unwrap().contains("unreadable"))
        .count();
    assert_eq!(quarantined, 2, "the damaged records are dead letters, visible: {status}");
    s.chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_user_switch_with_pending_writes() {
    let n = size().writes / 4;
    let mut s = Scene::new(FAST).await;
    s.login("alice").await;
    let alices = s.session("alice").await;
    s.origin.stop();
    let alice_sent = s.send(&alices, "alice", n, 202).await;
    assert_eq!(s.tab.eval("outpost.logout()").await, json!({ "ok": false, "status": 0 }));
    s.stage.origin.restart(s.stage.state.clone());
    s.login("bob").await;
    let bobs = s.session("bob").await;
    let bob_sent = s.send(&bobs, "bob", n, 200).await;
    s.sync().await;
    let status = s.tab.eval("outpost.flush()").await;
    assert_eq!(status["parked"].as_u64(), Some(n as u64), "alice's writes wait for her: {status}");
    report("user-switch (bob)", &bob_sent, &s.stored(&bobs).await);
    assert!(s.stored(&alices).await.is_empty(), "nothing of alice's went under bob");
    s.login("alice").await;
    report("user-switch (alice)", &alice_sent, &s.settle(&alices, n).await);
    s.chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_new_bundle_while_writes_are_pending() {
    let n = size().writes / 4;
    let mut s = Scene::new(FAST).await;
    s.login("alice").await;
    let session = s.session("update").await;
    let old = s.tab.eval("outpost.version()").await;
    s.origin.stop();
    let sent = s.send(&session, "update", n, 202).await;
    // Redeploy with writes pending: the new worker must replay what the old
    // one queued.
    let new = harness::rebuilt_bundle(b"fault-suite");
    harness::mark_active_worker(&s.tab).await;
    s.stage.origin.restart(s.stage.state.with_bundle(new.clone()));
    harness::wait_for_new_worker(&s.tab).await;
    assert_eq!(s.tab.eval("outpost.version()").await, new.hash.as_str(), "the new worker answers the page");
    assert_ne!(old, new.hash.as_str());
    report("new-bundle", &sent, &s.settle(&session, n).await);
    s.chromium.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_quota_pressure_during_uploads() {
    // A 6 MiB budget and 1 MiB files, offline: pending files are pinned, so
    // the sixth or seventh is refused; every accepted one must arrive intact.
    let mib = 1024 * 1024;
    let config = format!("{{ backoffMs: [200, 400, 800, 1600, 3200], blobBudgetBytes: {} }}", 6 * mib);
    let mut s = Scene::new(&config).await;
    s.login("alice").await;
    s.origin.stop();
    let mut accepted: Vec<(String, String)> = Vec::new();
    let refusal = loop {
        let seed = accepted.len();
        let r = s
            .tab
            .eval(&format!(
                "(async () => {{ const b = new Uint8Array({mib}); for (let k = 0; k < b.length; k++) b[k] = (k * 13 + {seed}) & 255; \
                 try {{ const u = await outpost.upload(new Blob([b]), {{ filename: 'q{seed}.bin' }}); return {{ ok: u.assetId }}; }} \
                 catch (e) {{ return {{ error: e.message }}; }} }})()"
            ))
            .await;
        match (r["ok"].as_str(), r["error"].as_str()) {
            (Some(id), _) => accepted.push((id.to_string(), format!("q{seed}.bin"))),
            (_, Some(e)) => break e.to_string(),
            _ => panic!("{r}"),
        }
        assert!(accepted.len() <= 6, "a 6 MiB budget holds six 1 MiB files at most");
    };
    assert!(refusal.contains("No room"), "{refusal}");
    s.stage.origin.restart(s.stage.state.clone());
    let stored: Vec<String> = wait_until("every accepted upload at the origin", PATIENCE * 4, || async {
        let _ = s.tab.try_eval("outpost.flush()").await;
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT filename FROM assets WHERE status = 'uploaded' ORDER BY filename")
                .fetch_all(&s.state.api.db.pool)
                .await
                .unwrap();
        (rows.len() >= accepted.len()).then(|| rows.into_iter().map(|r| r.0).collect())
    })
    .await;
    let sent: Vec<String> = accepted.iter().map(|(_, name)| name.clone()).collect();
    report("quota-pressure-uploads", &sent, &stored);
    s.chromium.close().await;
}
