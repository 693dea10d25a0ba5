//! One browser's connection to the SFU: its `Rtc`, the tracks it publishes and the
//! tracks it receives from the others in its room, and the renegotiation that adds or
//! stops those over its data channel.
//!
//! The browser makes the first offer by `POST`: its microphone, then two video senders
//! (camera, screen) that carry nothing until the person turns one on, and a data
//! channel. Turning the camera or screen on and off swaps the sender's track in the
//! browser and needs no renegotiation; so after the first offer only the SFU offers (a
//! track to receive when someone joins, a track to stop when someone leaves), over the
//! data channel, and the two sides never offer at once.
//!
//! Video is forwarded like audio, frame by frame; a browser that needs a keyframe to
//! start (or restart) decoding asks for one, and the SFU passes the request on to the
//! publisher, as it does by itself whenever it starts sending a video track to someone.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::channel::ChannelId;
use str0m::media::{Direction, KeyframeRequestKind, MediaData, MediaKind, Mid, Rid};
use str0m::{Event, Input, Output, Rtc};

/// A track a participant publishes. Its peer holds the one strong reference; the
/// others' outgoing tracks hold weak ones, so a leaver's tracks end everywhere.
#[derive(Debug)]
pub struct TrackIn {
    pub origin: u64,
    pub mid: Mid,
    pub kind: MediaKind,
    /// What it carries, for the receiving page's tiles: "mic", "camera" or "screen"
    /// (the publisher's senders in that order).
    pub label: &'static str,
    /// Whose it is (the stream id the receivers see names them).
    pub user: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutState {
    ToOpen,
    Negotiating(Mid),
    Open(Mid),
    ToStop(Mid),
    Stopping(Mid),
}

#[derive(Debug)]
struct TrackOut {
    from: Weak<TrackIn>,
    state: OutState,
}

impl TrackOut {
    fn mid(&self) -> Option<Mid> {
        match self.state {
            OutState::ToOpen => None,
            OutState::Negotiating(m) | OutState::Open(m) | OutState::ToStop(m) | OutState::Stopping(m) => Some(m),
        }
    }
}

/// What polling a peer produced for the others in its room.
// Media is the common case and lives only until it is forwarded: boxing it would be an
// allocation per packet to save a move.
#[allow(clippy::large_enum_variant)]
pub enum Polled {
    Nothing,
    /// The peer has nothing more to do until then.
    Until(Instant),
    TrackAdded(Weak<TrackIn>),
    Media(MediaData),
    /// Someone receiving `origin`'s video track `mid` needs a keyframe.
    Keyframe { origin: u64, mid: Mid, rid: Option<Rid>, kind: KeyframeRequestKind },
}

/// How long a connection may stay lost before its participant is dropped.
pub const LOST_AFTER: Duration = Duration::from_secs(15);

pub struct Peer {
    pub id: u64,
    pub user: i64,
    pub room: i64,
    pub rtc: Rtc,
    /// Their audio is not forwarded to the others (self mute, server mute, no SPEAK,
    /// timed out).
    pub muted: bool,
    /// Their video is not forwarded either (silenced by the server, not by themselves).
    pub hidden: bool,
    /// No audio forwarded to this peer (video still is, as in Discord).
    pub deaf: bool,
    /// When anything last arrived from the browser (media flows many times a second, and
    /// a muted browser still sends silence and ICE consent checks).
    last_heard: Instant,
    channel: Option<ChannelId>,
    pending: Option<SdpPendingOffer>,
    pub tracks_in: Vec<Arc<TrackIn>>,
    tracks_out: Vec<TrackOut>,
    /// When `poll` last said to come back.
    pub due: Instant,
    /// Loudest audio level (dBov, 0 loudest … -127) heard since the last report.
    pub loudest: Option<i8>,
    /// Keyframe requests to pass on to publishers (tracks this peer just started
    /// receiving, or asked for by its browser).
    keyframes: Vec<(u64, Mid, Option<Rid>, KeyframeRequestKind)>,
}

impl Peer {
    pub fn new(id: u64, user: i64, room: i64, rtc: Rtc) -> Peer {
        Peer {
            id,
            user,
            room,
            rtc,
            muted: false,
            hidden: false,
            deaf: false,
            last_heard: Instant::now(),
            channel: None,
            pending: None,
            tracks_in: Vec::new(),
            tracks_out: Vec::new(),
            due: Instant::now(),
            loudest: None,
            keyframes: Vec::new(),
        }
    }

