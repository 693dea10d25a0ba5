//! Realtime: the commit-ordered event log, the per-instance hub that fans events out
//! to SSE streams, typing and presence, and (in scale mode) the Redis bus that joins
//! instances.
//!
//! The dispatcher follows the log by id: whatever wakes it (a local commit, a Redis
//! message from another instance, or a periodic poll), it reads every event after the
//! last one it delivered, so a missed wake-up delays an event but never loses it.

pub mod bus;
pub mod delivery;
pub mod hub;
/// The event log is storage (`store::log`); realtime reads it, the stores append to it.
pub use crate::store::log;
/// What a person's presence is and how it shows lives with the person (`accounts`);
/// realtime keeps it current.
pub use crate::accounts::presence;
mod render;
pub mod routes;
pub mod stream;
pub mod swap;
pub mod typing;
mod zoned;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use askama::Template;

use crate::accounts::profile::{StatusFragment, StatusView};
use crate::store::Store;
use bus::Bus;
use delivery::{Delivery, frame};
use hub::Hub;
use typing::Typing;

/// How often the dispatcher looks at the log without being woken: the floor on
/// cross-instance delivery when Redis is down.
const POLL: Duration = Duration::from_millis(1_000);
/// How often each instance asks the database whether its streams' devices are still
/// signed in: the bound on how long a stream outlives a sign-out whose Redis message
/// was lost (or an instance that has no Redis to hear it).
pub const REVOCATION_CHECK: Duration = Duration::from_secs(10);
/// Events kept for reconnecting streams.
const RETENTION_MS: i64 = 24 * 3600 * 1000;
const RETAIN_AT_LEAST: i64 = 10_000;

pub struct Realtime {
    pub hub: Hub,
    pub typing: Typing,
    pub bus: Option<Bus>,
    /// Users whose last stream closed less than `presence::GRACE` ago.
    pub(crate) leaving: std::sync::Mutex<HashSet<i64>>,
    /// Asks for a revocation check now (e.g. after Redis reconnected: a revocation
    /// may have been published while this instance was not listening).
    pub(crate) recheck: Arc<tokio::sync::Notify>,
}

impl Realtime {
    /// Starts the dispatcher, the typing sweeper and log pruning, and (with Redis)
    /// the bus.
    pub async fn start(store: &Store, redis_url: Option<&str>) -> Result<Arc<Realtime>, crate::StartError> {
        let bus = match redis_url {
            Some(url) => Some(Bus::connect(url).await?),
            None => None,
        };
        let realtime = Arc::new(Realtime {
            hub: Hub::default(),
            typing: Typing::default(),
            bus,
            leaving: Default::default(),
            recheck: Default::default(),
        });
        realtime.hub.start_at(log::newest(store).await?);
        if let Some(bus) = &realtime.bus {
            bus.start(store.clone(), Arc::downgrade(&realtime)).await?;
        }
        tokio::spawn(dispatch(store.clone(), Arc::downgrade(&realtime)));
        tokio::spawn(sweep_typing(Arc::downgrade(&realtime)));
        tokio::spawn(prune(store.clone(), Arc::downgrade(&realtime)));
        tokio::spawn(recheck_devices(store.clone(), Arc::downgrade(&realtime)));
        Ok(realtime)
    }

    /// Which of `users` are online anywhere (a stream here, or on another instance).
    pub async fn online_among(&self, users: &[i64]) -> HashSet<i64> {
        let mut online: HashSet<i64> = self.hub.connected_among(users).into_iter().collect();
        online.extend(self.leaving_among(users));
        if let Some(bus) = &self.bus {
            let rest: Vec<i64> = users.iter().copied().filter(|u| !online.contains(u)).collect();
            online.extend(bus.online_among(&rest).await);
        }
        online
    }

    fn leaving_among(&self, users: &[i64]) -> Vec<i64> {
        let leaving = self.leaving.lock().unwrap_or_else(|p| p.into_inner());
        users.iter().copied().filter(|u| leaving.contains(u)).collect()
    }

