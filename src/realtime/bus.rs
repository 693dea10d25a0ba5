//! Scale mode: instances sharing Postgres meet on Redis. Pub/sub carries wake-ups
//! ("events were committed": the log itself stays the source, so a lost message only
//! delays delivery until the next wake-up or poll), typing pings, presence changes,
//! revoked devices, ephemeral live frames (voice rosters, incoming calls) and, on a
//! channel of its own, what voice instances say to each other (`voice::cluster`).
//! Presence counts connections on all instances through one hash per user, a field
//! per instance with an expiry, refreshed while connected (and rewritten at once when
//! Redis comes back, perhaps empty), so a killed instance's users go offline once its
//! fields expire and stay missing for two checks.
//!
//! Channels and keys are named after the database (`reale:{db}:…`): instances of one
//! deployment share them, while another deployment (or test) on the same Redis, whose
//! user, conversation and device ids overlap with ours, stays out of them.
//!
//! No call waits on Redis for long: while it is down, pub/sub and presence degrade
//! (the log and the poll still deliver events) instead of stalling streams and pages.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use fred::clients::{Client, Pool};
use fred::interfaces::{ClientLike, EventInterface, HashesInterface, KeysInterface, PubsubInterface};
use fred::prelude::{Builder, Config as RedisConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{Notify, broadcast, mpsc};

use crate::store::{Db, Store, now_ms};

use super::Realtime;

/// A presence field lives this long unless refreshed.
const PRESENCE_TTL_MS: i64 = 20_000;
const PRESENCE_REFRESH: Duration = Duration::from_secs(5);
/// Longest wait for one Redis command (they queue while Redis is unreachable).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Ordered messages not published within this long are dropped.
const OUTBOX_EXPIRY: Duration = Duration::from_secs(5);

/// Runs a Redis command, giving up after `COMMAND_TIMEOUT`.
pub(crate) async fn bounded<T, E>(command: impl Future<Output = Result<T, E>>) -> Option<T> {
    tokio::time::timeout(COMMAND_TIMEOUT, command).await.ok()?.ok()
}

/// This deployment's channel and key names.
struct Names {
    events: String,
    live: String,
    presence: String,
    voice: String,
    /// For other modules' keys.
    prefix: String,
}

impl Names {
    fn new(namespace: &str) -> Names {
        Names {
            events: format!("reale:{namespace}:events"),
            live: format!("reale:{namespace}:live"),
            presence: format!("reale:{namespace}:presence:"),
            voice: format!("reale:{namespace}:voice"),
            prefix: format!("reale:{namespace}:"),
        }
    }
}

/// What names the deployment: the database every instance of it shares.
pub(crate) async fn namespace(store: &Store) -> Result<String, sqlx::Error> {
    match &store.db {
        Db::Sqlite(pool) => sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'").fetch_one(pool).await,
        Db::Postgres(pool) => sqlx::query_scalar("SELECT current_database()::text").fetch_one(pool).await,
    }
}

pub struct Bus {
    publisher: Pool,
    subscriber: Client,
    instance: String,
    wake: Arc<Notify>,
    /// Set by `start`, before anything is published.
    names: OnceLock<Names>,
    /// Users with a stream on this instance, refreshed in Redis.
    local: Mutex<HashSet<i64>>,
    /// Users this instance believes online elsewhere: rechecked, so a killed
    /// instance's users are announced offline.
    remote: Mutex<HashSet<i64>>,
    /// Messages to publish in the order they were handed over (a roster frame must
    /// never overtake the one before it): (channel, text), sent one at a time by `start`.
    outbox: mpsc::UnboundedSender<(Outgoing, String, Instant)>,
    outbox_rx: Mutex<Option<mpsc::UnboundedReceiver<(Outgoing, String, Instant)>>>,
    /// What arrives on the voice channel, for `voice::cluster` (its own messages too).
    voice_in: broadcast::Sender<Arc<str>>,
}

#[derive(Clone, Copy)]
enum Outgoing {
    Live,
    Voice,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "t")]