    /// Gone for good: closed, failed, or silent for longer than `LOST_AFTER`.
    pub fn is_gone(&self, now: Instant) -> bool {
        !self.rtc.is_alive() || now.saturating_duration_since(self.last_heard) > LOST_AFTER
    }

    pub fn input(&mut self, input: Input) {
        if let Input::Receive(at, _) = &input {
            self.last_heard = self.last_heard.max(*at);
        }
        if self.rtc.is_alive() && self.rtc.handle_input(input).is_err() {
            self.rtc.disconnect();
        }
    }

    /// Starts receiving a track someone else in the room publishes.
    pub fn receive(&mut self, from: Weak<TrackIn>) {
        self.tracks_out.push(TrackOut { from, state: OutState::ToOpen });
    }

    /// The next thing this peer has for the room; `Until` when it has nothing more now.
    pub fn poll(&mut self, send: &mut dyn FnMut(&str0m::net::Transmit)) -> Polled {
        if !self.rtc.is_alive() {
            return Polled::Until(Instant::now() + Duration::from_secs(1));
        }
        if let Some((origin, mid, rid, kind)) = self.keyframes.pop() {
            return Polled::Keyframe { origin, mid, rid, kind };
        }
        if self.negotiate() {
            return Polled::Nothing;
        }
        let output = match self.rtc.poll_output() {
            Ok(output) => output,
            Err(_) => {
                self.rtc.disconnect();
                return Polled::Nothing;
            }
        };
        match output {
            Output::Timeout(at) => Polled::Until(at),
            Output::Transmit(transmit) => {
                send(&transmit);
                Polled::Nothing
            }
            Output::Event(event) => self.event(event),
        }
    }

    fn event(&mut self, event: Event) -> Polled {
        match event {
            Event::MediaAdded(added) if matches!(added.direction, Direction::RecvOnly | Direction::SendRecv) => {
                let label = match added.kind {
                    MediaKind::Audio => "mic",
                    MediaKind::Video if self.tracks_in.iter().any(|t| t.kind == MediaKind::Video) => "screen",
                    MediaKind::Video => "camera",
                };
                let track = Arc::new(TrackIn { origin: self.id, mid: added.mid, kind: added.kind, label, user: self.user });
                let weak = Arc::downgrade(&track);
                self.tracks_in.push(track);
                Polled::TrackAdded(weak)
            }
            Event::MediaData(data) => {
                if let Some(level) = data.ext_vals.audio_level {
                    self.loudest = Some(self.loudest.map_or(level, |l| l.max(level)));
                }
                Polled::Media(data)
            }
            Event::KeyframeRequest(request) => {
                let from = self.tracks_out.iter().find(|t| t.mid() == Some(request.mid)).and_then(|t| t.from.upgrade());
                match from {
                    Some(from) => Polled::Keyframe { origin: from.origin, mid: from.mid, rid: request.rid, kind: request.kind },
                    None => Polled::Nothing,
                }
            }
            Event::ChannelOpen(id, _) => {
                self.channel = Some(id);
                Polled::Nothing
            }
            Event::ChannelData(data) => {
                if let Ok(answer) = serde_json::from_slice::<SdpAnswer>(&data.data) {
                    self.answered(answer);
                }
                Polled::Nothing
            }
            _ => Polled::Nothing,
        }
    }

