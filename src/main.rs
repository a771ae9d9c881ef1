//! `outpost`: the reference origin server and the bundle exporter.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
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
    /// Write the drop-in bundle (sw.js, wasm, outpost.js, outpost.d.ts,
    /// sample config) into DIR, for any web server.
    Export {
        /// Directory to write into; created if missing.
        dir: PathBuf,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Directory for the embedded database and object store.
    #[arg(long, default_value = "./outpost-data")]
    data: PathBuf,
    /// `postgres://…` to use PostgreSQL instead of the embedded SQLite.
    #[arg(long)]
    database_url: Option<String>,
    /// Where the embedded object store listens (port 0: any free port).
    /// Ignored with --s3-endpoint.
    #[arg(long, default_value = "127.0.0.1:0")]
    store_addr: SocketAddr,
    /// How long presigned URLs stay valid, in seconds.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=604_800))]
    presign_ttl_secs: u64,
    /// How long a completed Idempotency-Key is remembered, in seconds. Keep
    /// it longer than the worker's retentionMs (7 days by default), or a
    /// write replayed late could apply twice.
    #[arg(long, default_value_t = 691_200, value_parser = clap::value_parser!(u64).range(1..))]
    idempotency_ttl_secs: u64,
    /// Leave out the demo's "go offline" switch (`/api/demo/network`), which
    /// lets any logged-in page make the origin refuse API requests. Use it
    /// when the server is not a demo.
    #[arg(long)]
    no_demo_switch: bool,
    /// An external S3 endpoint (Garage, MinIO, AWS) instead of the embedded store.
    /// Path-style URLs are used: `http://host:port`, the bucket in the path.
    #[arg(long, requires_all = ["s3_bucket", "s3_access_key", "s3_secret_key"])]
    s3_endpoint: Option<String>,
    /// The bucket for uploads; created if missing and the key may.
    #[arg(long, requires = "s3_endpoint")]
    s3_bucket: Option<String>,
    /// The store's region (Garage's default is `garage`).
    #[arg(long, requires = "s3_endpoint", default_value = "garage")]
    s3_region: String,
    /// Access key id for the external store.
    #[arg(long, requires = "s3_endpoint")]
    s3_access_key: Option<String>,
    /// Secret key for the external store.
    #[arg(long, requires = "s3_endpoint")]
    s3_secret_key: Option<String>,
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
        Command::Export { dir } => export(dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("outpost: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn export(dir: PathBuf) -> anyhow::Result<()> {
    let bundle = Bundle::embedded();
    let files =
        bundle.export(&dir).map_err(|e| anyhow::anyhow!("cannot write the bundle into {}: {e}", dir.display()))?;
    println!("outpost: wrote {} to {} (bundle {})", files.join(", "), dir.display(), bundle.hash);
    Ok(())
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    if let Some(url) = &args.database_url {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            anyhow::bail!("--database-url must be a postgres:// URL, got {url:?}");
        }
    }
    let s3 = match (&args.s3_endpoint, &args.s3_bucket, &args.s3_access_key, &args.s3_secret_key) {
        (Some(endpoint), Some(bucket), Some(access_key), Some(secret_key)) => Some(S3Config {
            endpoint: endpoint.clone(),
            bucket: bucket.clone(),
            region: args.s3_region.clone(),
            access_key: access_key.clone(),
            secret_key: secret_key.clone(),
        }),
        _ => None,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let settings = Settings {
            idempotency_ttl_ms: args.idempotency_ttl_secs as i64 * 1000,
            presign_ttl_secs: args.presign_ttl_secs,
            demo_switch: !args.no_demo_switch,
        };
        let options = Options {
            data_dir: args.data.clone(),
            database_url: args.database_url.clone(),
            s3,
            store_addr: args.store_addr,
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
        tokio::spawn(sweep_idempotency_keys(state.clone()));
        println!("outpost: listening on http://{addr}/");
        let store = &state.api.store;
        let kind = if store.embedded.is_some() { "embedded object store" } else { "object store" };
        println!("outpost: {kind} at {} (bucket {})", store.config.endpoint, store.config.bucket);
        axum::serve(listener, app(state))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        Ok(())
    })
}

/// Forgets completed Idempotency-Keys past their TTL, hourly.
async fn sweep_idempotency_keys(state: AppState) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        every.tick().await;
        let ttl = state.api.settings.idempotency_ttl_ms;
        match outpost::server::idempotency::sweep(&state.api.db, outpost::db::now_ms(), ttl).await {
            Ok(n) => tracing::info!(removed = n, "swept idempotency keys"),
            Err(e) => tracing::warn!(error = %e, "idempotency key sweep failed"),
        }
    }
}
