//! Sessions and their cookies. Sessions live in the database (`session_store`), so
//! they survive restarts of the app and of Redis; with `REDIS_URL`, Redis caches them
//! in front of the database (`session_cache`) and is never the only copy.
//!
//! The session holds only the device id; the `devices` row is the authority on
//! whether that sign-in is still valid, so revoking a device works the same on every
//! store and every instance.

use async_trait::async_trait;
use fred::prelude::{Builder, ClientLike, Config as RedisConfig};
use tower_sessions::cookie::SameSite;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};
use tower_sessions::{Expiry, Session, SessionManagerLayer};

use super::session_cache::CachedSessions;
use super::session_store::DbSessions;
use crate::state::AppState;
use crate::store::Store;

pub const DEVICE_KEY: &str = "device";
/// Inactivity after which a session ends; every active day pushes it forward.
pub const IDLE_DAYS: i64 = 30;

/// Where sessions are kept: always the database, and with `REDIS_URL` a Redis cache
/// in front of it.
#[derive(Clone, Debug)]
pub enum SessionBackend {
    Database(DbSessions),
    Cached(CachedSessions),
}

pub async fn connect_redis(url: &str) -> Result<fred::clients::Pool, fred::error::Error> {
    let config = RedisConfig::from_url(url)?;
    let pool = Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = std::time::Duration::from_secs(3);
        })
        // fred queues commands while disconnected; without a timeout a request would
        // wait on its session for as long as Redis is down.
        .with_performance_config(|p| p.default_command_timeout = std::time::Duration::from_secs(2))
        .set_policy(fred::types::config::ReconnectPolicy::new_constant(0, 500))
        .build_pool(4)?;
    pool.init().await?;
    Ok(pool)
}

impl SessionBackend {
    pub async fn open(store: &Store, redis: Option<&fred::clients::Pool>) -> Result<SessionBackend, sqlx::Error> {
        // The table comes from the migrations; expired rows would otherwise stay forever.
        let db = DbSessions::new(store.clone());
        db.sweep_hourly();
        Ok(match redis {
            Some(pool) => SessionBackend::Cached(CachedSessions::new(db, pool.clone())),
            None => SessionBackend::Database(db),
        })
    }
}

impl SessionBackend {
    /// What the hourly sweep does: removes expired sessions from the database.
    pub async fn delete_expired(&self) -> session_store::Result<()> {
        match self {
            SessionBackend::Database(s) => s.delete_expired().await,
            SessionBackend::Cached(s) => s.db().delete_expired().await,
        }
    }
}

#[async_trait]
impl SessionStore for SessionBackend {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        match self {
            SessionBackend::Database(s) => s.create(record).await,
            SessionBackend::Cached(s) => s.create(record).await,
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        match self {
            SessionBackend::Database(s) => s.save(record).await,
            SessionBackend::Cached(s) => s.save(record).await,
        }
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match self {
            SessionBackend::Database(s) => s.load(id).await,
            SessionBackend::Cached(s) => s.load(id).await,
        }
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match self {
            SessionBackend::Database(s) => s.delete(id).await,
            SessionBackend::Cached(s) => s.delete(id).await,
        }
    }
}

/// Cookie flags: HttpOnly and SameSite=Lax always; Secure with the `__Host-` prefix
/// when users reach us over https.
pub fn layer(state: &AppState) -> SessionManagerLayer<SessionBackend> {
    let https = state.config.is_https();
    SessionManagerLayer::new(state.sessions.clone())
        .with_name(if https { "__Host-reale_session" } else { "reale_session" })
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(https)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(time::Duration::days(IDLE_DAYS)))
}

/// Starts a signed-in session for `device_id` under a fresh session id, so an id an
/// attacker planted before login is worthless after it.
pub async fn sign_in(session: &Session, device_id: i64) -> Result<(), tower_sessions::session::Error> {
    session.cycle_id().await?;
    session.insert(DEVICE_KEY, device_id).await
}