    /// Offers the tracks to open and to stop, once the data channel is up and no other
    /// offer is outstanding. True when an offer went out.
    fn negotiate(&mut self) -> bool {
        if self.channel.is_none() || self.pending.is_some() {
            return false;
        }
        for track in &mut self.tracks_out {
            if let OutState::Open(mid) = track.state
                && track.from.upgrade().is_none()
            {
                track.state = OutState::ToStop(mid);
            }
        }
        // A track whose publisher left before it was offered is simply forgotten.
        self.tracks_out.retain(|t| t.state != OutState::ToOpen || t.from.strong_count() > 0);
        let mut change = self.rtc.sdp_api();
        for track in &mut self.tracks_out {
            match track.state {
                OutState::ToOpen => {
                    if let Some(from) = track.from.upgrade() {
                        // The stream id says what it is and whose, so the page can label the tile.
                        let mid = change.add_media(from.kind, Direction::SendOnly, Some(format!("{}-{}", from.label, from.user)), None, None);
                        track.state = OutState::Negotiating(mid);
                    }
                }
                OutState::ToStop(mid) => {
                    change.stop_media(mid);
                    track.state = OutState::Stopping(mid);
                }
                _ => {}
            }
        }
        if !change.has_changes() {
            return false;
        }
        let Some((offer, pending)) = change.apply() else { return false };
        let Ok(json) = serde_json::to_vec(&offer) else { return false };
        let Some(mut channel) = self.channel.and_then(|id| self.rtc.channel(id)) else { return false };
        if channel.write(false, &json).is_err() {
            return false;
        }
        self.pending = Some(pending);
        true
    }

    fn answered(&mut self, answer: SdpAnswer) {
        let Some(pending) = self.pending.take() else { return };
        if self.rtc.sdp_api().accept_answer(pending, answer).is_err() {
            self.rtc.disconnect();
            return;
        }
        for track in &mut self.tracks_out {
            if let OutState::Negotiating(mid) = track.state {
                track.state = OutState::Open(mid);
                // Decoding starts at a keyframe: ask for one rather than wait for the next.
                if let Some(from) = track.from.upgrade().filter(|f| f.kind == MediaKind::Video) {
                    self.keyframes.push((from.origin, from.mid, None, KeyframeRequestKind::Pli));
                }
            }
        }
        self.tracks_out.retain(|t| !matches!(t.state, OutState::Stopping(_)));
    }

    /// Gives this peer's tracks new identities (after a move to another room): the old
    /// room's copies end as their weak references die; the new ones to hand out.
    pub fn renew_tracks(&mut self) -> Vec<Weak<TrackIn>> {
        self.tracks_in = self.tracks_in.iter().map(|t| Arc::new(TrackIn { origin: t.origin, mid: t.mid, kind: t.kind, label: t.label, user: t.user })).collect();
        self.tracks_in.iter().map(Arc::downgrade).collect()
    }

    /// Stops receiving everything it receives now (after a move to another room).
    pub fn stop_receiving(&mut self) {
        self.tracks_out.retain(|t| t.state != OutState::ToOpen);
        for track in &mut self.tracks_out {
            if let OutState::Open(mid) | OutState::Negotiating(mid) = track.state {
                track.state = OutState::ToStop(mid);
            }
        }
    }

    /// Sends on what `origin` published as `data.mid`, if this peer receives it.
    pub fn forward(&mut self, origin: u64, data: &MediaData) {
        if self.deaf && data.params.spec().codec.is_audio() {
            return;
        }
        let Some(mid) = self
            .tracks_out
            .iter()
            .find(|t| matches!(t.state, OutState::Open(_)) && t.from.upgrade().is_some_and(|f| f.origin == origin && f.mid == data.mid))
            .and_then(TrackOut::mid)
        else {
            return;
        };
        let Some(writer) = self.rtc.writer(mid) else { return };
        let Some(pt) = writer.match_params(data.params) else { return };
        if writer.write(pt, data.network_time, data.time, data.data.clone()).is_err() {
            self.rtc.disconnect();
        }
    }

    /// Asks this peer's browser for a keyframe on the video it publishes as `mid`.
    pub fn request_keyframe(&mut self, mid: Mid, rid: Option<Rid>, kind: KeyframeRequestKind) {
        if let Some(mut writer) = self.rtc.writer(mid) {
            // Not receiving on that mid (yet): nothing to ask for.
            let _ = writer.request_keyframe(rid, kind);
        }
    }
}
