//! `AppState`: what every handler can reach (store, config, sessions, limits, Redis, files).

use std::sync::Arc;

use crate::accounts::session::SessionBackend;
use crate::config::Config;
use crate::conversations::writer::MessageWriter;
use crate::store::Store;
use crate::web::ratelimit::RateLimiter;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<Config>,
    pub limiter: Arc<RateLimiter>,
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
