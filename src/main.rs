//! `outpost`: the reference origin server and the bundle exporter.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use outpost::{app, AppState, Bundle, Options, Settings};

#[derive(Parser)]
#[command(name = "outpost", version, about = "Offline-first service worker: origin server and tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

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
    /// An external S3 endpoint (Garage, MinIO, AWS) instead of the embedded store.
    #[arg(long, requires_all = ["s3_bucket", "s3_access_key", "s3_secret_key"])]
    s3_endpoint: Option<String>,
    #[arg(long, requires = "s3_endpoint")]
    s3_bucket: Option<String>,
    #[arg(long, requires = "s3_endpoint", default_value = "garage")]
    s3_region: String,
    #[arg(long, requires = "s3_endpoint")]
    s3_access_key: Option<String>,
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
    let files = bundle
        .export(&dir)
        .map_err(|e| anyhow::anyhow!("cannot write the bundle into {}: {e}", dir.display()))?;
    println!("outpost: wrote {} to {} (bundle {})", files.join(", "), dir.display(), bundle.hash);
    Ok(())
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    if let Some(url) = &args.database_url {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            anyhow::bail!("--database-url must be a postgres:// URL, got {url:?}");
        }
    }
    if args.s3_endpoint.is_some() {
        anyhow::bail!("--s3-endpoint: external S3 storage is not in this build yet; omit it to use the embedded store");
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let options = Options { data_dir: args.data.clone(), database_url: args.database_url.clone(), settings: Settings::default() };
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
