//! `outpost`: the reference origin server and the bundle exporter.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use std::time::Duration;

use outpost::auth::SessionKeys;
use outpost::server::{HostPolicy, NameLogin};
use outpost::store::S3Config;
use outpost::{app, AppState, Bundle, Options, Settings};

#[derive(Parser)]
#[command(name = "outpost", version, about = "Offline-first service worker: origin server and tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at startup, so boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Serve the demo, the worker bundle and the API.
    Serve(ServeArgs),
    /// End every session of a user now, on every instance (their cookies,
    /// copies included, are no login any more).
    RevokeSessions(RevokeArgs),
    /// Write the drop-in bundle (sw.js, wasm, outpost.js, outpost.d.ts,
    /// sample config) into DIR, for any web server.
    Export {
        /// Directory to write into; created if missing.
        dir: PathBuf,
        /// Write an npm package instead (`npm pack` in DIR makes the
        /// tarball): the worker, the page client as `outpost-sw/client`, and
        /// the `outpost-install` command.
        #[arg(long)]
        npm: bool,
    },
}

/// Every flag can also come from the `OUTPOST_*` variable named in its
/// help; secrets (the session keys, the S3 secret, a database password in
/// the URL) need never be on the command line, where `ps` shows them.
#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "OUTPOST_ADDR", default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Directory for the embedded database and object store, and the
    /// session key unless one is given; locked by one process at a time.
    #[arg(long, env = "OUTPOST_DATA", default_value = "./outpost-data")]
    data: PathBuf,
    /// `postgres://…` to use PostgreSQL instead of the embedded SQLite
    /// (`?sslmode=verify-full` for a remote server). Needs an external
    /// object store (--s3-endpoint): the embedded one is per instance.
    #[arg(long, env = "OUTPOST_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// A direct `postgres://…` URL for migrations, when --database-url goes
    /// through PgBouncer in transaction mode (which cannot hold their lock).
    #[arg(long, env = "OUTPOST_MIGRATE_URL", hide_env_values = true, requires = "database_url")]
    migrate_url: Option<String>,
    /// Where the embedded object store listens (port 0: any free port).
    /// Ignored with --s3-endpoint.
    #[arg(long, env = "OUTPOST_STORE_ADDR", default_value = "127.0.0.1:0")]
    store_addr: SocketAddr,
    /// How long presigned URLs stay valid, in seconds.
    #[arg(long, env = "OUTPOST_PRESIGN_TTL_SECS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=604_800))]
    presign_ttl_secs: u64,
    /// How long a completed Idempotency-Key is remembered, in seconds. Keep
    /// it longer than the worker's retentionMs (7 days by default), or a
    /// write replayed late could apply twice.
    #[arg(long, env = "OUTPOST_IDEMPOTENCY_TTL_SECS", default_value_t = 691_200, value_parser = clap::value_parser!(u64).range(1..))]
    idempotency_ttl_secs: u64,
    /// Serve the demo's "go offline" switch (`/api/demo/network`), with
    /// which a logged-in user makes the origin refuse their own API
    /// requests. For demos only; `./scripts/demo.sh` turns it on.
    #[arg(long, env = "OUTPOST_DEMO_SWITCH")]
    demo_switch: bool,
    /// The switch is off unless --demo-switch; kept so that older scripts
    /// still start.
    #[arg(long, hide = true)]
    no_demo_switch: bool,
    /// Host names browsers reach this server by (repeat, or comma-separate
    /// in the variable). Requests for any other `Host` are refused, which
    /// stops DNS rebinding. Needed when --addr is not a loopback address;
    /// on a loopback address, loopback names on any port are served.
    #[arg(long = "public-host", env = "OUTPOST_PUBLIC_HOSTS", value_delimiter = ',')]
    public_hosts: Vec<String>,
    /// Allow the reference login (by name alone, no password) on a
    /// non-loopback address: for a trusted network only.
    #[arg(long, env = "OUTPOST_ALLOW_NAME_LOGIN")]
    allow_name_login: bool,
    /// Session-cookie keys, 64 hex digits each (`openssl rand -hex 32`),
    /// comma-separated: the first signs, the others are still accepted
    /// (rotation). Instances behind one load balancer must share them.
    #[arg(long, env = "OUTPOST_SESSION_KEYS", hide_env_values = true, conflicts_with = "session_key_file")]
    session_keys: Option<String>,
    /// A file of session-cookie keys, one per line, the signing key first.
    #[arg(long, env = "OUTPOST_SESSION_KEY_FILE")]
    session_key_file: Option<PathBuf>,
    /// How long one request may take before it is answered 503, in seconds.
    #[arg(long, env = "OUTPOST_REQUEST_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    request_timeout_secs: u64,
    /// How many requests are handled at once; more are answered 503.
    #[arg(long, env = "OUTPOST_MAX_CONCURRENT_REQUESTS", default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    max_concurrent_requests: u64,
    /// How long one object-store call may take, in seconds.
    #[arg(long, env = "OUTPOST_STORE_TIMEOUT_SECS", default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=600))]
    store_timeout_secs: u64,
    /// On SIGTERM or Ctrl-C, how long requests in flight may take to finish.
    #[arg(long, env = "OUTPOST_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    shutdown_grace_secs: u64,
    /// Most bytes of assets one user may keep.
    #[arg(long, env = "OUTPOST_QUOTA_BYTES", default_value_t = outpost::server::DEFAULT_QUOTA_BYTES)]
    quota_bytes: i64,
    /// Most assets one user may keep.
    #[arg(long, env = "OUTPOST_QUOTA_ASSETS", default_value_t = outpost::server::DEFAULT_QUOTA_ASSETS)]
    quota_assets: i64,
    /// How long after its last URL expired a pending upload is kept before
    /// the sweeper aborts and deletes it, in seconds (7 days by default:
    /// the worker's retention, so an upload a device still holds can ask
    /// for a new URL until then).
    #[arg(long, env = "OUTPOST_ABANDONED_UPLOAD_GRACE_SECS", default_value_t = 7 * 24 * 3600)]
    abandoned_upload_grace_secs: u64,
    /// Serve each `sync/init` from its own database read (to measure what
    /// sharing them buys).
    #[arg(long, hide = true)]
    no_sync_coalescing: bool,
    #[command(flatten)]
    s3: S3Args,
}

