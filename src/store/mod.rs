//! The database: one pool on SQLite or PostgreSQL, migrations, and the `with_db!` glue
//! that runs the same portable SQL on either backend.
//!
//! Domain modules own their SQL (`accounts/store.rs`, …); this module only owns
//! connecting, migrating and health.

pub mod calls;
mod checkpoint;
pub mod log;
pub mod sqlite;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

pub use sqlite::{Arg, DirectRow, SqliteDb};

#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqliteDb),
    Postgres(PgPool),
}

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pub db: Db,
    /// Tells this store from others in the same process (tests run many): the key of
    /// in-memory caches of what is in it.
    pub id: u64,
    /// Bumped after every commit that appended events, so the realtime dispatcher
    /// (and, in scale mode, the Redis publisher) wake without polling.
    commits: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
}

/// Runs `$body` with `$pool` bound to the concrete pool of whichever backend is in use.
/// The body is compiled once per backend, so queries stay native (no `Any` driver).
#[macro_export]
macro_rules! with_db {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite($pool) => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}

/// Starts a transaction that will write. On SQLite it is `BEGIN IMMEDIATE`: a deferred
/// transaction that reads first and then meets another writer gets `SQLITE_BUSY` at once
/// (the busy timeout does not cover the upgrade), so two people clicking at the same
/// moment would see an error. Immediate takes the write lock up front and waits for it.
/// Postgres needs nothing special: row locks wait by themselves.
pub trait BeginWrite {
    type Database: sqlx::Database;
    fn begin_write(&self) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, Self::Database>, sqlx::Error>> + Send;
}

impl BeginWrite for SqlitePool {
    type Database = sqlx::Sqlite;
    fn begin_write(&self) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error>> + Send {
        self.begin_with("BEGIN IMMEDIATE")
    }
}

impl BeginWrite for PgPool {
    type Database = sqlx::Postgres;
    fn begin_write(&self) -> impl std::future::Future<Output = Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error>> + Send {
        self.begin()
    }
}

/// How much of the SQLite file each connection maps (address space, not memory: the
/// pages are the OS page cache's, shared by every connection).
const MMAP_BYTES: u64 = 1 << 30;

/// Milliseconds since the Unix epoch: how every timestamp is stored.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Store {
    pub async fn connect(url: &str) -> Result<Store, sqlx::Error> {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let db = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                // Short, so /readyz answers 503 promptly while Postgres is down.
                .acquire_timeout(Duration::from_secs(3))
                .connect(url)
                .await?;
            Db::Postgres(pool)
        } else {
            without_sqlite_memory_statistics();
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(5))
                // Pages are read straight from the OS page cache through a shared mapping
                // instead of a `pread` and a copy into each connection's own cache: a
                // channel page of a big server touches hundreds of pages per request.
                .pragma("mmap_size", MMAP_BYTES.to_string())
                // A multi-row insert with triggers (search's) keeps a statement journal,
                // which past 64 KiB spills to a temporary file: a `pwrite` per page of
                // every group commit (9 % of a send's CPU). In memory it is a copy.
                .pragma("temp_store", "memory")
                // Checkpoints run on a thread of their own (`checkpoint`), not in a commit.
                .pragma("wal_autocheckpoint", checkpoint::FALLBACK_PAGES.to_string());
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(5))
                // A SQLite connection cannot have hung up: the ping sqlx sends before
                // handing one out is two thread hand-offs for nothing.
                .test_before_acquire(false)
                .connect_with(options.clone())
                .await?;
            // Opened after the pool, which created the file and set WAL; kept open, so
            // requests find them idle (see `sqlite`).
            let readers = SqlitePoolOptions::new()
                .min_connections(sqlite::READERS)
                .max_connections(sqlite::READERS)
                .test_before_acquire(false)
                .connect_with(options)
                .await?;
            let file: String = sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'").fetch_one(&pool).await?;
            Db::Sqlite(SqliteDb::new(pool, readers, id, &file))
        };
        Ok(Store { db, id, commits: std::sync::Arc::new(tokio::sync::watch::channel(0).0) })
    }

    /// A read's rows, the same SQL on either database (`$1`… parameters); on a SQLite
    /// file without sqlx (`sqlite`). For the reads every page makes.
    pub async fn rows<T>(&self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<T>, sqlx::Error>
    where
        T: DirectRow + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
    {
        match &self.db {
            Db::Sqlite(db) => db.select(sql, args).await,
            Db::Postgres(pool) => crate::bind_args!(sqlx::query_as::<_, T>(sql), args).fetch_all(pool).await,
        }
    }

    /// The first row of `rows`, if any.
    pub async fn row<T>(&self, sql: &str, args: &[Arg<'_>]) -> Result<Option<T>, sqlx::Error>
    where
        T: DirectRow + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
    {
        Ok(self.rows(sql, args).await?.into_iter().next())
    }

    /// The one value a read returns (`COUNT(*)`, `MAX(…)`).
    pub async fn scalar<T>(&self, sql: &str, args: &[Arg<'_>]) -> Result<T, sqlx::Error>
    where
        (T,): DirectRow + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
    {
        self.row::<(T,)>(sql, args).await?.map(|(value,)| value).ok_or(sqlx::Error::RowNotFound)
    }

    /// Tells the realtime side that events were committed.
    pub fn signal_commit(&self) {
        self.commits.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Wakes when `signal_commit` is called.
    pub fn commit_signals(&self) -> tokio::sync::watch::Receiver<u64> {
        self.commits.subscribe()
    }

    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match &self.db {
            Db::Sqlite(db) => sqlx::migrate!("migrations/sqlite").run(db.pool()).await,
            Db::Postgres(pool) => sqlx::migrate!("migrations/postgres").run(pool).await,
        }
    }

    /// True when the database answers a trivial query within two seconds.
    pub async fn is_ready(&self) -> bool {
        let ping = async {
            with_db!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))
        };
        matches!(tokio::time::timeout(Duration::from_secs(2), ping).await, Ok(Ok(())))
    }

    pub fn backend_name(&self) -> &'static str {
        match self.db {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }
}

/// SQLite counts every allocation under one global mutex (SQLITE_DEFAULT_MEMSTATUS):
/// with its mallocs, about a fifth of a conversation page's CPU went to those locks
/// in perf. Nothing reads the statistics, so they are off, set before SQLite starts.
fn without_sqlite_memory_statistics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: a valid option with an int argument, as sqlite3_config documents. Once
        // SQLite is initialized (another store in this process opened first) it returns
        // SQLITE_MISUSE and changes nothing, which is fine.
        unsafe {
            libsqlite3_sys::sqlite3_config(libsqlite3_sys::SQLITE_CONFIG_MEMSTATUS, 0 as std::os::raw::c_int);
        }
    });
}

/// Which unique constraint a failed insert hit, if any: the column name found in the
/// backend's message (SQLite: `UNIQUE constraint failed: users.email`; Postgres:
/// constraint `users_email_key`).
pub fn unique_violation(error: &sqlx::Error) -> Option<String> {
    let db_error = error.as_database_error()?;
    if !db_error.is_unique_violation() {
        return None;
    }
    let text = db_error
        .constraint()
        .map(str::to_string)
        .unwrap_or_else(|| db_error.message().to_string());
    Some(text)
}
