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

#[derive(Clone, Debug)]
pub struct DbSessions {
    store: Store,
}

fn backend(error: sqlx::Error) -> session_store::Error {
    session_store::Error::Backend(error.to_string())
}

fn encode(record: &Record) -> session_store::Result<Vec<u8>> {
    rmp_serde::to_vec(record).map_err(|e| session_store::Error::Encode(e.to_string()))
}

impl DbSessions {
    pub fn new(store: Store) -> DbSessions {
        DbSessions { store }
    }

    /// Inserts `record` unless its id is taken; true when inserted.
    async fn insert_new(&self, record: &Record) -> session_store::Result<bool> {
        let (id, data) = (record.id.to_string(), encode(record)?);
        let inserted = match &self.store.db {
            Db::Sqlite(pool) => sqlx::query(
                "INSERT INTO tower_sessions (id, data, expiry_date) VALUES (?, ?, ?) ON CONFLICT (id) DO NOTHING",
            )
            .bind(id)
            .bind(data)
            .bind(record.expiry_date)
            .execute(pool)
            .await
            .map_err(backend)?
            .rows_affected(),
            Db::Postgres(pool) => sqlx::query(
                "INSERT INTO tower_sessions.session (id, data, expiry_date) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
            )
            .bind(id)
            .bind(data)
            .bind(record.expiry_date)
            .execute(pool)
            .await
            .map_err(backend)?
            .rows_affected(),
        };
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
        let now = OffsetDateTime::now_utc();
        match &self.store.db {
            Db::Sqlite(pool) => {
                sqlx::query("DELETE FROM tower_sessions WHERE expiry_date < ?").bind(now).execute(pool).await.map(|_| ())
            }
            Db::Postgres(pool) => {
                sqlx::query("DELETE FROM tower_sessions.session WHERE expiry_date < $1").bind(now).execute(pool).await.map(|_| ())
            }
        }
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
        let (id, data) = (record.id.to_string(), encode(record)?);
        match &self.store.db {
            Db::Sqlite(pool) => {
                sqlx::query(
                    "INSERT INTO tower_sessions (id, data, expiry_date) VALUES (?, ?, ?)
                     ON CONFLICT (id) DO UPDATE SET data = excluded.data, expiry_date = excluded.expiry_date",
                )
                .bind(id)
                .bind(data)
                .bind(record.expiry_date)
                .execute(pool)
                .await
                .map(|_| ())
            }
            Db::Postgres(pool) => {
                sqlx::query(
                    "INSERT INTO tower_sessions.session (id, data, expiry_date) VALUES ($1, $2, $3)
                     ON CONFLICT (id) DO UPDATE SET data = excluded.data, expiry_date = excluded.expiry_date",
                )
                .bind(id)
                .bind(data)
                .bind(record.expiry_date)
                .execute(pool)
                .await
                .map(|_| ())
            }
        }
        .map_err(backend)?;
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let (id, now) = (id.to_string(), OffsetDateTime::now_utc());
        let data: Option<Vec<u8>> = match &self.store.db {
            Db::Sqlite(pool) => {
                sqlx::query_scalar("SELECT data FROM tower_sessions WHERE id = ? AND expiry_date > ?")
                    .bind(id)
                    .bind(now)
                    .fetch_optional(pool)
                    .await
            }
            Db::Postgres(pool) => {
                sqlx::query_scalar("SELECT data FROM tower_sessions.session WHERE id = $1 AND expiry_date > $2")
                    .bind(id)
                    .bind(now)
                    .fetch_optional(pool)
                    .await
            }
        }
        .map_err(backend)?;
        data.map(|bytes| rmp_serde::from_slice(&bytes).map_err(|e| session_store::Error::Decode(e.to_string())))
            .transpose()
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        let id = id.to_string();
        match &self.store.db {
            Db::Sqlite(pool) => sqlx::query("DELETE FROM tower_sessions WHERE id = ?").bind(id).execute(pool).await.map(|_| ()),
            Db::Postgres(pool) => {
                sqlx::query("DELETE FROM tower_sessions.session WHERE id = $1").bind(id).execute(pool).await.map(|_| ())
            }
        }
        .map_err(backend)?;
        Ok(())
    }
}
