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
}

impl SqliteDb {
    pub fn new(pool: SqlitePool, readers: SqlitePool, id: u64) -> SqliteDb {
        SqliteDb { pool, readers, id }
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
    use super::is_read;

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
