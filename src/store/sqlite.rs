//! SQLite's side of the store: the pool that writes and one-off reads use, and a
//! second set of connections a request borrows once for all of its reads.
//!
//! Why two: sqlx runs each SQLite connection on a thread of its own, so a statement
//! through the pool is a string of thread hand-offs — check a connection out, run the
//! statement, hand the rows back, check it in again (sqlx pings it on the way back).
//! On one core those hand-offs, not SQLite, were most of a conversation page's time
//! (a page reads a dozen times). Inside [`reading`], a request's `SELECT`s run on one
//! reader connection it keeps until it has answered: one hand-off there and one back
//! per statement. Writes never take this path, so a request holding a reader can
//! always get a writer, and a request that finds no reader free reads through the
//! pool as before instead of waiting (no request ever waits on another's reader).
//!
//! The reads every page makes skip sqlx altogether (`Store::rows`, and
//! [`SqliteDb::select`] where the SQL differs by backend): they run on connections of
//! our own, on the calling thread, with statements prepared once per connection. sqlx
//! copies every value of every row on its thread and sends rows one by one; for a
//! page's ~300 rows that copying and sending cost more than SQLite's own work. A read
//! blocks its runtime thread for its duration (well under a millisecond for a page);
//! in WAL mode readers never wait for writers, so it does not wait on anyone else.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream};
use futures_util::{FutureExt, StreamExt};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnection, SqliteQueryResult, SqliteRow, SqliteStatement, SqliteTypeInfo};
use sqlx::{Describe, Either, Execute, Executor, Sqlite, SqlitePool};

/// How many connections requests can hold for their reads at once.
pub const READERS: u32 = 8;

/// The SQLite database: dereferences to the pool for everything but statements.
#[derive(Clone, Debug)]
pub struct SqliteDb {
    pool: SqlitePool,
    readers: SqlitePool,
    /// Tells this database's readers from another's (tests run many stores at once).
    id: u64,
    /// Connections for `select`; None for an in-memory database, which a connection
    /// outside sqlx's pool could not see.
    direct: Option<Arc<Direct>>,
}

impl SqliteDb {
    /// `file` is the database's path (empty for an in-memory database).
    pub fn new(pool: SqlitePool, readers: SqlitePool, id: u64, file: &str) -> SqliteDb {
        let direct = (!file.is_empty()).then(|| Arc::new(Direct { file: file.into(), idle: Default::default() }));
        if let Some(direct) = &direct {
            super::checkpoint::spawn(direct.file.clone(), Arc::downgrade(direct));
        }
        SqliteDb { pool, readers, id, direct }
    }

    /// Rows of a read, decoded into `T` (`direct_row!`), without sqlx when the database
    /// is a file. `sql` is in SQLite's dialect with `$1`… parameters, as for sqlx.
    pub async fn select<T>(&self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<T>, sqlx::Error>
    where
        T: DirectRow + for<'r> sqlx::FromRow<'r, SqliteRow> + Send + Unpin,
    {
        if let Some(direct) = &self.direct {
            let rows = direct.select(sql, args).map_err(|error| sqlx::Error::Protocol(format!("{error} in: {}", sql.trim())));
            // The read never waited, so a loop of reads (following the log while
            // writers append) would never let the writers run: it counts against the
            // task's budget like any I/O, and yields when that is spent.
            tokio::task::coop::consume_budget().await;
            return rows;
        }
        crate::bind_args!(sqlx::query_as::<_, T>(sql), args).fetch_all(self).await
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub async fn close(&self) {
        self.readers.close().await;
        self.pool.close().await;
    }

    /// The request's slot when this statement may run on its reader.
    fn slot_for(&self, sql: &str) -> Option<Slot> {
        if !is_read(sql) {
            return None;
        }
        BORROWED.try_with(Arc::clone).ok()
    }

    /// The reader this request holds, checked out now if it holds none and one is idle.
    fn reader<'g>(&self, slot: &'g mut Option<(u64, PoolConnection<Sqlite>)>) -> Option<&'g mut SqliteConnection> {
        if slot.is_none() {
            *slot = self.readers.try_acquire().map(|conn| (self.id, conn));
        }
        match slot {
            Some((id, conn)) if *id == self.id => Some(&mut **conn),
            _ => None,
        }
    }
}

impl std::ops::Deref for SqliteDb {
    type Target = SqlitePool;
    fn deref(&self) -> &SqlitePool {
        &self.pool
    }
}

/// A value bound to a `select`.
#[derive(Clone, Copy, Debug)]
pub enum Arg<'a> {
    Int(i64),
    Text(&'a str),
    Bool(bool),
}

/// A sqlx query with `args` bound in order (either backend).
#[macro_export]
macro_rules! bind_args {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match *arg {
                $crate::store::Arg::Int(v) => query.bind(v),
                $crate::store::Arg::Text(v) => query.bind(v),
                $crate::store::Arg::Bool(v) => query.bind(v),
            };
        }
        query
    }};
}