#[derive(Args)]
struct S3Args {
    /// An external S3 endpoint (Garage, MinIO, AWS) instead of the embedded
    /// store: `http://host:port` or `https://…`; the bucket goes in the path.
    #[arg(long, env = "OUTPOST_S3_ENDPOINT", requires_all = ["s3_bucket", "s3_access_key"])]
    s3_endpoint: Option<String>,
    /// The bucket for uploads; created if missing and the key may.
    #[arg(long, env = "OUTPOST_S3_BUCKET", requires = "s3_endpoint")]
    s3_bucket: Option<String>,
    /// The store's region (Garage's default is `garage`).
    #[arg(long, env = "OUTPOST_S3_REGION", requires = "s3_endpoint", default_value = "garage")]
    s3_region: String,
    /// Access key id for the external store.
    #[arg(long, env = "OUTPOST_S3_ACCESS_KEY", requires = "s3_endpoint")]
    s3_access_key: Option<String>,
    /// Secret key for the external store (better: OUTPOST_S3_SECRET_KEY or
    /// --s3-secret-key-file).
    #[arg(long, env = "OUTPOST_S3_SECRET_KEY", hide_env_values = true, requires = "s3_endpoint")]
    s3_secret_key: Option<String>,
    /// A file holding the secret key for the external store.
    #[arg(long, env = "OUTPOST_S3_SECRET_KEY_FILE", requires = "s3_endpoint", conflicts_with = "s3_secret_key")]
    s3_secret_key_file: Option<PathBuf>,
}

#[derive(Args)]
struct RevokeArgs {
    /// The user whose sessions end (the name they log in with).
    #[arg(long)]
    user: String,
    /// The data directory of an origin on SQLite.
    #[arg(long, env = "OUTPOST_DATA", default_value = "./outpost-data")]
    data: PathBuf,
    /// The origin's PostgreSQL database.
    #[arg(long, env = "OUTPOST_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OUTPOST_LOG").unwrap_or_else(|_| "outpost=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::RevokeSessions(args) => revoke_sessions(args),
        Command::Export { dir, npm } => export(dir, npm),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("outpost: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn export(dir: PathBuf, npm: bool) -> anyhow::Result<()> {
    let bundle = Bundle::embedded();
    let files = if npm { bundle.export_npm(&dir) } else { bundle.export(&dir) }
        .map_err(|e| anyhow::anyhow!("cannot write the bundle into {}: {e}", dir.display()))?;
    println!("outpost: wrote {} to {} (bundle {})", files.join(", "), dir.display(), bundle.hash);
    Ok(())
}

/// Whether a database URL names this machine (or a Unix socket), where
/// plaintext is no exposure.
fn is_local_database(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = host
        .strip_prefix('[')
        .map_or_else(|| host.rsplit_once(':').map_or(host, |(h, _)| h), |v6| v6.split(']').next().unwrap_or_default());
    host.is_empty()
        || host == "localhost"
        || host.starts_with('/')
        || host.starts_with("%2F")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
        || url.contains("host=/")
        || url.contains("host=%2F")
}

fn check_database_url(flag: &str, url: &str) -> anyhow::Result<()> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        anyhow::bail!("{flag} must be a postgres:// URL");
    }
    if !is_local_database(url) && !url.contains("sslmode=") {
        eprintln!(
            "outpost: warning: {flag} names a remote server without sslmode: the connection may be plaintext. \
             Add ?sslmode=verify-full (or sslmode=require)."
        );
    }
    Ok(())
}

