//! Voice in scale mode. Each room lives on one instance, whose SFU carries the room's
//! media: Redis says which (`reale:{db}:voice:room:{id}` = that instance's bus name),
//! with a short expiry the owner refreshes while anyone is in. Whichever instance a
//! request reaches, the owner does it: this one when it is the owner (claiming a free
//! room first, for a join), otherwise the owner is asked over the bus and answers on
//! it, or the caller gives up after `ASK_TIMEOUT` (503). So one room's rules run in one
//! place, as on a single instance: its roster, its recheck, its moderation.
//!
//! Owners publish each room's roster, as data, whenever it changes and every
//! `REFRESH`; the other instances keep the latest copy for their pages
//! (`Voice::members`) and drop it once it is `STALE`: the owner is gone, so their
//! viewers are shown the room empty, and the next join claims it on a live instance.
//! (The live frames themselves go out through `Realtime::send_ephemeral`, which
//! reaches every instance.)
//!
//! Why a Redis key and not a table: ownership is liveness, which an expiring key states
//! by itself; a row would need a heartbeat column and someone to sweep it. Scale mode
//! has Redis anyway, and without it there is one instance and nothing to record. While
//! Redis does not answer, each instance serves what reaches it on its own SFU.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use fred::interfaces::KeysInterface;
use fred::types::{Expiration, SetOptions};
use serde::{Deserialize, Serialize};
use str0m::change::{SdpAnswer, SdpOffer};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::oneshot;

use crate::realtime::bus::{Bus, bounded};

use super::{JoinError, MemberView, Moderation, Voice};

/// How long a room stays recorded as its owner's without a refresh.
const OWNER_TTL_MS: i64 = 3_000;
/// How often an owner refreshes its rooms and republishes their rosters.
const REFRESH: Duration = Duration::from_secs(1);
/// A roster not republished for this long belongs to an instance that is gone.
const STALE: Duration = Duration::from_millis(3_500);
/// How long a request waits for the room's owner.
const ASK_TIMEOUT: Duration = Duration::from_secs(3);
const NO_ANSWER: &str = "The server holding this voice room did not answer. Try again in a few seconds.";

/// What one instance knows of the others' rooms, and its requests waiting for answers.
#[derive(Default)]
pub struct Cluster {
    remote: Mutex<HashMap<i64, Remote>>,
    waiting: Mutex<HashMap<u64, oneshot::Sender<Answer>>>,
    next_ask: AtomicU64,
}

/// A room another instance holds, as it last published it.
struct Remote {
    owner: String,
    name: String,
    members: Vec<MemberView>,
    seen: Instant,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "t")]
enum Message {
    Ask { from: String, to: String, id: u64, ask: Ask },
    Answer { to: String, id: u64, answer: Answer },
    Roster { from: String, room: i64, name: String, members: Vec<MemberView> },
    /// `user` joined `room` on `from`: wherever else they are, they leave.
    Joined { from: String, user: i64, room: i64 },
}

/// What the owner of a room is asked to do: the checks (who may) were made by the
/// instance the request reached.
#[derive(Serialize, Deserialize)]
enum Ask {
    Join { room: i64, name: String, user: i64, user_name: String, may_speak: bool, offer: SdpOffer },
    Leave { user: i64, room: Option<i64> },
    SetSelf { room: i64, user: i64, muted: Option<bool>, deafened: Option<bool> },
    SetVideo { room: i64, user: i64, camera: Option<bool>, screen: Option<bool> },
    Mute { room: i64, user: i64, on: bool },
    Disconnect { room: i64, user: i64 },
    Move { room: i64, user: i64, to: i64, to_name: String },
}

