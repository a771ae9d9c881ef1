//! `outpost export` in front of the reference API: the exported files served
//! by a plain static file server (tower-http's ServeDir, not `outpost
//! serve`), beside the API alone, and the outbox's happy path through them.

mod harness;

use harness::{wait_until, Chromium, Origin, PATIENCE};
use outpost::{AppState, Bundle};
use serde_json::json;

/// A site's own page, as a developer adopting Outpost would write it.
const INDEX: &str = r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>My site</title></head>
<body><h1>My site</h1><script type="module">
import { Outpost } from '/outpost.js';
window.ready = Outpost.register().then((o) => { window.outpost = o; return true; });
</script></body></html>"#;

fn site(state: AppState, dir: &std::path::Path) -> axum::Router {
    outpost::api_app(state).fallback_service(tower_http::services::ServeDir::new(dir))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exported_bundle_on_a_static_server_queues_and_delivers_writes() {
    let dir = tempfile::tempdir().unwrap();
    let written = Bundle::embedded().export(dir.path()).unwrap();
    assert!(written.iter().any(|f| f == "INTEGRATION.md"), "{written:?}");
    std::fs::write(dir.path().join("index.html"), INDEX).unwrap();

    let (state, _data) = harness::sqlite_state().await;
    let mut origin = Origin::start_app(site(state.clone(), dir.path()));
    let mut chromium = Chromium::launch().await;
    let tab = chromium.open(&origin.url("/")).await;
    assert_eq!(tab.eval("window.ready").await, true);
    assert_eq!(tab.eval("outpost.version()").await, Bundle::embedded().hash.as_str());
    let login = tab.post("/api/auth/login", &json!({ "user": "erin" })).await.unwrap();
    assert_eq!(login["status"], 200);
    let session = tab.post("/api/chat/sessions", &json!({ "title": "static" })).await.unwrap();
    let session = session["body"]["id"].as_str().unwrap().to_string();

    origin.stop();
    for i in 0..3 {
        let batch = json!({ "messages": [{ "tempId": format!("t{i}"), "sessionId": session, "role": "user",
                                           "content": format!("static {i}"), "createdAt": 1 }] });
        let r = tab.post("/api/chat/messages/batch", &batch).await.unwrap();
        assert_eq!(r["status"], 202, "{r}");
        assert!(r["headers"]["outpost-queued"].is_string());
    }
    origin.restart_app(site(state.clone(), dir.path()));
    let stored = wait_until("the queued writes at the origin", PATIENCE, || async {
        let _ = tab.try_eval("outpost.flush()").await;
        let rows: Vec<(String,)> = sqlx::query_as("SELECT content FROM chat_messages ORDER BY created_at, id")
            .fetch_all(&state.api.db.pool)
            .await
            .unwrap();
        (rows.len() >= 3).then_some(rows.into_iter().map(|r| r.0).collect::<Vec<_>>())
    })
    .await;
    assert_eq!(stored, ["static 0", "static 1", "static 2"]);
    chromium.close().await;
}
