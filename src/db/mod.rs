//! The database: SQLite (default, a file under `--data`) or PostgreSQL,
//! through one code path (sqlx's `Any` driver). The schema is portable:
//! TEXT ids and BIGINT millisecond timestamps, so every query runs
//! unchanged on both.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Connection, Executor};

/// Which database a `Db` talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A pool of connections, migrated.
#[derive(Clone, Debug)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    /// SQLite has one writer at a time; queueing writers here, in order,
    /// beats SQLite's busy handler, which sleeps and polls (a p99 of a
    /// second under load).
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Db {
    /// The embedded SQLite database `outpost.db` under `data_dir`.
    pub async fn open_sqlite(data_dir: &Path) -> anyhow::Result<Db> {
        let path = data_dir.join("outpost.db");
        Self::open(&format!("sqlite://{}?mode=rwc", path.display())).await
    }

    /// Opens `url` (`sqlite://…` or `postgres://…`) and applies migrations.
    pub async fn open(url: &str) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            anyhow::bail!("unsupported database URL (want sqlite:// or postgres://)");
        };
        let options = AnyConnectOptions::from_str(url).context("bad database URL")?;
        // One direct connection first: an unreachable server fails at once
        // instead of after the pool's acquire timeout.
        sqlx::AnyConnection::connect_with(&options)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open the database: {e}"))?
            .close()
            .await?;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 8 } else { 16 })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Writers queue for up to 5 s instead of failing at
                        // once with "database is locked".
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open the database: {e}"))?;
        if backend == Backend::Sqlite {
            // WAL lets readers run while a write commits; it is a property
            // of the file, so setting it once is enough.
            pool.execute("PRAGMA journal_mode = WAL").await?;
        }
        MIGRATOR.run(&pool).await.context("cannot migrate the database")?;
        Ok(Db { pool, backend, writer: Default::default() })
    }
}

impl Db {
    /// A transaction that will write. On SQLite it takes the write lock at
    /// once (`BEGIN IMMEDIATE`): a deferred transaction that reads first
    /// cannot upgrade its lock while another writer commits, and fails with
    /// "database is locked" instead of waiting its turn.
    /// Held for the whole of a write transaction on SQLite; nothing on
    /// PostgreSQL, whose row locks let writers run side by side.
    pub async fn writer_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match self.backend {
            Backend::Sqlite => Some(self.writer.clone().lock_owned().await),
            Backend::Postgres => None,
        }
    }

    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }
}

/// Milliseconds since the Unix epoch: the one clock of the origin. Handlers
/// read it once per request and pass it down.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Is this error a unique-key violation (a concurrent insert won)?
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}
