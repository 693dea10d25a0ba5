//! The SFU: one thread owns every peer of this instance and forwards each room's media
//! between its participants without decoding it. All media arrives on one UDP port
//! (one socket per announced address); a reader thread per socket hands datagrams to
//! the SFU thread, which also takes commands (join, leave, mute) from the web side and
//! sends back reports (gone, speaking). Nothing here runs on the async runtime.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Input, Rtc};
use tokio::sync::{mpsc::UnboundedSender, oneshot};

use super::peer::{Peer, Polled};

pub enum Command {
    Join { peer: u64, user: i64, room: i64, offer: SdpOffer, reply: oneshot::Sender<Result<SdpAnswer, String>> },
    Leave { peer: u64 },
    /// Stop (or resume) forwarding what this peer says (`muted`) and shows (`hidden`).
    Mute { peer: u64, muted: bool, hidden: bool },
    /// Stop (or resume) forwarding audio to this peer.
    Deafen { peer: u64, deaf: bool },
    /// Into another room, on the same connection.
    Move { peer: u64, room: i64 },
}

#[derive(Debug, PartialEq, Eq)]
pub enum Report {
    /// The peer's connection ended (closed, failed, or lost for too long).
    Gone { peer: u64 },
    Speaking { peer: u64, on: bool },
}

enum Inbox {
    Packet { socket: usize, at: Instant, source: SocketAddr, data: Vec<u8> },
    Command(Command),
}

/// The handle the web side holds. Dropping it ends the threads: the readers notice within
/// `READ_WAKE`, and the SFU thread when their senders and this one are gone.
pub struct Sfu {
    tx: Sender<Inbox>,
    /// Where media arrives, as announced to browsers.
    pub addrs: Vec<SocketAddr>,
    _alive: Arc<()>,
}

/// How often an idle reader looks whether the SFU is still wanted.
const READ_WAKE: Duration = Duration::from_secs(1);

/// Louder than this (dBov) counts as speaking.
const SPEAKING_LEVEL: i8 = -50;
/// How often speaking changes are reported.
const SPEAKING_EVERY: Duration = Duration::from_millis(250);

impl Sfu {
    /// Binds `port` (0: a free one) on every address in `ips` and starts the threads.
    pub fn start(port: u16, ips: &[IpAddr], reports: UnboundedSender<Report>) -> io::Result<Sfu> {
        let mut sockets = Vec::new();
        let mut port = port;
        let mut last_error = None;
        for ip in ips {
            match UdpSocket::bind(SocketAddr::new(*ip, port)) {
                Ok(socket) => {
                    port = socket.local_addr()?.port();
                    sockets.push(Arc::new(socket));
                }
                Err(error) => {
                    tracing::warn!(%ip, port, %error, "voice: cannot bind this address for media");
                    last_error = Some(error);
                }
            }
        }
        if sockets.is_empty() {
            return Err(last_error.unwrap_or_else(|| io::Error::new(io::ErrorKind::AddrNotAvailable, "no address to bind")));
        }
        let addrs = sockets.iter().map(|s| s.local_addr()).collect::<io::Result<Vec<_>>>()?;
        let (tx, rx) = mpsc::channel();
        let alive = Arc::new(());
        for (index, socket) in sockets.iter().enumerate() {
            socket.set_read_timeout(Some(READ_WAKE))?;
            let (socket, tx, wanted) = (socket.clone(), tx.clone(), Arc::downgrade(&alive));
            std::thread::Builder::new().name(format!("reale-rtc-read-{index}")).spawn(move || read(index, &socket, &tx, &wanted))?;
        }
        let locals = addrs.clone();
        std::thread::Builder::new().name("reale-sfu".into()).spawn(move || Loop::new(sockets, locals, reports).run(rx))?;
        Ok(Sfu { tx, addrs, _alive: alive })
    }

    /// False when the SFU thread has ended.
    pub fn send(&self, command: Command) -> bool {
        self.tx.send(Inbox::Command(command)).is_ok()
    }
}

fn read(index: usize, socket: &UdpSocket, tx: &Sender<Inbox>, wanted: &std::sync::Weak<()>) {
    let mut buf = vec![0u8; 2048];
    while wanted.strong_count() > 0 {
        match socket.recv_from(&mut buf) {
            Ok((n, source)) => {
                let packet = Inbox::Packet { socket: index, at: Instant::now(), source, data: buf[..n].to_vec() };
                if tx.send(packet).is_err() {
                    return;
                }
            }
            // ICMP port unreachable and the like surface here on Linux: not fatal.
            Err(error) if error.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(error) if matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(error) => {
                tracing::error!(%error, "voice: media socket failed");
                return;
            }
        }
    }
}

struct Loop {
    sockets: Vec<Arc<UdpSocket>>,
    locals: Vec<SocketAddr>,
    reports: UnboundedSender<Report>,
    peers: Vec<Peer>,
    speaking: Vec<u64>,
    next_speaking: Instant,
    /// Peers given something to send (forwarded media, a keyframe request) since they
    /// were last driven.
    dirty: Vec<usize>,
    /// Which peer each remote address belongs to (checked before use: ports get reused).
    by_source: HashMap<SocketAddr, u64>,
}

