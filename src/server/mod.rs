//! The reference origin server: `app(state) -> Router`, so tests drive it
//! with `oneshot` and `outpost serve` binds it to a socket.

pub mod api;
mod csrf;
mod error;
pub mod extract;
pub mod guard;
pub mod idempotency;
pub mod listen;
mod naming;
mod static_files;
mod write;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::{Json, Router};

use crate::auth::{SessionKey, SessionKeys};
use crate::db::Db;
use crate::store::{start_embedded, EmbeddedHandle, Presigner, S3Config};
use crate::Bundle;
pub use error::AppError;
pub use guard::HostPolicy;

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
    /// Most bytes of assets (pending or uploaded) one user may have.
    pub quota_bytes: i64,
    /// Most assets one user may have.
    pub quota_assets: i64,
    /// Which `Host` values are served (DNS rebinding).
    pub hosts: HostPolicy,
    /// Who may log in by name alone (the reference auth).
    pub name_login: NameLogin,
    /// How long a request may take before it is answered `503` (the API's
    /// budget is 10 s).
    pub request_timeout: std::time::Duration,
    /// Requests handled at once; more are answered `503` at once.
    pub max_concurrent: usize,
    /// Identical `sync/init` requests of one user share database reads
    /// (off only to measure what that buys).
    pub sync_coalescing: bool,
}

/// Who may log in by name alone, with no password (the reference auth).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameLogin {
    /// Nobody: `403 name_login_disabled`.
    Off,
    /// Clients on this machine: refused when a proxy's forwarding header
    /// (`Forwarded`, `X-Forwarded-For`, `X-Real-IP`) names a client that is
    /// not on a loopback address. What `outpost serve` does on a loopback
    /// address without `--public-host`.
    Local,
    /// Anyone who reaches the server (`--allow-name-login`).
    Anyone,
}

/// Per-user quota defaults: 10 GiB, 10,000 assets.
pub const DEFAULT_QUOTA_BYTES: i64 = 10 * 1024 * 1024 * 1024;
pub const DEFAULT_QUOTA_ASSETS: i64 = 10_000;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            idempotency_ttl_ms: 8 * 24 * 3600 * 1000,
            presign_ttl_secs: 3600,
            demo_switch: false,
            hosts: HostPolicy::Loopback,
            name_login: NameLogin::Local,
            request_timeout: std::time::Duration::from_secs(10),
            max_concurrent: 512,
            sync_coalescing: true,
            quota_bytes: DEFAULT_QUOTA_BYTES,
            quota_assets: DEFAULT_QUOTA_ASSETS,
        }
    }
}

/// Where the origin keeps its data.
#[derive(Clone)]
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
    /// The keys of session cookies; `data_dir/session.key` (made on first
    /// start) if not given. Instances behind one load balancer share them.
    pub session_keys: Option<SessionKeys>,
    /// A direct connection for migrations (PgBouncer's transaction pooling
    /// cannot hold their lock); `database_url` if not given.
    pub migrate_url: Option<String>,
    /// How long each object-store call may take.
    pub store_timeout: std::time::Duration,
    pub settings: Settings,
}

// Hand-written: database URLs may carry a password.
impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |u: &Option<String>| u.as_ref().map(|_| "<redacted>");
        f.debug_struct("Options")
            .field("data_dir", &self.data_dir)
            .field("database_url", &redact(&self.database_url))
            .field("migrate_url", &redact(&self.migrate_url))
            .field("s3", &self.s3)
            .field("store_addr", &self.store_addr)
            .field("session_keys", &self.session_keys)
            .field("store_timeout", &self.store_timeout)
            .field("settings", &self.settings)
            .finish()
    }
}

impl Options {
    /// SQLite and the embedded store under `data_dir`, default settings.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Options {
        Options {
            data_dir: data_dir.into(),
            database_url: None,
            s3: None,
            store_addr: "127.0.0.1:0".parse().expect("an address"),
            session_keys: None,
            migrate_url: None,
            store_timeout: crate::store::STORE_TIMEOUT,
            settings: Settings::default(),
        }
    }
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
    pub session_key: SessionKeys,
    pub settings: Settings,
    pub store: Arc<Store>,
    /// The demo's "go offline" switch, per user id.
    pub demo_offline: std::sync::Mutex<std::collections::HashMap<String, u8>>,
    pub limits: guard::Limits,
    /// `sync/init` reads in flight, shared by identical requests.
    pub sync_flights: api::sync::Flights,
    /// Write tasks running (a write outlives its request if the client hangs
    /// up or the answer times out): a shutdown waits for them.
    pub writes: Writes,
    /// Assets being completed, one completion at a time each.
    pub completing: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The last readiness verdict and when it was made.
    pub readiness: tokio::sync::Mutex<Option<(std::time::Instant, (&'static str, &'static str))>>,
    /// Held while the server runs: one process per `--data`.
    _lock: Option<Arc<std::fs::File>>,
}

impl Api {
    fn with_settings(&self, settings: Settings) -> Api {
        Api {
            db: self.db.clone(),
            session_key: self.session_key.clone(),
            limits: guard::Limits::new(&settings),
            settings,
            store: Arc::clone(&self.store),
            demo_offline: Default::default(),
            sync_flights: Default::default(),
            readiness: Default::default(),
            completing: Default::default(),
            writes: Default::default(),
            _lock: self._lock.clone(),
        }
    }
}

/// Counts the write tasks running.
#[derive(Default)]
pub struct Writes {
    running: Arc<std::sync::atomic::AtomicUsize>,
    done: Arc<tokio::sync::Notify>,
}