fn read_secret(path: &std::path::Path, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {what} from {}: {e}", path.display()))
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    if let Some(url) = &args.database_url {
        check_database_url("--database-url", url)?;
        if args.s3.s3_endpoint.is_none() {
            anyhow::bail!(
                "--database-url needs --s3-endpoint: the embedded object store is per instance, so assets recorded \
                 in a shared database would exist on one machine only"
            );
        }
    }
    if let Some(url) = &args.migrate_url {
        check_database_url("--migrate-url", url)?;
    }
    if args.database_url.is_some() && args.session_keys.is_none() && args.session_key_file.is_none() {
        anyhow::bail!(
            "--database-url needs the session keys every instance shares: set OUTPOST_SESSION_KEYS (openssl rand \
             -hex 32) or --session-key-file; a key per instance would log users out at every switch"
        );
    }
    let s3 = match (&args.s3.s3_endpoint, &args.s3.s3_bucket, &args.s3.s3_access_key) {
        (Some(endpoint), Some(bucket), Some(access_key)) => {
            let secret_key = match (&args.s3.s3_secret_key, &args.s3.s3_secret_key_file) {
                (Some(secret), _) => secret.clone(),
                (None, Some(path)) => read_secret(path, "the S3 secret key")?.trim().to_string(),
                (None, None) => {
                    anyhow::bail!("--s3-endpoint needs a secret key: set OUTPOST_S3_SECRET_KEY or --s3-secret-key-file")
                }
            };
            Some(S3Config {
                endpoint: endpoint.clone(),
                bucket: bucket.clone(),
                region: args.s3.s3_region.clone(),
                access_key: access_key.clone(),
                secret_key,
            })
        }
        _ => None,
    };
    let session_keys = match (&args.session_keys, &args.session_key_file) {
        (Some(keys), _) => Some(SessionKeys::parse(keys).map_err(|e| anyhow::anyhow!("OUTPOST_SESSION_KEYS: {e}"))?),
        (None, Some(path)) => Some(
            SessionKeys::parse(&read_secret(path, "the session keys")?)
                .map_err(|e| anyhow::anyhow!("--session-key-file {}: {e}", path.display()))?,
        ),
        (None, None) => None,
    };
    let loopback = args.addr.ip().is_loopback();
    let hosts: Vec<String> =
        args.public_hosts.iter().map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()).collect();
    let hosts = match (loopback, hosts.is_empty()) {
        (true, true) => HostPolicy::Loopback,
        (false, true) => anyhow::bail!(
            "--addr {} is not a loopback address: give --public-host NAME (the host names browsers use), \
             so that requests for other names (DNS rebinding) are refused",
            args.addr
        ),
        (_, false) => HostPolicy::Names(hosts),
    };
    // By name alone (no password): for a server used from its own machine.
    // Public host names mean it is reached from elsewhere (through a proxy
    // on this machine, say), whatever address it listens on.
    let name_login = match (args.allow_name_login, loopback && args.public_hosts.is_empty()) {
        (true, _) => NameLogin::Anyone,
        (false, true) => NameLogin::Local,
        (false, false) => NameLogin::Off,
    };
    if !loopback && args.allow_name_login {
        eprintln!(
            "outpost: warning: --allow-name-login on {}: anyone who reaches this address can log in as any name",
            args.addr
        );
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let settings = Settings {
            idempotency_ttl_ms: args.idempotency_ttl_secs as i64 * 1000,
            presign_ttl_secs: args.presign_ttl_secs,
            demo_switch: args.demo_switch && !args.no_demo_switch,
            quota_bytes: args.quota_bytes,
            quota_assets: args.quota_assets,
            hosts,
            name_login,
            request_timeout: Duration::from_secs(args.request_timeout_secs),
            max_concurrent: args.max_concurrent_requests as usize,
            sync_coalescing: !args.no_sync_coalescing,
        };
        let options = Options {
            data_dir: args.data.clone(),
            database_url: args.database_url.clone(),
            migrate_url: args.migrate_url.clone(),
            s3,
            store_addr: args.store_addr,
            session_keys,
            store_timeout: Duration::from_secs(args.store_timeout_secs),
            settings,
        };
        let state = AppState::open(options).await.map_err(|e| match &args.database_url {
            Some(_) => anyhow::anyhow!("--database-url: {e:#}"),
            None => e,
        })?;
        let listener = tokio::net::TcpListener::bind(args.addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.addr))?;
        let addr = listener.local_addr()?;
        tokio::spawn(sweep(state.clone(), args.abandoned_upload_grace_secs as i64 * 1000));
        println!("outpost: listening on http://{addr}/");
        let store = &state.api.store;
        let kind = if store.embedded.is_some() { "embedded object store" } else { "object store" };
        println!("outpost: {kind} at {} (bucket {})", store.config.endpoint, store.config.bucket);
        let grace = Duration::from_secs(args.shutdown_grace_secs);
        let open = outpost::server::listen::serve(listener, app(state.clone()), stop_signal(), grace).await;
        // Writes whose client hung up (or whose answer timed out) may still
        // run: they get another grace period to finish.
        let left = state.api.writes.settle(grace).await;
        if left > 0 {
            eprintln!(
                "outpost: {left} writes were still running at the deadline (their Idempotency-Key leases expire)"
            );
        }
        if open > 0 {
            eprintln!("outpost: stopped with {open} connections still open after {} s", grace.as_secs());
        } else {
            eprintln!("outpost: stopped");
        }
        Ok(())
    })
}

