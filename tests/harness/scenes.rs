//! Scenes shared by the tests that run in every engine: the origin with its
//! state, a logged-in page with the worker registered, writes and uploads
//! queued, and what the origin stored.

use std::time::{Duration, Instant};

use outpost::AppState;
use serde_json::{json, Value};

use super::{wait_until, Js, Origin, PATIENCE};

/// A same-origin page that does not register the worker by itself.
pub const PAGE: &str = "/api/health";
pub const WRITES: usize = 5;
pub const UPLOAD_BYTES: usize = 2 * 1024 * 1024;
/// Page-side helpers: a JSON POST, and a file made of `n` known bytes.
pub const HELPERS: &str = r#"
window.post = async (path, body) => {
  const r = await fetch(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  const text = await r.text();
  let parsed = text; try { parsed = JSON.parse(text); } catch (_) {}
  return { status: r.status, body: parsed };
};
window.fileOf = (n) => {
  const b = new Uint8Array(n);
  for (let k = 0; k < n; k++) b[k] = (k * 31 + (k >> 10)) & 255;
  return new Blob([b], { type: 'application/octet-stream' });
};
true
"#;

/// Logs in, registers the worker, makes a session; returns its id.
pub async fn setup<T: Js>(tab: &T) -> String {
    tab.register_outpost_with("{}").await;
    tab.eval(HELPERS).await;
    let login = tab.eval("post('/api/auth/login', { user: 'alice' })").await;
    assert_eq!(login["status"], 200, "{login}");
    let s = tab.eval("post('/api/chat/sessions', { title: 'outage' })").await;
    assert_eq!(s["status"], 201, "{s}");
    s["body"]["id"].as_str().unwrap().to_string()
}

pub fn batch(session: &str, i: usize) -> Value {
    json!({ "messages": [{ "tempId": format!("t{i}"), "sessionId": session, "role": "user", "content": format!("message {i:03}"), "createdAt": 1 }] })
}

pub fn want(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("message {i:03}")).collect()
}

/// Sends `n` writes; each must be answered `202 queued`.
pub async fn queue_writes<T: Js>(tab: &T, session: &str, n: usize) {
    for i in 0..n {
        let r = tab.eval(&format!("post('/api/chat/messages/batch', {})", batch(session, i))).await;
        assert_eq!(r["status"], 202, "write {i} while the origin is down: {r}");
    }
}

/// Hands a 2 MiB file to the worker; returns its temp id.
pub async fn queue_upload<T: Js>(tab: &T) -> String {
    let js = format!("outpost.upload(fileOf({UPLOAD_BYTES}), {{ filename: 'outage.bin' }}).then((u) => u.assetId)");
    let id = tab.eval(&js).await;
    id.as_str().unwrap_or_else(|| panic!("no temp id: {id}")).to_string()
}

/// The origin, its state, and what it stored.
pub struct World {
    pub state: AppState,
    _data: tempfile::TempDir,
    pub origin: Origin,
}

impl World {
    pub async fn new() -> World {
        Self::serving(outpost::app).await
    }

    pub async fn serving(app: impl Fn(AppState) -> axum::Router) -> World {
        let (state, data) = super::sqlite_state().await;
        let origin = Origin::start_app(app(state.clone()));
        World { state, _data: data, origin }
    }

    /// Brings the origin back; returns when.
    pub fn up(&mut self) -> Instant {
        self.origin.restart(self.state.clone());
        Instant::now()
    }

    pub async fn uploaded(&self) -> usize {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT id FROM assets WHERE status = 'uploaded' AND size = $1")
            .bind(UPLOAD_BYTES as i64)
            .fetch_all(&self.state.api.db.pool)
            .await
            .unwrap();
        rows.len()
    }

    /// Waits (looking only at the origin's database, never at the page)
    /// until `n` writes and `uploads` uploads are stored; returns how long
    /// after `since` that was. Fails past `deadline`.
    pub async fn stored_within(
        &self,
        session: &str,
        n: usize,
        uploads: usize,
        since: Instant,
        deadline: Duration,
        what: &str,
    ) -> Duration {
        let stored = wait_until(&format!("{what}: everything stored within {deadline:?}"), deadline, || async {
            let m = super::messages_of(&self.state, session).await;
            (m.len() >= n && self.uploaded().await >= uploads).then_some(m)
        })
        .await;
        let took = since.elapsed();
        assert_eq!(stored, want(n), "{what}: once each, in order");
        took
    }
}

/// Nothing left waiting, nothing dead-lettered; returns the status.
pub async fn assert_clean<T: Js>(tab: &T, what: &str) -> Value {
    let status = wait_until(&format!("{what}: the worker to settle"), PATIENCE, || async {
        let s = tab.try_eval("outpost.status()").await.ok()?;
        (s["pending"] == 0 && s["uploads"].as_array().is_some_and(|u| u.is_empty())).then_some(s)
    })
    .await;
    assert_eq!(status["deadLetters"], json!([]), "{what}: no dead letters after the outage");
    status
}

/// The page's clock, in Unix ms.
pub async fn page_now<T: Js>(tab: &T) -> u64 {
    tab.eval("Date.now()").await.as_u64().unwrap()
}

/// Where most Chromium scenarios start: an origin on a fresh SQLite
/// database, a browser, and a tab on one of the origin's pages (the worker
/// not registered yet). Each test file's `Scene` wraps one with its own
/// helpers and reaches its fields through `Deref`.
pub struct Stage {
    pub state: AppState,
    _data: tempfile::TempDir,
    pub origin: Origin,
    pub chromium: super::Chromium,
    pub tab: super::Tab,
}

/// How a `Stage` is made: `Stage::build().app(..).open().await`.
pub struct StageBuilder {
    settings: outpost::Settings,
    app: Box<dyn Fn(AppState) -> axum::Router>,
    page: &'static str,
}

impl Stage {
    pub fn build() -> StageBuilder {
        StageBuilder { settings: outpost::Settings::default(), app: Box::new(outpost::app), page: PAGE }
    }
}

impl StageBuilder {
    /// The origin's settings (presign lifetime, limits…).
    pub fn settings(mut self, settings: outpost::Settings) -> Self {
        self.settings = settings;
        self
    }

    /// The origin's router, made from its state (faults layered on, say).
    pub fn app(mut self, app: impl Fn(AppState) -> axum::Router + 'static) -> Self {
        self.app = Box::new(app);
        self
    }

    /// The page the tab opens first.
    pub fn page(mut self, path: &'static str) -> Self {
        self.page = path;
        self
    }

    pub async fn open(self) -> Stage {
        let (state, data) = super::sqlite_state_with(self.settings).await;
        let origin = Origin::start_app((self.app)(state.clone()));
        let chromium = super::Chromium::launch().await;
        let tab = chromium.open(&origin.url(self.page)).await;
        Stage { state, _data: data, origin, chromium, tab }
    }
}

/// `impl Deref<Target = Stage>` for a test file's `Scene { stage, .. }`.
#[macro_export]
macro_rules! on_stage {
    ($scene:ty) => {
        impl std::ops::Deref for $scene {
            type Target = harness::scenes::Stage;
            fn deref(&self) -> &Self::Target {
                &self.stage
            }
        }
        impl std::ops::DerefMut for $scene {
            fn deref_mut(&mut self) -> &mut Self::Target {
                &mut self.stage
            }
        }
    };
}
