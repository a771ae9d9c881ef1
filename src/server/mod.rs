//! The reference origin server: `app(state) -> Router`, so tests drive it
//! with `oneshot` and `outpost serve` binds it to a socket.

mod api;
mod csrf;
mod error;
pub mod extract;
pub mod idempotency;
mod naming;
mod static_files;
mod write;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::{Json, Router};

use crate::auth::SessionKey;
use crate::db::Db;
use crate::store::{start_embedded, EmbeddedHandle, Presigner, S3Config};
use crate::Bundle;
pub use error::AppError;

/// Tunables of the API, with the documented defaults.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a completed Idempotency-Key is remembered (default 8 days:
    /// longer than the worker's 7-day retention, so a write replayed at the
    /// end of it still finds its key and cannot apply twice).
    pub idempotency_ttl_ms: i64,
    /// How long presigned URLs stay valid (default 1 h).
    pub presign_ttl_secs: u64,
    /// Serve the demo's "go offline" switch (`/api/demo/network`).
    pub demo_switch: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { idempotency_ttl_ms: 8 * 24 * 3600 * 1000, presign_ttl_secs: 3600, demo_switch: true }
    }
}

/// Where the origin keeps its data.
#[derive(Debug, Clone)]
pub struct Options {
    /// The data directory: SQLite database, session key, embedded store.
    pub data_dir: PathBuf,
    /// `postgres://…` to use PostgreSQL; SQLite under `data_dir` otherwise.
    pub database_url: Option<String>,
    /// An external S3 store; the embedded one under `data_dir/store`
    /// otherwise.
    pub s3: Option<S3Config>,
    /// Where the embedded store listens (port 0: any free port).
    pub store_addr: SocketAddr,
    pub settings: Settings,
}

/// The object store the API presigns against.
pub struct Store {
    pub config: S3Config,
    pub presigner: Presigner,
    /// Keeps the embedded server running (None for an external store).
    pub embedded: Option<EmbeddedHandle>,
}

/// What the API handlers share.
pub struct Api {
    pub db: Db,
    pub session_key: SessionKey,
    pub settings: Settings,
    pub store: Arc<Store>,
    /// The demo's "go offline" switch.
    pub demo_offline: std::sync::atomic::AtomicU8,
}

/// Shared by every handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub bundle: Arc<Bundle>,
    pub api: Arc<Api>,
}

impl AppState {
    /// Opens (and migrates) the database and loads the session key.
    pub async fn open(options: Options) -> anyhow::Result<AppState> {
        std::fs::create_dir_all(&options.data_dir).map_err(|e| {
            anyhow::anyhow!("--data {}: cannot create the data directory: {e}", options.data_dir.display())
        })?;
        let db = match &options.database_url {
            Some(url) => Db::open(url).await?,
            None => Db::open_sqlite(&options.data_dir).await?,
        };
        let session_key = SessionKey::load_or_create(&options.data_dir)?;
        let store = match options.s3 {
            Some(config) => {
                let presigner = Presigner::new(&config)?;
                presigner
                    .ensure_bucket()
                    .await
                    .map_err(|e| anyhow::anyhow!("the S3 store at {} is unusable: {e:#}", config.endpoint))?;
                Store { config, presigner, embedded: None }
            }
            None => {
                // Any page origin may use the embedded store: the presigned
                // signature, not the origin, is what authorises a request.
                let (config, handle) =
                    start_embedded(&options.data_dir.join("store"), options.store_addr, &["*".to_string()]).await?;
                Store { presigner: Presigner::new(&config)?, config, embedded: Some(handle) }
            }
        };
        let api = Api {
            db,
            session_key,
            settings: options.settings,
            store: Arc::new(store),
            demo_offline: std::sync::atomic::AtomicU8::new(0),
        };
        Ok(AppState { bundle: Arc::new(Bundle::embedded()), api: Arc::new(api) })
    }

    /// The same API serving another worker bundle (a redeploy).
    pub fn with_bundle(&self, bundle: Bundle) -> AppState {
        AppState { bundle: Arc::new(bundle), api: Arc::clone(&self.api) }
    }
}

/// The whole origin: the worker bundle, the demo, and the API.
pub fn app(state: AppState) -> Router {
    routes(state, true)
}

/// The API alone (`/api/...`), for a site that serves the worker bundle
/// and its pages itself (say, from `outpost export`).
pub fn api_app(state: AppState) -> Router {
    routes(state, false)
}

fn routes(state: AppState, with_bundle: bool) -> Router {
    let mut api = api::router().route("/health", get(|| async { Json(serde_json::json!({ "ok": true })) }));
    if state.api.settings.demo_switch {
        api = api.merge(api::demo::router());
    }
    let api = api
        .layer(DefaultBodyLimit::max(extract::BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(state.clone(), naming::name_user));
    let mut router = Router::new().nest("/api", api);
    if with_bundle {
        router = router.merge(static_files::router());
    }
    let router = if state.api.settings.demo_switch {
        router.layer(axum::middleware::from_fn_with_state(state.clone(), api::demo::gate))
    } else {
        router
    };
    router
        .fallback(|| async { AppError::NotFound })
        .with_state(state)
        .layer(axum::middleware::from_fn(csrf::guard))
        .layer(tower_http::trace::TraceLayer::new_for_http())
}