/// A row type `select` can decode without sqlx (see `direct_row!`).
pub trait DirectRow: Sized {
    /// The columns read, by name; empty to read by position (tuples).
    fn columns() -> &'static [&'static str];
    /// `at[i]` is where `columns()[i]` is in the row (looked up once per statement:
    /// by name for every value, finding columns took a quarter of a page's time).
    fn from_direct(row: &rusqlite::Row<'_>, at: &[usize]) -> rusqlite::Result<Self>;
}

/// Implements `DirectRow` for a struct whose fields are named as its columns (as
/// `sqlx::FromRow` expects too).
#[macro_export]
macro_rules! direct_row {
    ($ty:ident { $($field:ident),* $(,)? }) => {
        impl $crate::store::sqlite::DirectRow for $ty {
            fn columns() -> &'static [&'static str] {
                &[$(stringify!($field)),*]
            }
            fn from_direct(row: &rusqlite::Row<'_>, at: &[usize]) -> rusqlite::Result<Self> {
                let mut at = at.iter().copied();
                Ok($ty { $($field: row.get(at.next().unwrap_or(usize::MAX))?),* })
            }
        }
    };
}

/// Tuples decode by position, as sqlx's do.
macro_rules! direct_tuple {
    ($($t:ident $n:tt),+) => {
        impl<$($t: rusqlite::types::FromSql),+> DirectRow for ($($t,)+) {
            fn columns() -> &'static [&'static str] {
                &[]
            }
            fn from_direct(row: &rusqlite::Row<'_>, _: &[usize]) -> rusqlite::Result<Self> {
                Ok(($(row.get::<_, $t>($n)?,)+))
            }
        }
    };
}
direct_tuple!(A 0);
direct_tuple!(A 0, B 1);
direct_tuple!(A 0, B 1, C 2);
direct_tuple!(A 0, B 1, C 2, D 3);
direct_tuple!(A 0, B 1, C 2, D 3, E 4);
direct_tuple!(A 0, B 1, C 2, D 3, E 4, F 5);
direct_tuple!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
direct_tuple!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
direct_tuple!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8);
direct_tuple!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9);

/// Our own read connections to the database file, idle ones kept for the next read.
#[derive(Debug)]
struct Direct {
    file: std::path::PathBuf,
    idle: std::sync::Mutex<Vec<rusqlite::Connection>>,
}

/// Most idle connections `Direct` keeps; more are opened while more reads run at once.
const DIRECT_IDLE: usize = 8;
/// Statements each connection keeps prepared.
const DIRECT_STATEMENTS: usize = 32;

impl Direct {
    fn select<T: DirectRow>(&self, sql: &str, args: &[Arg<'_>]) -> rusqlite::Result<Vec<T>> {
        let idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.open()?,
        };
        let rows = Self::run(&conn, sql, args);
        let mut idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if idle.len() < DIRECT_IDLE {
            idle.push(conn);
        }
        rows
    }

    fn run<T: DirectRow>(conn: &rusqlite::Connection, sql: &str, args: &[Arg<'_>]) -> rusqlite::Result<Vec<T>> {
        let mut statement = conn.prepare_cached(sql)?;
        // sqlx's `$1` is, to SQLite, a parameter named "$1": bound by name, so the
        // order in which they first appear does not matter.
        for (n, arg) in args.iter().enumerate() {
            let Some(index) = statement.parameter_index(&format!("${}", n + 1))? else { continue };
            match *arg {
                Arg::Int(v) => statement.raw_bind_parameter(index, v)?,
                Arg::Text(v) => statement.raw_bind_parameter(index, v)?,
                Arg::Bool(v) => statement.raw_bind_parameter(index, v)?,
            }
        }
        let at = T::columns().iter().map(|name| statement.column_index(name)).collect::<rusqlite::Result<Vec<usize>>>()?;
        let mut rows = statement.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(T::from_direct(row, &at)?);
        }
        Ok(out)
    }