    /// Tells everyone who shares a conversation with the user (on this instance) what
    /// their presence and custom status are now; with `everywhere`, other instances
    /// too (they read both fresh from the database). Whoever the user blocked is told
    /// they are offline with no status; "last seen" follows the user's choice.
    pub async fn announce_presence(&self, store: &Store, user_id: i64, everywhere: bool) {
        if everywhere && let Some(bus) = &self.bus {
            bus.publish_presence(user_id).await;
        }
        let Ok(conversations) = presence::watched_in(store, user_id).await else { return };
        let local = self.hub.connected_in(&conversations);
        if local.is_empty() {
            return;
        }
        let Ok(Some(person)) = crate::accounts::profile::by_id(store, user_id).await else { return };
        let Ok(blocked) = crate::accounts::privacy::blocked_by(store, user_id).await else { return };
        let online = self.online_among(&[user_id]).await.contains(&user_id);
        let (hidden, open): (Vec<i64>, Vec<i64>) = local.into_iter().partition(|w| blocked.contains(w));
        // Watchers share a conversation with the user, so they are in the circle.
        let open_shown = crate::accounts::privacy::shown(false, &person.last_seen_audience, true);
        for (viewers, shown) in [(open, open_shown), (hidden, presence::Shown::Nothing)] {
            if viewers.is_empty() {
                continue;
            }
            let view = presence::view(user_id, &person.presence, online, person.last_seen_at, shown);
            let status = if shown == presence::Shown::Nothing { StatusView::hidden(user_id) } else { person.status() };
            let Ok(html) = announcement(view, &status, &person.avatar()) else { return };
            self.hub.send_to(&viewers, Arc::new(Delivery::ephemeral(0, frame(None, &html))));
        }
    }

    /// A user's first stream on this instance opened.
    pub fn stream_opened(self: &Arc<Self>, store: &Store, user_id: i64) {
        let was_leaving = self.leaving.lock().unwrap_or_else(|p| p.into_inner()).remove(&user_id);
        if let Some(bus) = &self.bus {
            bus.mark_online(user_id);
        }
        if !was_leaving {
            let (realtime, store) = (self.clone(), store.clone());
            tokio::spawn(async move { realtime.announce_presence(&store, user_id, true).await });
        }
    }

    /// A stream ended; after a grace period without a new one, the user is offline.
    pub fn stream_closed(self: &Arc<Self>, store: &Store, user_id: i64, stream_id: u64) {
        // A stream dropped while the runtime shuts down has nobody left to tell.
        if !self.hub.unregister(user_id, stream_id) || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        self.leaving.lock().unwrap_or_else(|p| p.into_inner()).insert(user_id);
        let (realtime, store) = (Arc::downgrade(self), store.clone());
        tokio::spawn(async move {
            tokio::time::sleep(presence::GRACE).await;
            let Some(realtime) = realtime.upgrade() else { return };
            let gone = realtime.leaving.lock().unwrap_or_else(|p| p.into_inner()).remove(&user_id);
            if !gone || realtime.hub.is_connected(user_id) {
                return;
            }
            if let Some(bus) = &realtime.bus {
                bus.mark_offline(user_id).await;
            }
            let _ = presence::touch_last_seen(&store, user_id).await;
            realtime.announce_presence(&store, user_id, true).await;
        });
    }

    /// Shows who is typing in a conversation to its members here.
    pub fn send_typing(&self, conversation_id: i64) {
        let typers = self.typing.typers(conversation_id);
        let delivery = Delivery { typing: Some(typers), ..Delivery::ephemeral(conversation_id, bytes::Bytes::new()) };
        self.hub.send_to_conversation(conversation_id, Arc::new(delivery));
    }

    /// A typing ping from this instance: recorded here, and on the others.
    pub async fn typing_ping(&self, conversation_id: i64, user_id: i64, name: &str) {
        if self.typing.ping(conversation_id, user_id, name) {
            self.send_typing(conversation_id);
        }
        if let Some(bus) = &self.bus {
            bus.publish_typing(conversation_id, user_id, name, true).await;
        }
    }

    /// The user sent their message: they stop typing at once, everywhere.
    pub async fn typing_stop(&self, conversation_id: i64, user_id: i64) {
        if self.typing.stop(conversation_id, user_id) {
            self.send_typing(conversation_id);
        }
        if let Some(bus) = &self.bus {
            bus.publish_typing(conversation_id, user_id, "", false).await;
        }
    }

    /// A live frame (already placed with `swap::place`) that is not an event: never
    /// logged, never replayed, for the members of `conversation_id`, here at once and
    /// (in scale mode) on every other instance through the bus, in the order sent.
    /// Voice rosters and incoming calls go this way.
    pub fn send_ephemeral(&self, conversation_id: i64, html: &str) {
        self.send_ephemeral_here(conversation_id, html);
        if let Some(bus) = &self.bus {
            bus.publish_frame(conversation_id, html);
        }
    }

    /// Like `send_ephemeral`, for the members connected to this instance only.
    pub fn send_ephemeral_here(&self, conversation_id: i64, html: &str) {
        self.hub.send_to_conversation(conversation_id, Arc::new(Delivery::ephemeral(conversation_id, frame(None, html))));
    }