/// One running write; counted until dropped.
pub struct WriteRunning {
    running: Arc<std::sync::atomic::AtomicUsize>,
    done: Arc<tokio::sync::Notify>,
}

impl Writes {
    pub fn start(&self) -> WriteRunning {
        self.running.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        WriteRunning { running: Arc::clone(&self.running), done: Arc::clone(&self.done) }
    }

    /// Waits until no write is running, for at most `limit`; returns how
    /// many still are.
    pub async fn settle(&self, limit: std::time::Duration) -> usize {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.done.notified();
            let n = self.running.load(std::sync::atomic::Ordering::SeqCst);
            if n == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.running.load(std::sync::atomic::Ordering::SeqCst);
            }
        }
    }
}

impl Drop for WriteRunning {
    fn drop(&mut self) {
        self.running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        self.done.notify_waiters();
    }
}

/// Takes `data_dir/lock` for this process, or says which process has it.
fn lock_data_dir(dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("--data {}: cannot open {}: {e}", dir.display(), path.display()))?;
    match file.try_lock() {
        Ok(()) => {
            use std::io::Write as _;
            let _ = file.set_len(0);
            let _ = writeln!(&file, "{}", std::process::id());
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            anyhow::bail!(
                "--data {} is in use by another outpost process (pid {}); give each instance its own --data",
                dir.display(),
                holder.trim()
            )
        }
        Err(std::fs::TryLockError::Error(e)) => {
            anyhow::bail!("--data {}: cannot lock {}: {e}", dir.display(), path.display())
        }
    }
}

/// Creates the data directory owner-only (it holds keys and the database).
fn create_data_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| anyhow::anyhow!("--data {}: cannot create the data directory: {e}", dir.display()))
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
        create_data_dir(&options.data_dir)?;
        let lock = lock_data_dir(&options.data_dir)?;
        let db = match &options.database_url {
            Some(url) => Db::open_migrating(url, options.migrate_url.as_deref()).await?,
            None => Db::open_sqlite(&options.data_dir).await?,
        };
        let session_key = match options.session_keys {
            Some(keys) => keys,
            None => SessionKeys::single(SessionKey::load_or_create(&options.data_dir)?),
        };
        let store = match options.s3 {
            Some(config) => {
                let presigner = Presigner::with_timeout(&config, options.store_timeout)?;
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
                Store {
                    presigner: Presigner::with_timeout(&config, options.store_timeout)?,
                    config,
                    embedded: Some(handle),
                }
            }
        };
        let api = Api {
            db,
            session_key,
            limits: guard::Limits::new(&options.settings),
            settings: options.settings,
            store: Arc::new(store),
            demo_offline: Default::default(),
            sync_flights: Default::default(),
            readiness: Default::default(),
            completing: Default::default(),
            writes: Default::default(),
            _lock: Some(Arc::new(lock)),
        };
        Ok(AppState { bundle: Arc::new(Bundle::embedded()), api: Arc::new(api) })
    }

    /// The same database and store under other settings (the switches and
    /// limits start afresh).
    pub fn with_settings(&self, settings: Settings) -> AppState {
        AppState { bundle: Arc::clone(&self.bundle), api: Arc::new(self.api.with_settings(settings)) }
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
    let mut api = api::router();
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
    // Liveness and readiness: outside the demo switch, the limits and the
    // time budget, so that a load balancer's probe always gets an answer.
    let probes = Router::new()
        .route("/api/health", get(|| async { Json(serde_json::json!({ "ok": true })) }))
        .route("/api/ready", get(ready));
    // The probes are outside the Host check too: a load balancer's probe
    // may name the instance by its address.
    router
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard::limit))
        .fallback(|| async { AppError::NotFound })
        .layer(axum::middleware::from_fn(csrf::guard))
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard::check_host))
        .merge(probes)
        .with_state(state)
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// `GET /api/ready`: can this instance serve? The database answers a query
/// and the object store its bucket, each within a few seconds. `503` says
/// which one failed (the cause goes to the log), for a load balancer to
/// route around it. One check a second at most: the probe needs no login,
/// so it must not be a way to load the database.
async fn ready(axum::extract::State(state): axum::extract::State<AppState>) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let (db, store) = {
        let mut last = state.api.readiness.lock().await;
        match &*last {
            Some((at, verdict)) if at.elapsed() < std::time::Duration::from_secs(1) => *verdict,
            _ => {
                let verdict = check_ready(&state).await;
                *last = Some((std::time::Instant::now(), verdict));
                verdict
            }
        }
    };
    let ok = db == "ok" && store == "ok";
    let status = if ok { axum::http::StatusCode::OK } else { axum::http::StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(serde_json::json!({ "ready": ok, "database": db, "store": store }))).into_response()
}

async fn check_ready(state: &AppState) -> (&'static str, &'static str) {
    let budget = std::time::Duration::from_secs(3);
    let db = async {
        let one: (i64,) = state.api.db.fetch_one(crate::db::query_as("SELECT 1")).await?;
        anyhow::ensure!(one.0 == 1, "unexpected answer");
        Ok(())
    };
    let (db, store) = tokio::join!(
        tokio::time::timeout(budget, db),
        tokio::time::timeout(budget, state.api.store.presigner.check_bucket())
    );
    let verdict = |what: &str, r: Result<anyhow::Result<()>, tokio::time::error::Elapsed>| match r {
        Ok(Ok(())) => "ok",
        Ok(Err(e)) => {
            tracing::warn!(error = %format!("{e:#}"), "readiness: the {what} failed");
            "failing"
        }
        Err(_) => {
            tracing::warn!("readiness: the {what} did not answer within {} s", budget.as_secs());
            "no answer"
        }
    };
    (verdict("database", db), verdict("object store", store))
}
