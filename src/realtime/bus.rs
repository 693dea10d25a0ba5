//! Scale mode: instances sharing Postgres meet on Redis. Pub/sub carries wake-ups
//! ("events were committed": the log itself stays the source, so a lost message only
//! delays delivery until the next wake-up or poll), typing pings, presence changes
//! and revoked devices. Presence counts connections on all instances through one
//! hash per user, a field per instance with an expiry, refreshed while connected, so
//! a killed instance's users go offline once its fields expire.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use fred::clients::{Client, Pool};
use fred::interfaces::{ClientLike, EventInterface, HashesInterface, KeysInterface, PubsubInterface};
use fred::prelude::{Builder, Config as RedisConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::store::{Store, now_ms};

use super::Realtime;

const EVENTS: &str = "reale:events";
const LIVE: &str = "reale:live";
/// A presence field lives this long unless refreshed.
const PRESENCE_TTL_MS: i64 = 20_000;
const PRESENCE_REFRESH: Duration = Duration::from_secs(5);

pub struct Bus {
    publisher: Pool,
    subscriber: Client,
    instance: String,
    wake: Arc<Notify>,
    /// Users with a stream on this instance, refreshed in Redis.
    local: Mutex<HashSet<i64>>,
    /// Users this instance believes online elsewhere: rechecked, so a killed
    /// instance's users are announced offline.
    remote: Mutex<HashSet<i64>>,
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
}

fn key(user_id: i64) -> String {
    format!("reale:presence:{user_id}")
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
        Ok(Bus {
            publisher,
            subscriber,
            instance: instance.iter().map(|b| format!("{b:02x}")).collect(),
            wake: Arc::new(Notify::new()),
            local: Mutex::default(),
            remote: Mutex::default(),
        })
    }

    /// Wakes the dispatcher when another instance committed events.
    pub fn wakeups(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    pub async fn start(&self, store: Store, realtime: Weak<Realtime>) -> Result<(), fred::error::Error> {
        self.subscriber.subscribe(vec![EVENTS, LIVE]).await?;
        // Messages from Redis.
        let mut messages = self.subscriber.message_rx();
        let (wake, me, listener_store, listener_rt) = (self.wake.clone(), self.instance.clone(), store.clone(), realtime.clone());
        tokio::spawn(async move {
            while let Ok(message) = messages.recv().await {
                let Some(text) = message.value.as_string() else { continue };
                if message.channel == EVENTS {
                    if text != me {
                        wake.notify_one();
                    }
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
                    _ => {}
                }
            }
        });
        // After a reconnect the subscriptions are gone and messages may have been
        // missed: subscribe again and read the log.
        let mut reconnects = self.subscriber.reconnect_rx();
        let (subscriber, wake) = (self.subscriber.clone(), self.wake.clone());
        tokio::spawn(async move {
            while reconnects.recv().await.is_ok() {
                if let Err(error) = subscriber.subscribe(vec![EVENTS, LIVE]).await {
                    tracing::warn!(%error, "resubscribing to Redis failed");
                }
                wake.notify_one();
            }
        });
        // Local commits: tell the other instances.
        let mut commits = store.commit_signals();
        let (publisher, me) = (self.publisher.clone(), self.instance.clone());
        tokio::spawn(async move {
            while commits.changed().await.is_ok() {
                let _: Result<i64, _> = publisher.next().publish(EVENTS, me.as_str()).await;
            }
        });
        // Presence upkeep: refresh our users' fields; recheck users seen online elsewhere.
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PRESENCE_REFRESH);
            loop {
                tick.tick().await;
                let Some(realtime) = realtime.upgrade() else { return };
                let Some(bus) = &realtime.bus else { return };
                let local: Vec<i64> = bus.local.lock().unwrap_or_else(|p| p.into_inner()).iter().copied().collect();
                for user in local {
                    bus.write_presence(user).await;
                }
                let remote: Vec<i64> = bus.remote.lock().unwrap_or_else(|p| p.into_inner()).iter().copied().collect();
                let still = bus.online_among(&remote).await;
                for user in remote.into_iter().filter(|u| !still.contains(u) && !realtime.hub.is_connected(*u)) {
                    bus.remote.lock().unwrap_or_else(|p| p.into_inner()).remove(&user);
                    realtime.announce_presence(&store, user, false).await;
                }
            }
        });
        Ok(())
    }

    async fn write_presence(&self, user_id: i64) {
        let until = now_ms() + PRESENCE_TTL_MS;
        let _: Result<i64, _> = self.publisher.hset(key(user_id), (self.instance.as_str(), until)).await;
        let _: Result<i64, _> = self.publisher.pexpire(key(user_id), PRESENCE_TTL_MS * 3, None).await;
    }

    pub fn mark_online(self: &Bus, user_id: i64) {
        self.local.lock().unwrap_or_else(|p| p.into_inner()).insert(user_id);
        let (publisher, instance) = (self.publisher.clone(), self.instance.clone());
        tokio::spawn(async move {
            let until = now_ms() + PRESENCE_TTL_MS;
            let _: Result<i64, _> = publisher.hset(key(user_id), (instance.as_str(), until)).await;
            let _: Result<i64, _> = publisher.pexpire(key(user_id), PRESENCE_TTL_MS * 3, None).await;
        });
    }

    pub async fn mark_offline(&self, user_id: i64) {
        self.local.lock().unwrap_or_else(|p| p.into_inner()).remove(&user_id);
        let _: Result<i64, _> = self.publisher.hdel(key(user_id), self.instance.as_str()).await;
    }

    /// Which of `users` have an unexpired presence field from any instance.
    pub async fn online_among(&self, users: &[i64]) -> HashSet<i64> {
        let now = now_ms();
        let mut online = HashSet::new();
        for &user in users {
            let values: Vec<i64> = self.publisher.hvals(key(user)).await.unwrap_or_default();
            if values.iter().any(|&until| until > now) {
                online.insert(user);
            }
        }
        self.remote.lock().unwrap_or_else(|p| p.into_inner()).extend(online.iter().copied());
        online
    }

    async fn publish(&self, message: Live) {
        if let Ok(text) = serde_json::to_string(&message) {
            let _: Result<i64, _> = self.publisher.next().publish(LIVE, text).await;
        }
    }

    pub async fn publish_typing(&self, conversation_id: i64, user_id: i64, name: &str, on: bool) {
        let message = Live::Typing { from: self.instance.clone(), c: conversation_id, u: user_id, n: name.to_string(), on };
        self.publish(message).await;
    }

    pub async fn publish_presence(&self, user_id: i64) {
        self.publish(Live::Presence { from: self.instance.clone(), u: user_id }).await;
    }

    pub async fn publish_revoke(&self, device_ids: &[i64]) {
        self.publish(Live::Revoke { from: self.instance.clone(), d: device_ids.to_vec() }).await;
    }
}
