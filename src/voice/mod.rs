//! Voice: rooms (a server's voice channel, or a call in a DM or group: `calls`), who
//! is in each, and the SFU inside this binary that forwards their media (`sfu`,
//! `peer`). The web side (`routes`) checks permissions, hands the browser's offer to
//! the SFU and returns its answer; the roster here is what pages and live frames show
//! of each room.
//!
//! A person is in at most one room at a time, across tabs and devices: joining
//! elsewhere ends the earlier connection. The SFU starts with the first join, so an
//! instance nobody talks on holds no socket or thread for it. In scale mode each room
//! lives on one instance and the web side goes through `cluster`, which sends what
//! it asks to that instance.

pub mod cluster;
mod moderation;
mod page;
mod peer;
mod roster;
mod routes;
mod sfu;
mod turn;

pub use page::Controls;
pub use roster::{MemberView, RosterFragment};
pub use routes::{Switch, connected, routes};

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use askama::Template;

use crate::conversations::access;
use crate::error::AppError;
use crate::realtime::Realtime;
use crate::servers::permissions::Permissions;
use crate::store::Store;
use crate::realtime::swap::{Op, place};

use roster::{Member, Roster};
use sfu::{Command, Report, Sfu};

/// Why a join did not happen.
pub enum JoinError {
    /// The SFU is not running (its port could not be opened): 503.
    Unavailable(String),
    /// The browser's offer could not be answered: 422.
    BadOffer(String),
}

/// What a moderator (MUTE_MEMBERS) does to someone in a room.
pub enum Moderation<'a> {
    Mute(bool),
    Disconnect,
    Move { to: i64, to_name: &'a str },
}

pub struct Voice {
    port: u16,
    ips: Vec<IpAddr>,
    sfu: OnceLock<Result<Sfu, String>>,
    roster: Mutex<Roster>,
    next_peer: AtomicU64,
    realtime: Arc<Realtime>,
    store: Store,
    turn: Option<turn::Turn>,
    cluster: cluster::Cluster,
}

/// How often everyone in a room here is checked against their permissions now: a kick,
/// a ban, a lost CONNECT takes them out, a lost SPEAK or a timeout silences them.
const RECHECK: Duration = Duration::from_millis(500);

impl Voice {
    pub fn new(config: &crate::config::Config, store: Store, realtime: Arc<Realtime>) -> Arc<Voice> {
        let ips = if config.rtc_public_ip.is_empty() { default_ips() } else { config.rtc_public_ip.clone() };
        let voice = Arc::new(Voice {
            port: config.rtc_port,
            ips,
            sfu: OnceLock::new(),
            roster: Mutex::default(),
            next_peer: AtomicU64::new(1),
            realtime,
            store,
            turn: turn::Turn::from_config(&config.turn_url, config.turn_secret.as_deref()),
            cluster: cluster::Cluster::default(),
        });
        cluster::start(&voice);
        voice
    }

    fn roster(&self) -> MutexGuard<'_, Roster> {
        self.roster.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The SFU, started on first use; why not, if it cannot start (the port is taken).
    fn sfu(self: &Arc<Self>) -> Result<&Sfu, String> {
        let started = self.sfu.get_or_init(|| {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let sfu = Sfu::start(self.port, &self.ips, tx).map_err(|e| {
                tracing::error!(port = self.port, error = %e, "voice: cannot open the media port");
                format!("Voice is unavailable on this server right now (media port {}: {e}).", self.port)
            })?;
            tracing::info!(addrs = ?sfu.addrs, "voice: media on UDP");
            let voice = Arc::downgrade(self);
            tokio::spawn(async move {
                while let Some(report) = rx.recv().await {
                    let Some(voice) = voice.upgrade() else { return };
                    voice.reported(report);
                }
            });
            tokio::spawn(recheck(Arc::downgrade(self)));
            Ok(sfu)
        });
        started.as_ref().map_err(Clone::clone)
    }

    /// The ICE servers `user_id`'s browser is given (JSON for `RTCPeerConnection`):
    /// none, or the TURN servers with credentials that expire.
    pub fn ice_servers(&self, user_id: i64) -> String {
        let servers: Vec<_> = self.turn.iter().map(|t| t.ice_server(user_id, time::OffsetDateTime::now_utc().unix_timestamp())).collect();
        serde_json::to_string(&servers).unwrap_or_else(|_| "[]".into())
    }