#[derive(Serialize, Deserialize)]
enum Answer {
    Joined { peer: u64, answer: SdpAnswer },
    Unavailable(String),
    BadOffer(String),
    Done(bool),
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Cluster {
    /// Who is in `room`, as its owner (another instance) last said.
    pub fn members(&self, room: i64) -> Option<Vec<MemberView>> {
        lock(&self.remote).get(&room).map(|r| r.members.clone())
    }

    /// The room (held elsewhere) where `user` is, if in `room` or any when None, and
    /// its owner.
    fn find(&self, user: i64, room: Option<i64>) -> Option<String> {
        let remote = lock(&self.remote);
        remote
            .iter()
            .find(|(id, r)| room.is_none_or(|want| want == **id) && r.members.iter().any(|m| m.user_id == user))
            .map(|(_, r)| r.owner.clone())
    }
}

fn bus_of(voice: &Voice) -> Option<&Bus> {
    voice.realtime.bus.as_ref()
}

fn room_key(bus: &Bus, room: i64) -> String {
    bus.key_named(&format!("voice:room:{room}"))
}

fn publish(bus: &Bus, message: &Message) {
    match serde_json::to_string(message) {
        Ok(text) => bus.publish_voice(text),
        Err(error) => tracing::error!(%error, "voice: a cluster message did not serialize"),
    }
}

/// Who holds `room`, claiming it for this instance when nobody does; None when Redis
/// does not answer.
async fn claim(bus: &Bus, room: i64) -> Option<String> {
    let (key, redis) = (room_key(bus, room), bus.redis().next());
    // Twice: the holder's key may expire between our SET and our GET.
    for _ in 0..2 {
        let set: Option<String> = bounded(redis.set(key.as_str(), bus.instance(), Some(Expiration::PX(OWNER_TTL_MS)), Some(SetOptions::NX), false)).await?;
        if set.is_some() {
            return Some(bus.instance().to_string());
        }
        if let Some(owner) = bounded(redis.get::<Option<String>, _>(key.as_str())).await? {
            return Some(owner);
        }
    }
    None
}

/// Keeps `room` recorded as this instance's (while someone is in it here).
async fn hold(bus: &Bus, room: i64) {
    match claim(bus, room).await {
        Some(owner) if owner == bus.instance() => {
            let _: Option<i64> = bounded(bus.redis().next().pexpire(room_key(bus, room), OWNER_TTL_MS, None)).await;
        }
        Some(owner) => tracing::warn!(room, %owner, "voice: another instance claimed a room that has people here"),
        None => {}
    }
}

/// Who holds `room` now, if anyone (None too when Redis does not answer).
async fn holder(bus: &Bus, room: i64) -> Option<String> {
    bounded(bus.redis().next().get::<Option<String>, _>(room_key(bus, room))).await.flatten()
}

/// Whether someone in `room` can be moved to `to` on the same connection: both rooms
/// live on one instance, or `to` lives nowhere yet (the move claims it).
pub async fn movable(voice: &Voice, room: i64, to: i64) -> bool {
    let Some(bus) = bus_of(voice) else { return true };
    let Some(there) = holder(bus, to).await else { return true };
    let here = if voice.roster().members(room).is_empty() { holder(bus, room).await } else { Some(bus.instance().to_string()) };
    here.is_none_or(|here| here == there)
}

/// The other instance that holds `room`; None when this one does (people are in it
/// here, or it claimed it just now) or when nobody can tell (no Redis answer: serve it
/// here rather than not at all).
async fn owner_elsewhere(voice: &Voice, room: i64, claim_free: bool) -> Option<String> {
    let bus = bus_of(voice)?;
    if !voice.roster().members(room).is_empty() {
        return None;
    }
    let owner = if claim_free { claim(bus, room).await } else { holder(bus, room).await };
    owner.filter(|o| o != bus.instance())
}

/// Asks `owner` and waits for its answer; None after `ASK_TIMEOUT`.
async fn ask(voice: &Voice, owner: String, ask: Ask) -> Option<Answer> {
    let bus = bus_of(voice)?;
    let id = voice.cluster.next_ask.fetch_add(1, Ordering::Relaxed);
    let (reply, answer) = oneshot::channel();
    lock(&voice.cluster.waiting).insert(id, reply);
    publish(bus, &Message::Ask { from: bus.instance().to_string(), to: owner, id, ask });
    let answer = tokio::time::timeout(ASK_TIMEOUT, answer).await.ok().and_then(Result::ok);
    lock(&voice.cluster.waiting).remove(&id);
    answer
}

/// Does `what` on this instance, which holds the room.
async fn perform(voice: &Arc<Voice>, what: Ask) -> Answer {
    match what {
        Ask::Join { room, name, user, user_name, may_speak, offer } => match voice.join((room, &name), user, &user_name, may_speak, offer).await {
            Ok((peer, answer)) => {
                if let Some(bus) = bus_of(voice) {
                    publish(bus, &Message::Joined { from: bus.instance().to_string(), user, room });
                }
                Answer::Joined { peer, answer }
            }
            Err(JoinError::Unavailable(why)) => Answer::Unavailable(why),
            Err(JoinError::BadOffer(why)) => Answer::BadOffer(why),
        },
        Ask::Leave { user, room } => Answer::Done(voice.leave(user, room)),
        Ask::SetSelf { room, user, muted, deafened } => Answer::Done(voice.set_self(room, user, muted, deafened)),
        Ask::SetVideo { room, user, camera, screen } => Answer::Done(voice.set_video(room, user, camera, screen)),
        Ask::Mute { room, user, on } => Answer::Done(voice.moderate(room, user, Moderation::Mute(on))),
        Ask::Disconnect { room, user } => Answer::Done(voice.moderate(room, user, Moderation::Disconnect)),
        Ask::Move { room, user, to, to_name } => {
            // They keep their connection to this SFU, so the other room must live here too.
            if let Some(bus) = bus_of(voice)
                && claim(bus, to).await.is_some_and(|owner| owner != bus.instance())
            {
                return Answer::Done(false);
            }
            Answer::Done(voice.moderate(room, user, Moderation::Move { to, to_name: &to_name }))
        }
    }
}

/// Does `what` on the instance that holds `room`.
async fn on_owner(voice: &Arc<Voice>, room: i64, claim_free: bool, what: Ask) -> Answer {
    match owner_elsewhere(voice, room, claim_free).await {
        None => perform(voice, what).await,
        Some(owner) => ask(voice, owner, what).await.unwrap_or_else(|| Answer::Unavailable(NO_ANSWER.into())),
    }
}

fn done(answer: Answer) -> bool {
    matches!(answer, Answer::Done(true))
}

/// `Voice::join` on the room's instance (this one if the room is free). Whatever room
/// the user was in before, on any instance, they leave it.
pub async fn join(voice: &Arc<Voice>, (room, room_name): (i64, &str), user_id: i64, name: &str, may_speak: bool, offer: SdpOffer) -> Result<(u64, SdpAnswer), JoinError> {
    let what = Ask::Join { room, name: room_name.to_string(), user: user_id, user_name: name.to_string(), may_speak, offer };
    match on_owner(voice, room, true, what).await {
        Answer::Joined { peer, answer } => Ok((peer, answer)),
        Answer::BadOffer(why) => Err(JoinError::BadOffer(why)),
        Answer::Unavailable(why) => Err(JoinError::Unavailable(why)),
        Answer::Done(_) => Err(JoinError::Unavailable(NO_ANSWER.into())),
    }
}

/// `Voice::leave`, wherever the user is.
pub async fn leave(voice: &Arc<Voice>, user_id: i64, room: Option<i64>) -> bool {
    if voice.leave(user_id, room) {
        return true;
    }
    let Some(owner) = voice.cluster.find(user_id, room) else { return false };
    ask(voice, owner, Ask::Leave { user: user_id, room }).await.is_some_and(done)
}

/// `Voice::set_self` on the room's instance.
pub async fn set_self(voice: &Arc<Voice>, room: i64, user_id: i64, muted: Option<bool>, deafened: Option<bool>) -> bool {
    done(on_owner(voice, room, false, Ask::SetSelf { room, user: user_id, muted, deafened }).await)
}

/// `Voice::set_video` on the room's instance.
pub async fn set_video(voice: &Arc<Voice>, room: i64, user_id: i64, camera: Option<bool>, screen: Option<bool>) -> bool {
    done(on_owner(voice, room, false, Ask::SetVideo { room, user: user_id, camera, screen }).await)
}

/// `Voice::moderate` on the room's instance.
pub async fn moderate(voice: &Arc<Voice>, room: i64, user_id: i64, action: Moderation<'_>) -> bool {
    let what = match action {
        Moderation::Mute(on) => Ask::Mute { room, user: user_id, on },
        Moderation::Disconnect => Ask::Disconnect { room, user: user_id },
        Moderation::Move { to, to_name } => Ask::Move { room, user: user_id, to, to_name: to_name.to_string() },
    };
    done(on_owner(voice, room, false, what).await)
}

/// A room held here changed: the other instances' copies of its roster follow.
pub fn published(voice: &Voice, room: i64, name: &str, members: &[MemberView]) {
    let Some(bus) = bus_of(voice) else { return };
    // This instance holds it now, whoever did before.
    lock(&voice.cluster.remote).remove(&room);
    publish(bus, &Message::Roster { from: bus.instance().to_string(), room, name: name.to_string(), members: members.to_vec() });
}

/// Listens to the other instances and keeps this one's rooms claimed (scale mode only).
pub fn start(voice: &Arc<Voice>) {
    let Some(bus) = bus_of(voice) else { return };
    let mut messages = bus.voice_messages();
    let listener = Arc::downgrade(voice);
    tokio::spawn(async move {
        loop {
            let text = match messages.recv().await {
                Ok(text) => text,
                // Missed some: a lost answer times out, a lost roster comes again.
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "voice: fell behind on cluster messages");
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            let Some(voice) = listener.upgrade() else { return };
            heard(&voice, &text);
        }
    });
    tokio::spawn(upkeep(Arc::downgrade(voice)));
}

fn heard(voice: &Arc<Voice>, text: &str) {
    let Some(bus) = bus_of(voice) else { return };
    let message = match serde_json::from_str::<Message>(text) {
        Ok(message) => message,
        Err(error) => {
            tracing::warn!(%error, "voice: an unreadable cluster message");
            return;
        }
    };
    let me = bus.instance();
    match message {
        Message::Ask { from, to, id, ask } if to == me => {
            let voice = voice.clone();
            tokio::spawn(async move {
                let answer = perform(&voice, ask).await;
                if let Some(bus) = bus_of(&voice) {
                    publish(bus, &Message::Answer { to: from, id, answer });
                }
            });
        }
        Message::Answer { to, id, answer } if to == me => {
            if let Some(waiting) = lock(&voice.cluster.waiting).remove(&id) {
                let _ = waiting.send(answer);
            }
        }
        Message::Roster { from, room, name, members } if from != me => {
            let mut remote = lock(&voice.cluster.remote);
            if members.is_empty() {
                remote.remove(&room);
            } else {
                remote.insert(room, Remote { owner: from, name, members, seen: Instant::now() });
            }
        }
        Message::Joined { from, user, room } if from != me => {
            let elsewhere = voice.roster().everyone().into_iter().any(|(u, r)| u == user && r != room);
            if elsewhere {
                voice.leave(user, None);
            }
        }
        _ => {}
    }
}

/// Every `REFRESH`: the rooms held here stay claimed and their rosters are published
/// again; rosters of rooms whose owner went quiet are dropped, and the pages here that
/// show them are told the room is empty.
async fn upkeep(voice: Weak<Voice>) {
    let mut tick = tokio::time::interval(REFRESH);
    loop {
        tick.tick().await;
        let Some(voice) = voice.upgrade() else { return };
        let Some(bus) = bus_of(&voice) else { return };
        let rooms = voice.roster().rooms();
        for (room, name) in rooms {
            hold(bus, room).await;
            published(&voice, room, &name, &voice.roster().members(room));
        }
        let now = Instant::now();
        let mut gone = Vec::new();
        lock(&voice.cluster.remote).retain(|&room, r| {
            let alive = now.duration_since(r.seen) < STALE;
            if !alive {
                tracing::warn!(room, owner = %r.owner, "voice: the instance holding this room stopped answering");
                gone.push((room, std::mem::take(&mut r.name)));
            }
            alive
        });
        for (room, name) in gone {
            if let Some(html) = super::roster_frame(room, &name, &[]) {
                voice.realtime.send_ephemeral_here(room, &html);
            }
        }
    }
}
