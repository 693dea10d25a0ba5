//! A str0m client that talks in a voice room the way voice.js does, for flow tests that
//! need media without a browser: its first offer (a microphone and a data channel)
//! goes by POST; from then on it answers the SFU's offers on the data channel, sends a
//! packet of audio every 20 ms once connected, and counts the audio packets it receives.
//! It runs on a thread of its own with its own UDP socket on 127.0.0.1.

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

use super::Client;

/// One Opus frame's worth of samples at 48 kHz (20 ms).
const FRAME: u64 = 960;

pub struct Talker {
    received: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Talker {
    /// Joins through `rtc_path` (`/v/{id}/rtc`, `/c/{id}/call/rtc`) as `client`: the
    /// response's status, and the talker once the SFU answered.
    pub async fn join(client: &mut Client, rtc_path: &str) -> (StatusCode, Option<Talker>) {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("a UDP port");
        let addr = socket.local_addr().expect("its address");
        let mut rtc = Rtc::new(Instant::now());
        rtc.add_local_candidate(Candidate::host(addr, "udp").expect("a host candidate"));
        let mut change = rtc.sdp_api();
        let mic = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        change.add_channel("signal".into());
        let (offer, pending) = change.apply().expect("an offer");
        let json = serde_json::to_vec(&offer).expect("offer as JSON");
        let response = client.post_raw(rtc_path, json, "application/json").await;
        if response.status != StatusCode::OK {
            return (response.status, None);
        }
        let reply: serde_json::Value = serde_json::from_str(&response.body).expect("JSON");
        let answer: SdpAnswer = serde_json::from_value(reply["answer"].clone()).expect("an SDP answer");
        rtc.sdp_api().accept_answer(pending, answer).expect("the answer completes the offer");
        let (received, stop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
        let thread = {
            let (received, stop) = (received.clone(), stop.clone());
            std::thread::spawn(move || run(rtc, socket, mic, &received, &stop))
        };
        (response.status, Some(Talker { received, stop, thread: Some(thread) }))
    }

    /// Audio packets received so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Whether at least `packets` more audio packets arrive within `wait`.
    pub async fn hears(&self, packets: u64, wait: Duration) -> bool {
        let (from, started) = (self.received(), Instant::now());
        while started.elapsed() < wait {
            if self.received() >= from + packets {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
}

impl Drop for Talker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(mut rtc: Rtc, socket: UdpSocket, mic: Mid, received: &AtomicU64, stop: &AtomicBool) {
    let addr = socket.local_addr().expect("its address");
    socket.set_read_timeout(Some(Duration::from_millis(5))).expect("a read timeout");
    let (mut buf, mut connected, mut next_frame, mut rtp_time) = (vec![0u8; 2000], false, Instant::now(), 0u64);
    while !stop.load(Ordering::Relaxed) && rtc.is_alive() {
        loop {
            match rtc.poll_output() {
                Ok(Output::Transmit(t)) => {
                    let _ = socket.send_to(&t.contents, t.destination);
                }
                Ok(Output::Timeout(_)) => break,
                Ok(Output::Event(Event::Connected)) => connected = true,
                Ok(Output::Event(Event::MediaData(_))) => {
                    received.fetch_add(1, Ordering::Relaxed);
                }
                // The SFU offers a track to receive (or stop) whenever someone joins or leaves.
                Ok(Output::Event(Event::ChannelData(data))) => {
                    let Ok(offer) = serde_json::from_slice::<SdpOffer>(&data.data) else { continue };
                    let Ok(answer) = rtc.sdp_api().accept_offer(offer) else { continue };
                    let json = serde_json::to_vec(&answer).expect("answer as JSON");
                    if let Some(mut channel) = rtc.channel(data.id) {
                        let _ = channel.write(false, &json);
                    }
                }
                Ok(Output::Event(_)) => {}
                Err(_) => return,
            }
        }
        let now = Instant::now();
        if connected && now >= next_frame {
            if let Some(writer) = rtc.writer(mic) {
                let pt = writer.payload_params().next().map(|p| p.pt());
                if let Some(pt) = pt {
                    // An Opus frame of silence: the SFU forwards without decoding.
                    let _ = writer.write(pt, now, MediaTime::new(rtp_time, Frequency::FORTY_EIGHT_KHZ), vec![0xf8, 0xff, 0xfe]);
                }
            }
            rtp_time += FRAME;
            next_frame = now + Duration::from_millis(20);
        }
        let input = match socket.recv_from(&mut buf) {
            Ok((n, source)) => match buf[..n].try_into() {
                Ok(contents) => Input::Receive(Instant::now(), Receive { proto: Protocol::Udp, source, destination: addr, contents }),
                Err(_) => Input::Timeout(Instant::now()),
            },
            Err(_) => Input::Timeout(Instant::now()),
        };
        if rtc.handle_input(input).is_err() {
            return;
        }
        let _ = rtc.handle_input(Input::Timeout(Instant::now()));
    }
}