    /// Who is in `room` now, as pages show it (as its instance said, if another holds it).
    pub fn members(&self, room: i64) -> Vec<MemberView> {
        let here = self.roster().members(room);
        if here.is_empty()
            && let Some(there) = self.cluster.members(room)
        {
            return there;
        }
        here
    }

    /// Puts `user` into `room` with the browser's offer; the SFU's answer. Whatever room
    /// the user was in before (any tab, any device), they leave it.
    pub async fn join(self: &Arc<Self>, (room, room_name): (i64, &str), user_id: i64, name: &str, may_speak: bool, offer: str0m::change::SdpOffer) -> Result<(u64, str0m::change::SdpAnswer), JoinError> {
        let sfu = self.sfu().map_err(JoinError::Unavailable)?;
        let peer = self.next_peer.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = tokio::sync::oneshot::channel();
        let gone = || JoinError::Unavailable("Voice is unavailable on this server right now.".into());
        if !sfu.send(Command::Join { peer, user: user_id, room, offer, reply }) {
            return Err(gone());
        }
        let answer = answer.await.map_err(|_| gone())?.map_err(JoinError::BadOffer)?;
        if !may_speak {
            sfu.send(Command::Mute { peer, muted: true, hidden: true });
        }
        let left = self.roster().put(Member::new(peer, (room, room_name), user_id, name, !may_speak));
        if let Some(old) = left {
            sfu.send(Command::Leave { peer: old.peer });
            if old.room != room {
                self.broadcast(old.room, &old.room_name);
            }
        }
        self.broadcast(room, room_name);
        Ok((peer, answer))
    }

    /// The user leaves `room`, or whatever room they are in when `room` is None (their
    /// page may be an older room's, if a moderator moved them). False if they were not in it.
    pub fn leave(self: &Arc<Self>, user_id: i64, room: Option<i64>) -> bool {
        let gone = self.roster().remove_user(user_id, room);
        let Some(member) = gone else { return false };
        if let Ok(sfu) = self.sfu() {
            sfu.send(Command::Leave { peer: member.peer });
        }
        self.broadcast(member.room, &member.room_name);
        true
    }

    /// Self mute and deafen, as the person sets them.
    pub fn set_self(self: &Arc<Self>, room: i64, user_id: i64, muted: Option<bool>, deafened: Option<bool>) -> bool {
        let changed = self.roster().update(user_id, room, |m| {
            if let Some(muted) = muted {
                m.self_muted = muted;
            }
            if let Some(deafened) = deafened {
                m.deafened = deafened;
                // Discord: deafening mutes too, undeafening restores the microphone.
                m.self_muted = m.self_muted || deafened;
            }
        });
        let Some(member) = changed else { return false };
        if let Ok(sfu) = self.sfu() {
            sfu.send(Command::Mute { peer: member.peer, muted: member.silenced(), hidden: member.hidden() });
            sfu.send(Command::Deafen { peer: member.peer, deaf: member.deafened });
        }
        self.broadcast(room, &member.room_name);
        true
    }

    /// Camera and screen on or off, as the person sets them (their browser has already
    /// started or stopped sending; this is what the others' pages show).
    pub fn set_video(self: &Arc<Self>, room: i64, user_id: i64, camera: Option<bool>, screen: Option<bool>) -> bool {
        let changed = self.roster().update(user_id, room, |m| {
            m.camera = camera.unwrap_or(m.camera);
            m.screen = screen.unwrap_or(m.screen);
        });
        let Some(member) = changed else { return false };
        self.broadcast(room, &member.room_name);
        true
    }

    /// A moderator's action on `user_id` in `room`; false when they are not in it.
    pub fn moderate(self: &Arc<Self>, room: i64, user_id: i64, action: Moderation<'_>) -> bool {
        let Ok(sfu) = self.sfu() else { return false };
        match action {
            Moderation::Mute(on) => {
                let Some(member) = self.roster().update(user_id, room, |m| m.mod_muted = on) else { return false };
                sfu.send(Command::Mute { peer: member.peer, muted: member.silenced(), hidden: member.hidden() });
                self.broadcast(room, &member.room_name);
            }
            Moderation::Disconnect => return self.leave(user_id, Some(room)),
            Moderation::Move { to, to_name } => {
                let moved = self.roster().relocate(user_id, room, (to, to_name));
                let Some((from_name, member)) = moved else { return false };
                sfu.send(Command::Move { peer: member.peer, room: to });
                self.broadcast(room, &from_name);
                self.broadcast(to, to_name);
            }
        }
        true
    }