    /// Ends the streams of signed-out devices, here and on other instances.
    pub async fn revoke_devices(&self, device_ids: &[i64]) {
        self.hub.revoke_devices(device_ids);
        if let Some(bus) = &self.bus {
            bus.publish_revoke(device_ids).await;
        }
    }
}

/// A person's presence dot and status, placed wherever the page shows them.
fn announcement(view: presence::PresenceView, status: &StatusView, avatar: &crate::accounts::profile::AvatarView) -> askama::Result<String> {
    let user_id = view.user_id;
    let mut html = String::new();
    swap::place_into(&mut html, swap::Op::Each(&format!(".presence-{user_id}")), &presence::PresenceFragment { p: view }.render()?)?;
    swap::place_into(&mut html, swap::Op::Each(&format!(".status-{user_id}")), &StatusFragment { s: status }.render()?)?;
    // Faces are not hidden from blockers (names are not either), so both get the same.
    let face = crate::accounts::profile::AvatarFragment { a: avatar }.render()?;
    swap::place_into(&mut html, swap::Op::Each(&format!(".avatar-{user_id}")), &face)?;
    Ok(html)
}

/// Follows the log and hands events to the hub in id order.
async fn dispatch(store: Store, realtime: std::sync::Weak<Realtime>) {
    let mut commits = store.commit_signals();
    loop {
        let Some(realtime) = realtime.upgrade() else { return };
        let wake = realtime.bus.as_ref().map(|b| b.wakeups());
        // Render only what someone here can receive; after a stream registered while a
        // batch rendered, that batch again for everyone (a second try could lose to the
        // next registration, and a burst of connects would starve delivery).
        let mut choose = true;
        loop {
            let after = realtime.hub.dispatched();
            // A batch's reads (the log, then what its events render) on one connection.
            let batch = crate::store::sqlite::reading(async {
                let events = log::after(&store, after, 512).await.inspect_err(|error| {
                    tracing::warn!(%error, "reading the event log failed; retrying");
                })?;
                let Some(last) = events.last().map(|e| e.id) else { return Ok(None) };
                let (events, chosen_at) = if choose {
                    let (wanted, chosen_at) = realtime.hub.audience(&events);
                    let chosen: Vec<log::Event> = events.iter().zip(wanted).filter(|(_, wanted)| *wanted).map(|(e, _)| *e).collect();
                    (chosen, Some(chosen_at))
                } else {
                    (events, None)
                };
                let deliveries = if events.is_empty() {
                    Vec::new()
                } else {
                    render::render(&store, &events).await.inspect_err(|error| {
                        tracing::warn!(%error, "rendering events failed; retrying");
                    })?
                };
                Ok::<_, crate::error::AppError>(Some((deliveries, last, chosen_at)))
            })
            .await;
            match batch {
                Ok(Some((deliveries, last, chosen_at))) => choose = realtime.hub.deliver(deliveries, last, chosen_at),
                Ok(None) | Err(_) => break,
            }
        }
        drop(realtime);
        tokio::select! {
            _ = commits.changed() => {}
            _ = async { match wake { Some(w) => w.notified().await, None => std::future::pending().await } } => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

async fn sweep_typing(realtime: std::sync::Weak<Realtime>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        let Some(realtime) = realtime.upgrade() else { return };
        for conversation in realtime.typing.expire() {
            realtime.send_typing(conversation);
        }
    }
}

/// Ends the streams of devices signed out anywhere, whether or not the Redis message
/// about it arrived: one query every `REVOCATION_CHECK` for all local devices.
async fn recheck_devices(store: Store, realtime: std::sync::Weak<Realtime>) {
    let mut tick = tokio::time::interval(REVOCATION_CHECK);
    let Some(now) = realtime.upgrade().map(|r| r.recheck.clone()) else { return };
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = now.notified() => {}
        }
        let Some(strong) = realtime.upgrade() else { return };
        let devices = strong.hub.device_ids();
        if devices.is_empty() {
            continue;
        }
        match crate::accounts::store::existing_devices(&store, &devices).await {
            Ok(existing) => {
                let gone: Vec<i64> = devices.into_iter().filter(|d| !existing.contains(d)).collect();
                if !gone.is_empty() {
                    tracing::info!(devices = gone.len(), "ending the streams of signed-out devices");
                    strong.hub.revoke_devices(&gone);
                }
            }
            Err(error) => tracing::warn!(%error, "checking the streams' devices failed"),
        }
    }
}

async fn prune(store: Store, realtime: std::sync::Weak<Realtime>) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tick.tick().await;
        if realtime.strong_count() == 0 {
            return;
        }
        if let Err(error) = log::prune(&store, RETENTION_MS, RETAIN_AT_LEAST).await {
            tracing::warn!(%error, "pruning the event log failed");
        }
    }
}