/// Most datagrams and commands taken in before the peers they were forwarded to are
/// driven: under load one poll of a receiver sends many forwarded packets, instead of
/// one poll (which walks all its streams) per packet. A peer that *receives* a datagram
/// is still polled at once: str0m wants its output drained after every input.
const BATCH: usize = 128;

impl Loop {
    fn new(sockets: Vec<Arc<UdpSocket>>, locals: Vec<SocketAddr>, reports: UnboundedSender<Report>) -> Loop {
        Loop { sockets, locals, reports, peers: Vec::new(), speaking: Vec::new(), next_speaking: Instant::now(), dirty: Vec::new(), by_source: HashMap::new() }
    }

    fn run(mut self, rx: Receiver<Inbox>) {
        loop {
            let received = if self.peers.is_empty() {
                rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
            } else {
                let due = self.peers.iter().map(|p| p.due).min().unwrap_or_else(Instant::now).min(self.next_speaking);
                rx.recv_timeout(due.saturating_duration_since(Instant::now()))
            };
            let mut next = match received {
                Ok(inbox) => Some(inbox),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut taken = 0;
            while let Some(inbox) = next.take() {
                match inbox {
                    Inbox::Packet { socket, at, source, data } => self.packet(socket, at, source, &data),
                    Inbox::Command(command) => {
                        // Commands see every peer driven up to now.
                        self.drive_dirty();
                        self.command(command);
                    }
                }
                taken += 1;
                if taken < BATCH {
                    next = rx.try_recv().ok();
                }
            }
            self.drive_dirty();
            self.timers();
        }
    }

    fn packet(&mut self, socket: usize, at: Instant, source: SocketAddr, data: &[u8]) {
        let Ok(contents) = data.try_into() else { return };
        let input = Input::Receive(at, Receive { proto: Protocol::Udp, source, destination: self.locals[socket], contents });
        // The peer this datagram belongs to (by ICE credentials or the address in use):
        // the one last seen at this address, or else whichever accepts it.
        let known = self.by_source.get(&source).and_then(|id| self.peers.iter().position(|p| p.id == *id)).filter(|&i| self.peers[i].rtc.accepts(&input));
        let Some(index) = known.or_else(|| self.peers.iter().position(|p| p.rtc.accepts(&input))) else { return };
        if known.is_none() {
            self.by_source.insert(source, self.peers[index].id);
        }
        self.peers[index].input(input);
        self.drive_from(vec![index], true);
    }

    /// Drives every peer given something to send since the last time.
    fn drive_dirty(&mut self) {
        if !self.dirty.is_empty() {
            let dirty = std::mem::take(&mut self.dirty);
            self.drive_from(dirty, false);
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Join { peer, user, room, offer, reply } => {
                let answer = self.join(peer, user, room, offer);
                let _ = reply.send(answer);
            }
            Command::Leave { peer } => {
                if let Some(p) = self.peers.iter_mut().find(|p| p.id == peer) {
                    p.rtc.disconnect();
                }
            }
            Command::Mute { peer, muted, hidden } => {
                if let Some(p) = self.peers.iter_mut().find(|p| p.id == peer) {
                    p.muted = muted;
                    p.hidden = hidden;
                }
            }
            Command::Deafen { peer, deaf } => {
                if let Some(p) = self.peers.iter_mut().find(|p| p.id == peer) {
                    p.deaf = deaf;
                }
            }
            Command::Move { peer, room } => self.move_peer(peer, room),
        }
    }

    fn move_peer(&mut self, id: u64, room: i64) {
        let Some(index) = self.peers.iter().position(|p| p.id == id) else { return };
        let from = self.peers[index].room;
        if from == room {
            return;
        }
        self.peers[index].room = room;
        self.peers[index].stop_receiving();
        let published = self.peers[index].renew_tracks();
        let mut theirs = Vec::new();
        for other in self.peers.iter_mut().filter(|p| p.room == room && p.id != id) {
            for track in &published {
                other.receive(track.clone());
            }
            theirs.extend(other.tracks_in.iter().map(Arc::downgrade));
        }
        for track in theirs {
            self.peers[index].receive(track);
        }
        for index in 0..self.peers.len() {
            if self.peers[index].room == room || self.peers[index].room == from {
                self.drive(index);
            }
        }
    }

    fn join(&mut self, id: u64, user: i64, room: i64, offer: SdpOffer) -> Result<SdpAnswer, String> {
        let mut rtc = Rtc::builder().build(Instant::now());
        for addr in &self.locals {
            let candidate = Candidate::host(*addr, "udp").map_err(|e| e.to_string())?;
            rtc.add_local_candidate(candidate);
        }
        let answer = rtc.sdp_api().accept_offer(offer).map_err(|e| e.to_string())?;
        let mut peer = Peer::new(id, user, room, rtc);
        // What the others already publish, the newcomer receives.
        for other in self.peers.iter().filter(|p| p.room == room) {
            for track in &other.tracks_in {
                peer.receive(Arc::downgrade(track));
            }
        }
        self.peers.push(peer);
        let index = self.peers.len() - 1;
        self.drive(index);
        Ok(answer)
    }

    /// Polls a peer until it has nothing more, passing what it produced to the others in
    /// its room, and polls them in turn.
    fn drive(&mut self, first: usize) {
        self.drive_from(vec![first], false);
    }

    /// Polls `first` and, in turn, the peers their output went to; with `defer`, those
    /// only join `dirty`, to be driven once at the end of the batch.
    fn drive_from(&mut self, first: Vec<usize>, defer: bool) {
        let mut queue = VecDeque::from(first);
        while let Some(index) = queue.pop_front() {
            loop {
                let Loop { sockets, locals, peers, .. } = self;
                let polled = peers[index].poll(&mut |transmit| {
                    let socket = locals.iter().position(|a| *a == transmit.source).unwrap_or(0);
                    // A full send buffer drops the datagram, as the network would.
                    let _ = sockets[socket].send_to(&transmit.contents, transmit.destination);
                });
                let (origin, room) = (self.peers[index].id, self.peers[index].room);
                let (muted, hidden) = (self.peers[index].muted, self.peers[index].hidden);
                match polled {
                    Polled::Nothing => {}
                    Polled::Until(at) => {
                        self.peers[index].due = at;
                        break;
                    }
                    Polled::TrackAdded(track) => {
                        let Loop { peers, dirty, .. } = self;
                        for (other, peer) in peers.iter_mut().enumerate() {
                            if peer.room == room && peer.id != origin {
                                peer.receive(track.clone());
                                enqueue(&mut queue, dirty, defer, other);
                            }
                        }
                    }
                    Polled::Keyframe { origin: publisher, mid, rid, kind } => {
                        if let Some(at) = self.peers.iter().position(|p| p.id == publisher && p.room == room) {
                            self.peers[at].request_keyframe(mid, rid, kind);
                            enqueue(&mut queue, &mut self.dirty, defer, at);
                        }
                    }
                    Polled::Media(data) => {
                        if (muted && data.params.spec().codec.is_audio()) || (hidden && data.params.spec().codec.is_video()) {
                            continue;
                        }
                        let Loop { peers, dirty, .. } = self;
                        for (other, peer) in peers.iter_mut().enumerate() {
                            if peer.room == room && peer.id != origin {
                                peer.forward(origin, &data);
                                enqueue(&mut queue, dirty, defer, other);
                            }
                        }
                    }
                }
            }
        }
    }

    fn timers(&mut self) {
        let now = Instant::now();
        for index in 0..self.peers.len() {
            if self.peers[index].due <= now {
                self.peers[index].input(Input::Timeout(now));
                self.drive(index);
            }
        }
        let gone: Vec<(u64, i64)> = self.peers.iter().filter(|p| p.is_gone(now)).map(|p| (p.id, p.room)).collect();
        if !gone.is_empty() {
            self.peers.retain(|p| !p.is_gone(now));
            self.by_source.retain(|_, id| gone.iter().all(|(g, _)| g != id));
            for (peer, room) in gone {
                self.speaking.retain(|p| *p != peer);
                let _ = self.reports.send(Report::Gone { peer });
                // The others stop receiving the leaver's tracks.
                for index in 0..self.peers.len() {
                    if self.peers[index].room == room {
                        self.drive(index);
                    }
                }
            }
        }
        if now >= self.next_speaking {
            self.next_speaking = now + SPEAKING_EVERY;
            for peer in &mut self.peers {
                let on = !peer.muted && peer.loudest.take().is_some_and(|level| level > SPEAKING_LEVEL);
                let was = self.speaking.contains(&peer.id);
                if on != was {
                    if on {
                        self.speaking.push(peer.id);
                    } else {
                        self.speaking.retain(|p| *p != peer.id);
                    }
                    let _ = self.reports.send(Report::Speaking { peer: peer.id, on });
                }
            }
        }
    }
}

/// `index` is to be polled: now (in this drive) or, deferred, at the end of the batch.
fn enqueue(queue: &mut VecDeque<usize>, dirty: &mut Vec<usize>, defer: bool, index: usize) {
    if defer {
        if !dirty.contains(&index) {
            dirty.push(index);
        }
    } else if !queue.contains(&index) {
        queue.push_back(index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_the_handle_ends_its_threads_and_frees_the_port() {
        let (reports, _rx) = tokio::sync::mpsc::unbounded_channel();
        let sfu = Sfu::start(0, &[IpAddr::from([127, 0, 0, 1])], reports).expect("the SFU starts on a free port");
        let addr = sfu.addrs[0];
        assert!(UdpSocket::bind(addr).is_err(), "the port is held while the SFU runs");
        drop(sfu);
        let deadline = Instant::now() + READ_WAKE * 5;
        while UdpSocket::bind(addr).is_err() {
            assert!(Instant::now() < deadline, "the port is still held after the SFU was dropped");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