/// SIGTERM (what containers and systemd send) or Ctrl-C.
async fn stop_signal() {
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("a SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    eprintln!("outpost: stopping: finishing the requests in flight");
}

fn revoke_sessions(args: RevokeArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let db = match &args.database_url {
            Some(url) => {
                check_database_url("--database-url", url)?;
                outpost::db::Db::open(url).await?
            }
            None => {
                let file = args.data.join("outpost.db");
                anyhow::ensure!(file.exists(), "no database at {}: give the server's --data", file.display());
                outpost::db::Db::open_sqlite(&args.data).await?
            }
        };
        let now = outpost::db::now_ms();
        let done = db
            .execute(
                outpost::db::query("UPDATE users SET sessions_not_before = $1 WHERE name = $2")
                    .bind(now)
                    .bind(&args.user),
            )
            .await?;
        anyhow::ensure!(done.rows_affected() == 1, "no user is named {:?}", args.user);
        println!("outpost: every session of {:?} issued until now is revoked", args.user);
        Ok(())
    })
}

/// Hourly: forgets completed Idempotency-Keys past their TTL and revoked
/// sessions past their expiry, and aborts uploads left pending.
async fn sweep(state: AppState, upload_grace_ms: i64) {
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    loop {
        every.tick().await;
        let ttl = state.api.settings.idempotency_ttl_ms;
        let now = outpost::db::now_ms();
        match outpost::server::idempotency::sweep(&state.api.db, now, ttl).await {
            Ok(n) => tracing::info!(removed = n, "swept idempotency keys"),
            Err(e) => tracing::warn!(error = %e, "idempotency key sweep failed"),
        }
        match outpost::server::api::assets::sweep_abandoned(&state, now, upload_grace_ms).await {
            Ok(n) => tracing::info!(removed = n, "swept abandoned uploads"),
            Err(e) => tracing::warn!(error = %e, "abandoned upload sweep failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn local_database_urls() {
        for local in [
            "postgres://u:p@localhost/db",
            "postgres://u:p@127.0.0.1:5432/db",
            "postgres://u@[::1]:5432/db",
            "postgres:///db?host=/run/postgresql",
            "postgres://u@%2Frun%2Fpostgresql/db",
        ] {
            assert!(super::is_local_database(local), "{local}");
        }
        for remote in
            ["postgres://u:p@db.example.com/db", "postgres://u@10.0.0.5:6432/db", "postgres://u@[2001:db8::1]/db"]
        {
            assert!(!super::is_local_database(remote), "{remote}");
        }
    }
}