enum Live {
    #[serde(rename = "typing")]
    Typing { from: String, c: i64, u: i64, n: String, on: bool },
    #[serde(rename = "presence")]
    Presence { from: String, u: i64 },
    #[serde(rename = "revoke")]
    Revoke { from: String, d: Vec<i64> },
    /// A live frame for the members of conversation `c` (`Realtime::send_ephemeral`).
    #[serde(rename = "frame")]
    Frame { from: String, c: i64, h: String },
}

impl Bus {
    pub async fn connect(url: &str) -> Result<Bus, fred::error::Error> {
        let publisher = crate::accounts::session::connect_redis(url).await?;
        let subscriber = Builder::from_config(RedisConfig::from_url(url)?)
            .with_connection_config(|c| c.connection_timeout = Duration::from_secs(3))
            .set_policy(fred::types::config::ReconnectPolicy::new_constant(0, 500))
            .build()?;
        subscriber.init().await?;
        let instance: [u8; 8] = rand::random();
        let (outbox, outbox_rx) = mpsc::unbounded_channel();
        Ok(Bus {
            outbox,
            outbox_rx: Mutex::new(Some(outbox_rx)),
            voice_in: broadcast::channel(1024).0,
            publisher,
            subscriber,
            instance: instance.iter().map(|b| format!("{b:02x}")).collect(),
            wake: Arc::new(Notify::new()),
            names: OnceLock::new(),
            local: Mutex::default(),
            remote: Mutex::default(),
        })
    }

