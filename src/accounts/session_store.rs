//! The database session store: where every session lives, on SQLite or Postgres
//! (migration 0004), whether or not Redis caches it.
//!
//! Every write is one statement outside any transaction. On SQLite a statement that
//! starts a write takes the lock through the busy timeout, so two people signing in at
//! once wait for each other instead of one getting `database is locked`; a read-then-
//! write transaction would not (SQLite refuses to upgrade a stale read). Creating
//! never overwrites: `INSERT … ON CONFLICT DO NOTHING`, and a fresh id when the (128-bit
//! random) id was taken.
//!
//! Rows use the table and MessagePack encoding of the tower-sessions store this
//! replaced, so an upgrade signs nobody out.

use async_trait::async_trait;
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};

use crate::store::{Db, Store};
use crate::with_db;

#[derive(Clone, Debug)]
pub struct DbSessions {
    store: Store,
    sql: std::sync::Arc<Statements>,
}

/// The same statements on either backend; only the table's name differs (Postgres keeps
/// it in a schema of its own, as the store this replaced did).
#[derive(Debug)]
struct Statements {
    insert: String,
    upsert: String,
    load: String,
    delete: String,
    sweep: String,
}

impl Statements {
    fn for_table(table: &str) -> Statements {
        Statements {
            insert: format!("INSERT INTO {table} (id, data, expiry_date) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING"),
            upsert: format!(
                "INSERT INTO {table} (id, data, expiry_date) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET data = excluded.data, expiry_date = excluded.expiry_date"
            ),
            load: format!("SELECT data FROM {table} WHERE id = $1"),
            delete: format!("DELETE FROM {table} WHERE id = $1"),
            sweep: format!("DELETE FROM {table} WHERE expiry_date < $1"),
        }
    }
}

fn backend(error: sqlx::Error) -> session_store::Error {
    session_store::Error::Backend(error.to_string())
}

fn encode(record: &Record) -> session_store::Result<Vec<u8>> {
    rmp_serde::to_vec(record).map_err(|e| session_store::Error::Encode(e.to_string()))
}

impl DbSessions {
    pub fn new(store: Store) -> DbSessions {
        let table = match store.db {
            Db::Sqlite(_) => "tower_sessions",
            Db::Postgres(_) => "tower_sessions.session",
        };
        DbSessions { store, sql: std::sync::Arc::new(Statements::for_table(table)) }
    }

    /// Inserts `record` unless its id is taken; true when inserted.
    async fn insert_new(&self, record: &Record) -> session_store::Result<bool> {
        let (id, data) = (record.id.to_string(), encode(record)?);
        let sql = &self.sql.insert;
        let inserted = with_db!(self.store, pool => {
            sqlx::query(sql).bind(id).bind(data).bind(record.expiry_date).execute(pool).await.map(|r| r.rows_affected())
        })
        .map_err(backend)?;
        Ok(inserted == 1)
    }

    /// Starts the hourly sweep of expired rows (a cache expires its keys itself) and
    /// of devices idle past the session expiry.
    pub fn sweep_hourly(&self) {
        let sessions = self.clone();
        tokio::spawn(async move {
            // The first sweep an hour after start, not at once: a sweep racing the first
            // requests gains nothing (tests saw it delete rows they had just written).
            let hour = std::time::Duration::from_secs(3600);
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + hour, hour);
            loop {
                tick.tick().await;
                if let Err(error) = sessions.delete_expired().await {
                    tracing::warn!(%error, "could not delete expired sessions");
                }
                // So would the devices of sessions that expired from idleness; each
                // instance's streams of a deleted device end at its next revocation check.
                if let Err(error) = super::store::delete_idle_devices(&sessions.store).await {
                    tracing::warn!(%error, "could not delete idle devices");
                }
            }
        });
    }
}

#[async_trait]
impl ExpiredDeletion for DbSessions {
    async fn delete_expired(&self) -> session_store::Result<()> {
        let (now, sql) = (OffsetDateTime::now_utc(), &self.sql.sweep);
        with_db!(self.store, pool => sqlx::query(sql).bind(now).execute(pool).await.map(|_| ()))
        .map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl SessionStore for DbSessions {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        while !self.insert_new(record).await? {
            record.id = Id::default();
        }
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let (id, data, sql) = (record.id.to_string(), encode(record)?, &self.sql.upsert);
        with_db!(self.store, pool => sqlx::query(sql).bind(id).bind(data).bind(record.expiry_date).execute(pool).await.map(|_| ()))
        .map_err(backend)?;
        Ok(())
    }

    /// Every request reads its session, so on SQLite this is a direct read
    /// (`Store::row`). The record carries the expiry it was stored with (the
    /// `expiry_date` column is written from it), so an expired session is refused
    /// here instead of in SQL, which would need sqlx's encoding of the time.
    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let id = id.to_string();
        let data: Option<(Vec<u8>,)> = self.store.row(&self.sql.load, &[crate::store::Arg::Text(&id)]).await.map_err(backend)?;
        let Some((bytes,)) = data else { return Ok(None) };
        let record: Record = rmp_serde::from_slice(&bytes).map_err(|e| session_store::Error::Decode(e.to_string()))?;
        Ok((record.expiry_date > OffsetDateTime::now_utc()).then_some(record))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        let (id, sql) = (id.to_string(), &self.sql.delete);
        with_db!(self.store, pool => sqlx::query(sql).bind(id).execute(pool).await.map(|_| ()))
        .map_err(backend)?;
        Ok(())
    }
}