    fn open(&self) -> rusqlite::Result<rusqlite::Connection> {
        use rusqlite::OpenFlags;
        let conn = rusqlite::Connection::open_with_flags(&self.file, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Reads only: a write here would bypass the store's transactions.
        conn.pragma_update(None, "query_only", true)?;
        conn.pragma_update(None, "mmap_size", super::MMAP_BYTES as i64)?;
        conn.set_prepared_statement_cache_capacity(DIRECT_STATEMENTS);
        Ok(conn)
    }
}

type Slot = Arc<tokio::sync::Mutex<Option<(u64, PoolConnection<Sqlite>)>>>;

tokio::task_local! {
    static BORROWED: Slot;
}

/// Runs `work` (a request) with its reads on one reader connection, returned when
/// `work` finishes. Tasks it spawns read through the pool.
pub async fn reading<F: std::future::Future>(work: F) -> F::Output {
    BORROWED.scope(Slot::default(), work).await
}

/// A statement that only reads: the only kind a reader runs.
fn is_read(sql: &str) -> bool {
    let head = sql.trim_start().as_bytes();
    head.len() >= 6 && head[..6].eq_ignore_ascii_case(b"select")
}

impl<'c> Executor<'c> for &'c SqliteDb {
    type Database = Sqlite;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Result<Either<SqliteQueryResult, SqliteRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Sqlite>,
    {
        let Some(slot) = self.slot_for(query.sql()) else {
            return self.pool.fetch_many(query);
        };
        stream::once(async move {
            let mut held = slot.lock().await;
            // Collected before the lock is let go: the rows borrow the connection.
            match self.reader(&mut held) {
                Some(conn) => conn.fetch_many(query).collect::<Vec<_>>().await,
                None => self.pool.fetch_many(query).collect::<Vec<_>>().await,
            }
        })
        .flat_map(stream::iter)
        .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Option<SqliteRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Sqlite>,
    {
        let Some(slot) = self.slot_for(query.sql()) else {
            return self.pool.fetch_optional(query);
        };
        async move {
            let mut held = slot.lock().await;
            match self.reader(&mut held) {
                Some(conn) => conn.fetch_optional(query).await,
                None => self.pool.fetch_optional(query).await,
            }
        }
        .boxed()
    }

    fn prepare_with<'e, 'q: 'e>(self, sql: &'q str, parameters: &'e [SqliteTypeInfo]) -> BoxFuture<'e, Result<SqliteStatement<'q>, sqlx::Error>>
    where
        'c: 'e,
    {
        self.pool.prepare_with(sql, parameters)
    }

    fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, Result<Describe<Sqlite>, sqlx::Error>>
    where
        'c: 'e,
    {
        self.pool.describe(sql)
    }
}

#[cfg(test)]
mod tests {
    use super::{Arg, is_read};
    use crate::store::{Db, Store};

    /// A file database, so `select` takes the path without sqlx.
    async fn file_store() -> (Store, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("reale_direct_{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).expect("dir");
        let store = Store::connect(&format!("sqlite://{}", dir.join("t.db").display())).await.expect("db");
        let Db::Sqlite(db) = &store.db else { unreachable!() };
        assert!(db.direct.is_some(), "a file database is read without sqlx");
        sqlx::query("CREATE TABLE t (a INTEGER NOT NULL, b TEXT)").execute(db).await.expect("table");
        sqlx::query("INSERT INTO t VALUES (1, 'x'), (2, 'y'), (3, NULL)").execute(db).await.expect("rows");
        (store, dir)
    }

    #[tokio::test]
    async fn direct_reads_bind_parameters_by_name() {
        let (store, dir) = file_store().await;
        // `$2` before `$1`: bound by position, this would ask for a = 'y'.
        let rows: Vec<(i64, Option<String>)> =
            store.rows("SELECT a, b FROM t WHERE b = $2 AND a = $1", &[Arg::Int(2), Arg::Text("y")]).await.expect("read");
        assert_eq!(rows, vec![(2, Some("y".to_string()))]);
        let none: Option<String> = store.scalar("SELECT b FROM t WHERE a = $1", &[Arg::Int(3)]).await.expect("read");
        assert_eq!(none, None);
        let count: i64 = store.scalar("SELECT COUNT(*) FROM t WHERE $1", &[Arg::Bool(true)]).await.expect("read");
        assert_eq!(count, 3);
        // What was written through the pool a moment ago is seen.
        let Db::Sqlite(db) = &store.db else { unreachable!() };
        sqlx::query("INSERT INTO t VALUES (4, 'z')").execute(db).await.expect("write");
        let count: i64 = store.scalar("SELECT COUNT(*) FROM t", &[]).await.expect("read");
        assert_eq!(count, 4);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn direct_connections_cannot_write() {
        let (store, dir) = file_store().await;
        let written = store.rows::<(i64,)>("INSERT INTO t VALUES (5, 'w') RETURNING a", &[]).await;
        assert!(written.is_err(), "a read connection refused the write");
        let count: i64 = store.scalar("SELECT COUNT(*) FROM t", &[]).await.expect("read");
        assert_eq!(count, 3);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Commits leave their pages in the WAL; the checkpoint thread, not a commit, copies
    /// them into the database file soon after (the writers' own threshold is far off).
    #[tokio::test]
    async fn the_checkpoint_thread_copies_commits_into_the_file() {
        let (store, dir) = file_store().await;
        let file = dir.join("t.db");
        let size = || std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        // Let the thread take in the table, then measure from there.
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        let before = size();
        let Db::Sqlite(db) = &store.db else { unreachable!() };
        sqlx::query("WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 500) INSERT INTO t (a, b) SELECT v, hex(randomblob(1000)) FROM n")
            .execute(db)
            .await
            .expect("rows");
        let waited = std::time::Instant::now();
        while size() < before + 500 * 2_000 && waited.elapsed() < std::time::Duration::from_secs(3) {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(size() >= before + 500 * 2_000, "the file grew from {before} to {} bytes only", size());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn only_selects_are_reads() {
        assert!(is_read("SELECT 1"));
        assert!(is_read("\n  select id FROM users"));
        assert!(!is_read("INSERT INTO users VALUES (1)"));
        assert!(!is_read("UPDATE users SET name = 'x'"));
        assert!(!is_read("WITH x AS (SELECT 1) DELETE FROM users"));
        assert!(!is_read("sel"));
    }
}
