//! The database: SQLite (default, a file under `--data`) or PostgreSQL,
//! through one code path (sqlx's `Any` driver). The schema is portable:
//! TEXT ids and BIGINT millisecond timestamps, so every query runs
//! unchanged on both.
//!
//! Every statement runs inside a transaction and unprepared ([`query`],
//! [`query_as`], [`Db::conn`]): that is what PgBouncer's transaction
//! pooling needs. It may hand each transaction to another server
//! connection, so a named prepared statement can be missing there, or
//! clash with another client's of the same name; and outside a transaction
//! even an unnamed one can be lost between its parse and its execution,
//! which sqlx sends as two round trips.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::query::{Query, QueryAs};
use sqlx::{Any, AnyPool, Connection, Executor, FromRow};

/// A statement that is not kept prepared on the connection (see the
/// module's comment).
pub fn query(sql: &str) -> Query<'_, Any, AnyArguments<'_>> {
    sqlx::query(sql).persistent(false)
}

/// [`query`], with its rows read as `O`.
pub fn query_as<'q, O>(sql: &'q str) -> QueryAs<'q, Any, O, AnyArguments<'q>>
where
    O: for<'r> FromRow<'r, AnyRow>,
{
    sqlx::query_as(sql).persistent(false)
}

/// A unit of work on the database: always a transaction (see the module's
/// comment). Commit it; a dropped one rolls back.
pub type Tx = sqlx::Transaction<'static, Any>;

/// How long a write waits for SQLite's single writer before the request is
/// answered `503` with `Retry-After` (the API's answers stay within the
/// 10 s budget).
pub const WRITER_WAIT: Duration = Duration::from_secs(5);

/// The writer was busy for longer than [`WRITER_WAIT`].
#[derive(Debug)]
pub struct WriterBusy;

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

/// The migrations, run so that a binary one release older still starts on
/// a database a newer one migrated (docs/operations.md: migrations are
/// additive, so the previous release is the rollback).
fn migrator() -> sqlx::migrate::Migrator {
    let mut m = sqlx::migrate::Migrator { ignore_missing: true, ..sqlx::migrate::Migrator::DEFAULT };
    m.migrations = MIGRATOR.migrations.clone();
    m
}

impl Db {
    /// The embedded SQLite database `outpost.db` under `data_dir`.
    pub async fn open_sqlite(data_dir: &Path) -> anyhow::Result<Db> {
        let path = data_dir.join("outpost.db");
        Self::open(&format!("sqlite://{}?mode=rwc", path.display())).await
    }

    /// Opens `url` (`sqlite://…` or `postgres://…`) and applies migrations
    /// over it.
    pub async fn open(url: &str) -> anyhow::Result<Db> {
        Self::open_migrating(url, None).await
    }

    /// Opens `url` and applies the migrations it lacks over `migrate_url`
    /// (a direct connection to PostgreSQL: migrations take a session lock,
    /// which PgBouncer's transaction pooling cannot hold), or over `url`.
    pub async fn open_migrating(url: &str, migrate_url: Option<&str>) -> anyhow::Result<Db> {
        let db = Self::connect(url).await?;
        if db.pending_migrations().await? > 0 {
            let target = migrate_url.unwrap_or(url);
            let options = AnyConnectOptions::from_str(target).context("bad migration database URL")?;
            let mut conn = sqlx::AnyConnection::connect_with(&options)
                .await
                .map_err(|e| anyhow::anyhow!("cannot open the database to migrate it: {e}"))?;
            migrator().run(&mut conn).await.context("cannot migrate the database")?;
            conn.close().await?;
        }
        Ok(db)
    }

    /// How many of this build's migrations the database has not applied.
    /// Read with unprepared statements, so that it works through PgBouncer.
    pub async fn pending_migrations(&self) -> anyhow::Result<usize> {
        let mut tx = self.conn().await?;
        let applied: Result<Vec<(i64,)>, _> =
            query_as("SELECT version FROM _sqlx_migrations WHERE success = TRUE").fetch_all(&mut *tx).await;
        drop(tx);
        let applied: std::collections::HashSet<i64> = match applied {
            Ok(rows) => rows.into_iter().map(|(v,)| v).collect(),
            // No table yet: a new database.
            Err(_) => Default::default(),
        };
        Ok(MIGRATOR.iter().filter(|m| !applied.contains(&m.version)).count())
    }

    async fn connect(url: &str) -> anyhow::Result<Db> {
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
                        // FULL: a write the API confirmed survives a power
                        // loss (the worker deletes its copy on that answer).
                        conn.execute("PRAGMA synchronous = FULL").await?;
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
    /// Waits at most [`WRITER_WAIT`] for it.
    pub async fn writer_turn(&self) -> Result<Option<tokio::sync::OwnedMutexGuard<()>>, WriterBusy> {
        match self.backend {
            Backend::Sqlite => tokio::time::timeout(WRITER_WAIT, self.writer.clone().lock_owned())
                .await
                .map(Some)
                .map_err(|_| WriterBusy),
            Backend::Postgres => Ok(None),
        }
    }

    /// A transaction for reads and for single statements (see the module's
    /// comment).
    pub async fn conn(&self) -> Result<Tx, sqlx::Error> {
        self.pool.begin().await
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

impl Db {
    /// Runs one read in its own transaction (see the module's comment).
    pub async fn fetch_all<'q, O>(&self, q: QueryAs<'q, Any, O, AnyArguments<'q>>) -> Result<Vec<O>, sqlx::Error>
    where
        O: Send + Unpin + for<'r> FromRow<'r, AnyRow>,
    {
        let mut tx = self.conn().await?;
        let rows = q.fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// [`Db::fetch_all`] for at most one row.
    pub async fn fetch_optional<'q, O>(
        &self,
        q: QueryAs<'q, Any, O, AnyArguments<'q>>,
    ) -> Result<Option<O>, sqlx::Error>
    where
        O: Send + Unpin + for<'r> FromRow<'r, AnyRow>,
    {
        let mut tx = self.conn().await?;
        let row = q.fetch_optional(&mut *tx).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// [`Db::fetch_all`] for exactly one row.
    pub async fn fetch_one<'q, O>(&self, q: QueryAs<'q, Any, O, AnyArguments<'q>>) -> Result<O, sqlx::Error>
    where
        O: Send + Unpin + for<'r> FromRow<'r, AnyRow>,
    {
        let mut tx = self.conn().await?;
        let row = q.fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// One statement in its own transaction (see the module's comment).
    pub async fn execute<'q>(
        &self,
        q: Query<'q, Any, AnyArguments<'q>>,
    ) -> Result<sqlx::any::AnyQueryResult, sqlx::Error> {
        let mut tx = self.conn().await?;
        let done = q.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done)
    }
}