    /// Wakes the dispatcher when another instance committed events.
    pub fn wakeups(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    fn names(&self) -> &Names {
        // `start` sets them before the bus is used; the fallback only serves a bus
        // that was never started.
        self.names.get_or_init(|| Names::new("default"))
    }

    fn key(&self, user_id: i64) -> String {
        format!("{}{user_id}", self.names().presence)
    }

    pub async fn start(&self, store: Store, realtime: Weak<Realtime>) -> Result<(), fred::error::Error> {
        let namespace = namespace(&store)
            .await
            .map_err(|e| fred::error::Error::new(fred::error::ErrorKind::Unknown, format!("naming the Redis channels: {e}")))?;
        let _ = self.names.set(Names::new(&namespace));
        let (events, live, voice) = (self.names().events.clone(), self.names().live.clone(), self.names().voice.clone());
        self.subscriber.subscribe(vec![events.clone(), live.clone(), voice.clone()]).await?;
        // Messages from Redis.
        let mut messages = self.subscriber.message_rx();
        let (wake, me, listener_store, listener_rt) = (self.wake.clone(), self.instance.clone(), store.clone(), realtime.clone());
        let (events_channel, voice_channel, voice_in) = (events.clone(), voice.clone(), self.voice_in.clone());
        tokio::spawn(async move {
            loop {
                let message = match messages.recv().await {
                    Ok(message) => message,
                    // Fell behind and missed some: whatever they announced is in the
                    // log, so read it; typing and presence catch up with their next change.
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "fell behind on Redis messages");
                        wake.notify_one();
                        continue;
                    }
                    Err(RecvError::Closed) => return,
                };
                let Some(text) = message.value.as_string() else { continue };
                if message.channel == events_channel {
                    if text != me {
                        wake.notify_one();
                    }
                    continue;
                }
                if message.channel == voice_channel {
                    // Nobody listening (no voice yet) is fine: nothing to forward to.
                    let _ = voice_in.send(text.into());
                    continue;
                }
                let Some(realtime) = listener_rt.upgrade() else { return };
                match serde_json::from_str::<Live>(&text) {
                    Ok(Live::Typing { from, c, u, n, on }) if from != me => {
                        let changed = if on { realtime.typing.ping(c, u, &n) } else { realtime.typing.stop(c, u) };
                        if changed {
                            realtime.send_typing(c);
                        }
                    }
                    Ok(Live::Presence { from, u }) if from != me => {
                        let (realtime, store) = (realtime.clone(), listener_store.clone());
                        tokio::spawn(async move { realtime.announce_presence(&store, u, false).await });
                    }
                    Ok(Live::Revoke { from, d }) if from != me => realtime.hub.revoke_devices(&d),
                    Ok(Live::Frame { from, c, h }) if from != me => realtime.send_ephemeral_here(c, &h),
                    _ => {}
                }
            }
        });
        // After a reconnect the subscriptions are gone and messages may have been
        // missed: subscribe again and read the log.
        let mut reconnects = self.subscriber.reconnect_rx();
        let (subscriber, wake, reconnect_rt) = (self.subscriber.clone(), self.wake.clone(), realtime.clone());
        let channels = vec![events.clone(), live.clone(), voice.clone()];
        tokio::spawn(async move {
            loop {
                match reconnects.recv().await {
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return,
                }
                if let Err(error) = subscriber.subscribe(channels.clone()).await {
                    tracing::warn!(%error, "resubscribing to Redis failed");
                }
                wake.notify_one();
                // A restarted Redis may have come back empty: put our users' presence
                // back now rather than at the next refresh.
                let Some(realtime) = reconnect_rt.upgrade() else { return };
                // Revocations published while we were away are lost: ask the database.
                realtime.recheck.notify_one();
                if let Some(bus) = &realtime.bus {
                    bus.write_presence(&bus.local_users()).await;
                }
            }
        });
        // Local commits: tell the other instances.
        let mut commits = store.commit_signals();
        let (publisher, me) = (self.publisher.clone(), self.instance.clone());
        tokio::spawn(async move {
            while commits.changed().await.is_ok() {
                let _: Option<i64> = bounded(publisher.next().publish(events.as_str(), me.as_str())).await;
            }
        });
        // The outbox, in order.
        if let Some(mut outbox) = self.outbox_rx.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let publisher = self.publisher.clone();
            tokio::spawn(async move {
                while let Some((to, text, queued)) = outbox.recv().await {
                    // Queued while Redis was away: a live frame or a voice request that
                    // late is worse than none (rosters are republished every second).
                    if queued.elapsed() > OUTBOX_EXPIRY {
                        continue;
                    }
                    let channel = match to {
                        Outgoing::Live => live.as_str(),
                        Outgoing::Voice => voice.as_str(),
                    };
                    let _: Option<i64> = bounded(publisher.next().publish(channel, text)).await;
                }
            });
        }
        // Presence upkeep: refresh our users' fields; recheck users seen online elsewhere.
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PRESENCE_REFRESH);
            let mut missing: HashSet<i64> = HashSet::new();
            loop {
                tick.tick().await;
                let Some(realtime) = realtime.upgrade() else { return };
                let Some(bus) = &realtime.bus else { return };
                bus.write_presence(&bus.local_users()).await;
                let remote: Vec<i64> = bus.remote.lock().unwrap_or_else(|p| p.into_inner()).iter().copied().collect();
                // Without an answer from Redis, nobody is announced offline.
                let Some(still) = bus.lookup(&remote).await else { continue };
                let absent: HashSet<i64> =
                    remote.into_iter().filter(|u| !still.contains(u) && !realtime.hub.is_connected(*u)).collect();
                // Missing once may be Redis having restarted empty before the instance
                // holding the user's stream wrote it again; missing twice, they are gone.
                let gone: Vec<i64> = absent.intersection(&missing).copied().collect();
                missing = absent;
                for user in gone {
                    missing.remove(&user);
                    bus.remote.lock().unwrap_or_else(|p| p.into_inner()).remove(&user);
                    realtime.announce_presence(&store, user, false).await;
                }
            }
        });
        Ok(())
    }

    fn local_users(&self) -> Vec<i64> {
        self.local.lock().unwrap_or_else(|p| p.into_inner()).iter().copied().collect()
    }

    /// Writes (refreshes) this instance's presence field for `users`, in one pipeline.
    async fn write_presence(&self, users: &[i64]) {
        if users.is_empty() {
            return;
        }
        let until = now_ms() + PRESENCE_TTL_MS;
        let writes = async {
            let pipeline = self.publisher.next().pipeline();
            for &user in users {
                let key = self.key(user);
                let _: () = pipeline.hset(&key, (self.instance.as_str(), until)).await?;
                let _: () = pipeline.pexpire(&key, PRESENCE_TTL_MS * 3, None).await?;
            }
            pipeline.all::<fred::types::Value>().await.map(|_| ())
        };
        let _ = bounded(writes).await;
    }

    /// Counts the user as connected here. Their field is written by `publish_presence`
    /// (which announcing them does first) and kept fresh by the refresh loop.
    pub fn mark_online(&self, user_id: i64) {
        self.local.lock().unwrap_or_else(|p| p.into_inner()).insert(user_id);
    }

    pub async fn mark_offline(&self, user_id: i64) {
        self.local.lock().unwrap_or_else(|p| p.into_inner()).remove(&user_id);
        let _: Option<i64> = bounded(self.publisher.hdel(self.key(user_id), self.instance.as_str())).await;
    }

    /// Which of `users` have an unexpired presence field from any instance (none
    /// while Redis is unreachable).
    pub async fn online_among(&self, users: &[i64]) -> HashSet<i64> {
        self.lookup(users).await.unwrap_or_default()
    }

    /// Like `online_among`, but None when Redis did not answer: not knowing is not
    /// the same as offline.
    async fn lookup(&self, users: &[i64]) -> Option<HashSet<i64>> {
        if users.is_empty() {
            return Some(HashSet::new());
        }
        let now = now_ms();
        let lookups = async {
            let pipeline = self.publisher.next().pipeline();
            for &user in users {
                let _: () = pipeline.hvals(self.key(user)).await?;
            }
            let answers: Vec<fred::types::Value> = pipeline.try_all::<fred::types::Value>().await.into_iter().collect::<Result<_, _>>()?;
            let mut online = HashSet::new();
            for (&user, answer) in users.iter().zip(answers) {
                let values: Vec<i64> = answer.convert()?;
                if values.iter().any(|&until| until > now) {
                    online.insert(user);
                }
            }
            Ok::<_, fred::error::Error>(online)
        };
        // One bound for all of them: a page listing many people must not wait on
        // each in turn while Redis is unreachable.
        let online = bounded(lookups).await?;
        self.remote.lock().unwrap_or_else(|p| p.into_inner()).extend(online.iter().copied());
        Some(online)
    }

    async fn publish(&self, message: Live) {
        if let Ok(text) = serde_json::to_string(&message) {
            let _: Option<i64> = bounded(self.publisher.next().publish(self.names().live.as_str(), text)).await;
        }
    }

    pub async fn publish_typing(&self, conversation_id: i64, user_id: i64, name: &str, on: bool) {
        let message = Live::Typing { from: self.instance.clone(), c: conversation_id, u: user_id, n: name.to_string(), on };
        self.publish(message).await;
    }

    /// Tells the other instances to announce the user's presence. They read it from
    /// Redis, so this instance's field is written first: `mark_online` writes it in
    /// the background, and an announcement overtaking that write would be read as
    /// "offline" over there.
    pub async fn publish_presence(&self, user_id: i64) {
        let here = self.local.lock().unwrap_or_else(|p| p.into_inner()).contains(&user_id);
        if here {
            self.write_presence(&[user_id]).await;
        }
        self.publish(Live::Presence { from: self.instance.clone(), u: user_id }).await;
    }

    /// A live frame for the members of `conversation_id` on the other instances, sent
    /// after whatever was handed over before it.
    pub fn publish_frame(&self, conversation_id: i64, html: &str) {
        let message = Live::Frame { from: self.instance.clone(), c: conversation_id, h: html.to_string() };
        if let Ok(text) = serde_json::to_string(&message) {
            let _ = self.outbox.send((Outgoing::Live, text, Instant::now()));
        }
    }

    /// A message to every instance's `voice::cluster` (this one's too), in order.
    pub fn publish_voice(&self, text: String) {
        let _ = self.outbox.send((Outgoing::Voice, text, Instant::now()));
    }

    /// What arrives on the voice channel from now on.
    pub fn voice_messages(&self) -> broadcast::Receiver<Arc<str>> {
        self.voice_in.subscribe()
    }

    /// This instance's name on the bus.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// A key of this deployment's, `reale:{db}:{suffix}`.
    pub fn key_named(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.names().prefix)
    }

    /// The connections for plain commands (keys of other modules, like voice's rooms).
    pub fn redis(&self) -> &Pool {
        &self.publisher
    }

    pub async fn publish_revoke(&self, device_ids: &[i64]) {
        self.publish(Live::Revoke { from: self.instance.clone(), d: device_ids.to_vec() }).await;
    }
}