    /// Silenced by the server (no SPEAK, timed out) or not; broadcast when it changed.
    fn set_server_muted(self: &Arc<Self>, room: i64, user_id: i64, silenced: bool) {
        let mut changed = false;
        let member = self.roster().update(user_id, room, |m| {
            changed = m.server_muted != silenced;
            m.server_muted = silenced;
        });
        let Some(member) = member.filter(|_| changed) else { return };
        if let Ok(sfu) = self.sfu() {
            sfu.send(Command::Mute { peer: member.peer, muted: member.silenced(), hidden: member.hidden() });
        }
        self.broadcast(room, &member.room_name);
    }

    fn reported(self: &Arc<Self>, report: Report) {
        match report {
            Report::Gone { peer } => {
                let gone = self.roster().remove_peer(peer);
                if let Some(member) = gone {
                    self.broadcast(member.room, &member.room_name);
                }
            }
            Report::Speaking { peer, on } => {
                let changed = self.roster().set_speaking(peer, on);
                if let Some((room, name)) = changed {
                    self.broadcast(room, &name);
                }
            }
        }
    }

    /// The room's roster to everyone who can see the channel (on every instance).
    fn broadcast(&self, room: i64, room_name: &str) {
        let members = self.roster().members(room);
        if let Some(html) = roster_frame(room, room_name, &members) {
            self.realtime.send_ephemeral(room, &html);
        }
        cluster::published(self, room, room_name, &members);
    }
}

/// A room's roster as a live frame, replacing every copy on a page.
fn roster_frame(room: i64, room_name: &str, members: &[MemberView]) -> Option<String> {
    let fragment = RosterFragment { room, room_name, members };
    match fragment.render().and_then(|html| place(Op::Each(&format!(".voice-{room}")), &html)) {
        Ok(html) => Some(html),
        Err(error) => {
            tracing::error!(%error, "voice: roster did not render");
            None
        }
    }
}

/// Every `RECHECK`, each participant here against what they may do in their room now:
/// in a voice channel, its permissions; in a call, membership of its DM or group.
async fn recheck(voice: Weak<Voice>) {
    let mut tick = tokio::time::interval(RECHECK);
    loop {
        tick.tick().await;
        let Some(voice) = voice.upgrade() else { return };
        let everyone = voice.roster().everyone();
        for (user_id, room) in everyone {
            let rights = access::require_room(&voice.store, user_id, room).await;
            let channel = match &rights {
                // A call in a DM or group: being a member is all it takes to stay.
                Ok(access) if !access.is_channel() => continue,
                Ok(access) => access.channel.as_ref(),
                Err(AppError::NotFound) => None,
                // The database is busy or away: keep everyone until it answers.
                Err(_) => continue,
            };
            match channel {
                // A timeout takes CONNECT away too (it keeps only reading), but someone
                // already in stays and listens, silenced, as "cannot speak" says.
                Some(c) if c.has(Permissions::CONNECT) || c.timed_out_until.is_some() => {
                    let silenced = !c.has(Permissions::SPEAK) || c.timed_out_until.is_some();
                    voice.set_server_muted(room, user_id, silenced);
                }
                _ => {
                    voice.leave(user_id, Some(room));
                }
            }
        }
    }
}

/// 127.0.0.1 and this host's IPv4 addresses.
fn default_ips() -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = vec![IpAddr::from([127, 0, 0, 1])];
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list we only read and then free.
    unsafe {
        if libc::getifaddrs(&mut list) == 0 {
            let mut at = list;
            while !at.is_null() {
                let addr = (*at).ifa_addr;
                if !addr.is_null() && i32::from((*addr).sa_family) == libc::AF_INET {
                    let v4 = &*(addr as *const libc::sockaddr_in);
                    let ip = IpAddr::from(u32::from_be(v4.sin_addr.s_addr).to_be_bytes());
                    if !ips.contains(&ip) {
                        ips.push(ip);
                    }
                }
                at = (*at).ifa_next;
            }
            libc::freeifaddrs(list);
        }
    }
    ips
}
