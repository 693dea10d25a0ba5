//! `AppState`: what every handler can reach (store, config, sessions, limits, Redis, files).

use std::sync::Arc;

use crate::accounts::session::SessionBackend;
use crate::config::Config;
use crate::conversations::writer::MessageWriter;
use crate::store::Store;
use crate::web::ratelimit::RateLimiter;

/// Cloned by every middleware and extractor of every request: one reference count,
/// not one per field (the per-field clones and drops were ≈ 3.5 % of a send's CPU).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub store: Store,
    pub config: Config,
    pub limiter: RateLimiter,
    pub sessions: SessionBackend,
    pub redis: Option<fred::clients::Pool>,
    pub writer: MessageWriter,
    pub realtime: std::sync::Arc<crate::realtime::Realtime>,
    /// Device → user, remembered on a single instance (see `accounts::device_cache`).
    pub devices: Arc<crate::accounts::device_cache::DeviceCache>,
    /// Where attached files live: the data dir or an S3 bucket.
    pub files: crate::files::Storage,
    /// Web Push: the VAPID key and the background sender.
    pub push: crate::push::Pusher,
    /// Voice rooms and the SFU (started by the first join).
    pub voice: Arc<crate::voice::Voice>,
}
