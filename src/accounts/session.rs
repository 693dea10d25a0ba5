//! Session storage and cookies: tower-sessions with its SQLite or Postgres store by
//! default (sessions survive restarts), or the Redis store when `REDIS_URL` is set.
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
use tower_sessions_redis_store::RedisStore;
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

use crate::state::AppState;
use crate::store::{Db, Store};

pub const DEVICE_KEY: &str = "device";
/// Inactivity after which a session ends; every active day pushes it forward.
pub const IDLE_DAYS: i64 = 30;

#[derive(Clone, Debug)]
pub enum SessionBackend {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
    Redis(RedisStore<fred::clients::Pool>),
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
        let backend = match (redis, &store.db) {
            (Some(redis), _) => SessionBackend::Redis(RedisStore::new(redis.clone())),
            (None, Db::Sqlite(pool)) => {
                let sessions = SqliteStore::new(pool.clone());
                sessions.migrate().await?;
                SessionBackend::Sqlite(sessions)
            }
            (None, Db::Postgres(pool)) => {
                let sessions = PostgresStore::new(pool.clone());
                sessions.migrate().await?;
                SessionBackend::Postgres(sessions)
            }
        };
        // Expired rows would otherwise stay forever (Redis expires keys itself), and
        // so would the devices of sessions that expired from idleness; each instance's
        // streams of a deleted device end at its next revocation check.
        let (sweeper, devices) = (backend.clone(), store.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
            loop {
                tick.tick().await;
                let result = match &sweeper {
                    SessionBackend::Sqlite(s) => s.delete_expired().await,
                    SessionBackend::Postgres(s) => s.delete_expired().await,
                    SessionBackend::Redis(_) => Ok(()),
                };
                if let Err(error) = result {
                    tracing::warn!(%error, "could not delete expired sessions");
                }
                if let Err(error) = super::store::delete_idle_devices(&devices).await {
                    tracing::warn!(%error, "could not delete idle devices");
                }
            }
        });
        Ok(backend)
    }
}

#[async_trait]
impl SessionStore for SessionBackend {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        match self {
            SessionBackend::Sqlite(s) => s.create(record).await,
            SessionBackend::Postgres(s) => s.create(record).await,
            SessionBackend::Redis(s) => s.create(record).await,
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        match self {
            SessionBackend::Sqlite(s) => s.save(record).await,
            SessionBackend::Postgres(s) => s.save(record).await,
            SessionBackend::Redis(s) => s.save(record).await,
        }
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match self {
            SessionBackend::Sqlite(s) => s.load(id).await,
            SessionBackend::Postgres(s) => s.load(id).await,
            SessionBackend::Redis(s) => s.load(id).await,
        }
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match self {
            SessionBackend::Sqlite(s) => s.delete(id).await,
            SessionBackend::Postgres(s) => s.delete(id).await,
            SessionBackend::Redis(s) => s.delete(id).await,
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
