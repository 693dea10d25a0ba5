//! A browser's side of a voice call, played by str0m on a real UDP socket: it offers a
//! microphone and a data channel, and once the SFU's answer is in, it runs on its own
//! thread, sending an Opus-sized packet every 20 ms, answering the SFU's offers over the
//! data channel (as voice.js does) and counting the audio packets it receives.

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

/// A client before the answer: its offer as the page posts it.
pub struct Offering {
    rtc: Rtc,
    pending: SdpPendingOffer,
    socket: UdpSocket,
    mic: Mid,
    pub json: String,
}

/// A running client.
pub struct Talking {
    received: Arc<AtomicUsize>,
    connected: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Offering {
    pub fn new() -> Offering {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("a client UDP socket");
        let mut rtc = Rtc::builder().build(Instant::now());
        rtc.add_local_candidate(Candidate::host(socket.local_addr().expect("addr"), "udp").expect("a host candidate"));
        let mut change = rtc.sdp_api();
        let mic = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        change.add_channel("signal".into());
        let (offer, pending) = change.apply().expect("an offer");
        let json = serde_json::to_string(&offer).expect("offer as JSON");
        Offering { rtc, pending, socket, mic, json }
    }

    /// Takes the SFU's answer (the JSON `POST /v/{id}/rtc` returned) and starts talking.
    pub fn answered(mut self, reply: &str) -> Talking {
        let reply: serde_json::Value = serde_json::from_str(reply).expect("JSON");
        let answer: SdpAnswer = serde_json::from_value(reply["answer"].clone()).expect("an SDP answer");
        self.rtc.sdp_api().accept_answer(self.pending, answer).expect("the answer completes the offer");
        let (received, connected, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let run = Run { rtc: self.rtc, socket: self.socket, mic: self.mic, received: received.clone(), connected: connected.clone(), stop: stop.clone() };
        let thread = std::thread::spawn(move || run.run());
        Talking { received, connected, stop, thread: Some(thread) }
    }
}

/// The media address and port of the SFU in an answer's candidates.
pub fn answer_port(reply: &str) -> u16 {
    let reply: serde_json::Value = serde_json::from_str(reply).expect("JSON");
    let sdp = reply["answer"]["sdp"].as_str().expect("an SDP answer");
    let candidate = sdp.lines().find(|l| l.starts_with("a=candidate")).unwrap_or_else(|| panic!("a candidate in {sdp}"));
    // a=candidate:<foundation> <component> udp <priority> <ip> <port> typ host
    candidate.split_whitespace().nth(5).and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("a port in {candidate}"))
}

impl Talking {
    /// Audio packets received from the others so far.
    pub fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }

    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    /// Waits until `at_least` packets came in; how many did within `wait`.
    pub async fn hears(&self, at_least: usize, wait: Duration) -> usize {
        let deadline = Instant::now() + wait;
        while self.received() < at_least && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.received()
    }
}

impl Drop for Talking {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Run {
    rtc: Rtc,
    socket: UdpSocket,
    mic: Mid,
    received: Arc<AtomicUsize>,
    connected: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

const PACKET_EVERY: Duration = Duration::from_millis(20);

impl Run {
    fn run(mut self) {
        let local = self.socket.local_addr().expect("addr");
        let mut buf = vec![0u8; 2048];
        let mut next_packet = Instant::now();
        let mut sent: u64 = 0;
        let mut channel = None;
        while !self.stop.load(Ordering::SeqCst) && self.rtc.is_alive() {
            let timeout = loop {
                match self.rtc.poll_output() {
                    Ok(Output::Timeout(at)) => break at,
                    Ok(Output::Transmit(t)) => {
                        let _ = self.socket.send_to(&t.contents, t.destination);
                    }
                    Ok(Output::Event(event)) => match event {
                        Event::Connected => self.connected.store(true, Ordering::SeqCst),
                        Event::ChannelOpen(id, _) => channel = Some(id),
                        Event::ChannelData(data) => {
                            // The SFU offers the others' tracks; answer as voice.js does.
                            let Ok(offer) = serde_json::from_slice::<SdpOffer>(&data.data) else { continue };
                            let Ok(answer) = self.rtc.sdp_api().accept_offer(offer) else { continue };
                            let json = serde_json::to_vec(&answer).expect("answer as JSON");
                            if let Some(mut ch) = channel.and_then(|id| self.rtc.channel(id)) {
                                let _ = ch.write(false, &json);
                            }
                        }
                        Event::MediaData(data) if data.mid != self.mic => {
                            self.received.fetch_add(1, Ordering::SeqCst);
                        }
                        _ => {}
                    },
                    Err(_) => return,
                }
            };
            let now = Instant::now();
            if self.connected.load(Ordering::SeqCst) && now >= next_packet {
                next_packet = now + PACKET_EVERY;
                let params = self.rtc.writer(self.mic).and_then(|w| w.payload_params().next().copied());
                if let Some(params) = params
                    && let Some(writer) = self.rtc.writer(self.mic)
                {
                    let time = MediaTime::new(sent * 960, params.spec().clock_rate);
                    let _ = writer.write(params.pt(), now, time, vec![0xF8, 0xFF, 0xFE]);
                    sent += 1;
                }
                continue;
            }
            let until = if self.connected.load(Ordering::SeqCst) { timeout.min(next_packet) } else { timeout };
            let wait = until.saturating_duration_since(now).max(Duration::from_millis(1)).min(Duration::from_millis(50));
            let _ = self.socket.set_read_timeout(Some(wait));
            let input = match self.socket.recv_from(&mut buf) {
                Ok((n, source)) => match buf[..n].try_into() {
                    Ok(contents) => Input::Receive(Instant::now(), Receive { proto: Protocol::Udp, source, destination: local, contents }),
                    Err(_) => continue,
                },
                Err(_) => Input::Timeout(Instant::now()),
            };
            if self.rtc.handle_input(input).is_err() {
                return;
            }
        }
    }
}
