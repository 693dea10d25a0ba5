//! Redis as a cache in front of the database session store, never the only copy.
//!
//! tower-sessions' `CachingSessionStore` fails the request when the cache errors; a
//! chat app must not sign people out or answer 500 because Redis restarted. So here
//! the database is written first (durable) and the cache after; a cache that errors,
//! times out or is disconnected is skipped, and a session missing from the cache (a
//! restarted, empty Redis) is read from the database and put back.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use fred::prelude::{ClientLike, Expiration, KeysInterface};
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};

use super::session_store::DbSessions;

/// Longest a request waits on Redis before using the database alone: a healthy Redis
/// answers in well under a millisecond, and a dead one must not stall every page.
const CACHE_WAIT: Duration = Duration::from_millis(250);

/// Keys and values as tower-sessions' Redis store wrote them (the session id; the
/// MessagePack record, expiring with the session), so sessions cached before this
/// store existed are still found.
#[derive(Clone, Debug)]
pub struct CachedSessions {
    db: DbSessions,
    pool: fred::clients::Pool,
}

fn redis_error(error: fred::error::Error) -> session_store::Error {
    session_store::Error::Backend(error.to_string())
}

impl CachedSessions {
    pub fn new(db: DbSessions, pool: fred::clients::Pool) -> CachedSessions {
        CachedSessions { db, pool }
    }

    pub fn db(&self) -> &DbSessions {
        &self.db
    }

    /// Puts `record` in the cache whether or not it is there (a refill, or a save).
    async fn put(&self, record: &Record) -> session_store::Result<()> {
        let bytes = rmp_serde::to_vec(record).map_err(|e| session_store::Error::Encode(e.to_string()))?;
        let expire = Expiration::EXAT(record.expiry_date.unix_timestamp());
        let _: () = self.pool.set(record.id.to_string(), bytes, Some(expire), None, false).await.map_err(redis_error)?;
        Ok(())
    }

    async fn get(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let bytes: Option<Vec<u8>> = self.pool.get(id.to_string()).await.map_err(redis_error)?;
        bytes.map(|b| rmp_serde::from_slice(&b).map_err(|e| session_store::Error::Decode(e.to_string()))).transpose()
    }

    async fn remove(&self, id: &Id) -> session_store::Result<()> {
        let _: () = self.pool.del(id.to_string()).await.map_err(redis_error)?;
        Ok(())
    }

    /// Runs a cache operation unless Redis is known to be down; None when it was
    /// skipped, failed or took too long (logged, never the caller's problem).
    async fn try_cache<T>(&self, what: &str, op: impl Future<Output = session_store::Result<T>>) -> Option<T> {
        if !self.pool.is_connected() {
            return None;
        }
        match tokio::time::timeout(CACHE_WAIT, op).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(error)) => {
                tracing::warn!(%error, "session cache {what} failed; using the database");
                None
            }
            Err(_) => {
                tracing::warn!("session cache {what} timed out; using the database");
                None
            }
        }
    }
}

#[async_trait]
impl SessionStore for CachedSessions {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        // The database picks the id (it retries on a collision), then the cache copies it.
        self.db.create(record).await?;
        self.try_cache("save", self.put(record)).await;
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.db.save(record).await?;
        self.try_cache("save", self.put(record)).await;
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match self.try_cache("load", self.get(id)).await {
            Some(Some(record)) => Ok(Some(record)),
            Some(None) => {
                // A miss: Redis restarted empty, or evicted the key. Refill it.
                let record = self.db.load(id).await?;
                if let Some(record) = &record {
                    self.try_cache("refill", self.put(record)).await;
                }
                Ok(record)
            }
            None => self.db.load(id).await,
        }
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.db.delete(id).await?;
        // If this fails the cached copy lives until its expiry; it names a device that
        // signing out has already removed, which `CurrentUser` refuses.
        self.try_cache("delete", self.remove(id)).await;
        Ok(())
    }
}
