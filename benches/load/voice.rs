//! `voice`: what the SFU inside the binary costs (issue 13, acceptance 6).
//!
//! Participants are str0m clients in this generator (the SFU's own library, as a
//! browser would be), each with its own UDP socket on 127.0.0.1, joining through
//! `POST /v/{id}/rtc` and answering the SFU's renegotiations over the data channel, as
//! `voice.js` does. Each publishes one audio track: an 80-byte Opus-sized payload every
//! 20 ms carrying its index, a sequence number and its send time.
//!
//! 1. Join time (`--joins`, default 100): in a room where two people talk, one more joins
//!    and leaves again, one after another; the time from just before its offer is posted
//!    to the first audio packet arriving at its socket (ICE, DTLS and the SFU's
//!    renegotiation included; a browser adds its own getUserMedia and setup).
//! 2. One room of `--sizes` participants (default 5,10,20,30,40,50,60), then `--rooms`
//!    rooms of five (default 5,10,20,40,60): per size, everyone joins, then for `--secs`
//!    (default 10) the server's CPU, the packets the SFU forwarded (counted at every
//!    receiving socket) and, at "probe" participants (two in the one room, one per room of
//!    five) that decrypt what they receive, the latency from send to receipt and the loss
//!    (by sequence numbers). The other participants count packets without decrypting
//!    them, so this one-core generator can keep up with the SFU's core.
//!    CPU per forwarded packet = server CPU seconds / forwarded packets; RSS per
//!    participant = (server RSS with everyone in − RSS before the first join) / participants.

use super::*;

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::channel::ChannelId;
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);
const MAGIC: &[u8; 4] = b"rlvb";
const FRAME: Duration = Duration::from_millis(20);

/// Counters every participant task shares with the phase that runs them.
struct Shared {
    /// Audio (RTP) packets that arrived at any participant's socket.
    forwarded: AtomicU64,
    latency: Hist,
    /// The measuring window, as ns after `EPOCH` (0: not measuring).
    from: AtomicU64,
    until: AtomicU64,
    /// Probes that have heard everyone else in their room.
    ready: AtomicUsize,
}

/// A probe's count per sender heard in the window: (lowest seq, highest seq, received).
type Heard = Arc<Mutex<HashMap<u32, (u64, u64, u64)>>>;

struct Participant {
    stop: Arc<AtomicBool>,
    task: JoinHandle<Result<(), String>>,
    cookie: String,
    room: i64,
    heard: Option<Heard>,
}

pub(super) async fn voice(args: &Args) {
    let (joins, sizes, rooms, secs) = (args.num("joins", 100), args.list("sizes", "5,10,20,30,40,50,60"), args.list("rooms", "5,10,20,40,60"), args.num("secs", 10));
    let users = sizes.iter().copied().max().unwrap_or(0).max(rooms.iter().max().unwrap_or(&0) * 5).max(3);
    let http = http_client();
    let mut server = Server::start_with(&http, args.num("server-cpu", 0), &["--rtc-port", "0", "--rtc-public-ip", "127.0.0.1"]).await;
    let addr = server.addr;
    let cookies = Arc::new(register_users(&http, addr, users).await);
    let owner = Some(cookies[0].as_str());
    let created = expect_redirect("create server", request(&http, addr, "POST", "/servers", owner, "name=Voice").await);
    let id: i64 = created.location.trim_start_matches("/s/").parse().expect("server id in Location");
    // A new server has one voice channel; one more per room of five beyond it.
    for n in 1..rooms.iter().copied().max().unwrap_or(1) {
        let form = format!("kind=voice&name=v{n}&category=none");
        expect_redirect("create voice channel", request(&http, addr, "POST", &format!("/s/{id}/channels"), owner, &form).await);
    }
    everyone_joins(&http, addr, &cookies, id).await;
    let home = request(&http, addr, "GET", &format!("/s/{id}"), owner, "").await.expect("server page");
    let home = String::from_utf8_lossy(&home.body).into_owned();
    let mut channels: Vec<i64> = Vec::new();
    for id in home.split("href=\"/v/").skip(1).filter_map(|s| s.split('"').next()?.parse().ok()) {
        if !channels.contains(&id) {
            channels.push(id);
        }
    }
    println!("server {id}: {users} members, {} voice channels", channels.len());
    server.restart(&http).await;
    wait_quiet(&[server.pid]).await;
    let baseline = rss_kib(server.pid);
    let shared = Arc::new(Shared { forwarded: AtomicU64::new(0), latency: Hist::new(), from: AtomicU64::new(0), until: AtomicU64::new(0), ready: AtomicUsize::new(0) });

    // 1. Join time.
    let talkers = vec![
        participant(addr, &cookies[0], channels[0], false, &shared, None),
        participant(addr, &cookies[1], channels[0], false, &shared, None),
    ];
    tokio::time::sleep(Duration::from_secs(2)).await;
    let times = Hist::new();
    let mut failed = 0;
    for _ in 0..joins {
        let (tx, rx) = oneshot::channel();
        let started = Instant::now();
        let joiner = participant(addr, &cookies[2], channels[0], false, &shared, Some(tx));
        match tokio::time::timeout(Duration::from_secs(10), rx).await {
            Ok(Ok(at)) => times.record(at - started),
            _ => failed += 1,
        }
        leave(&http, addr, &[joiner]).await;
    }
    leave(&http, addr, &talkers).await;
    println!(
        "\njoin time, offer posted → first audio packet received ({joins} joins into a room of 2 talking): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, failed {failed}",
        times.ms(0.5),
        times.ms(0.99),
        times.ms(1.0)
    );

    // 2. One room, then rooms of five.
    println!("\n| layout | participants | forwarded pkt/s | server CPU | CPU per forwarded packet | latency p50 / p99 / max | loss | RSS per participant | generator CPU |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for &size in &sizes {
        let everyone: Vec<(i64, bool)> = (0..size).map(|i| (channels[0], i < 2)).collect();
        measure_layout(&http, &server, &cookies, &shared, &everyone, 2, &format!("1 room of {size}"), secs, baseline).await;
    }
    for &count in &rooms {
        let everyone: Vec<(i64, bool)> = (0..count * 5).map(|i| (channels[i / 5], i % 5 == 0)).collect();
        measure_layout(&http, &server, &cookies, &shared, &everyone, count, &format!("{count} rooms of 5"), secs, baseline).await;
    }
}

/// Everyone joins their room; once every probe hears the rest of its room, one window.
#[allow(clippy::too_many_arguments)]
async fn measure_layout(http: &Http, server: &Server, cookies: &[String], shared: &Arc<Shared>, everyone: &[(i64, bool)], probes: usize, label: &str, secs: usize, baseline: u64) {
    shared.ready.store(0, Relaxed);
    let mut people = Vec::new();
    for (i, &(room, probe)) in everyone.iter().enumerate() {
        people.push(participant(server.addr, &cookies[i], room, probe, shared, None));
        // Joins a few at a time, as people arrive.
        if i % 8 == 7 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let per_room = everyone.iter().filter(|(r, _)| *r == everyone[0].0).count();
    let deadline = Instant::now() + Duration::from_secs(60);
    while shared.ready.load(Relaxed) < probes {
        if Instant::now() > deadline {
            println!("| {label} | {} | (probes never heard everyone: {} of {probes} ready) |", everyone.len(), shared.ready.load(Relaxed));
            leave(http, server.addr, &people).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = rss_kib(server.pid);
    wait_quiet(&[server.pid]).await;
    shared.latency.reset();
    for p in &people {
        if let Some(heard) = &p.heard {
            heard.lock().unwrap().clear();
        }
    }
    let now_ns = || EPOCH.elapsed().as_nanos() as u64;
    let (cpu0, gen0, fwd0, t0) = (cpu_secs(server.pid), cpu_secs(std::process::id()), shared.forwarded.load(Relaxed), Instant::now());
    shared.until.store(u64::MAX, Relaxed);
    shared.from.store(now_ns(), Relaxed);
    tokio::time::sleep(Duration::from_secs(secs as u64)).await;
    shared.until.store(now_ns(), Relaxed);
    let (cpu1, gen1, fwd1, elapsed) = (cpu_secs(server.pid), cpu_secs(std::process::id()), shared.forwarded.load(Relaxed), t0.elapsed().as_secs_f64());
    // In-flight packets of the window still count.
    tokio::time::sleep(Duration::from_millis(500)).await;
    shared.from.store(0, Relaxed);
    let (mut received, mut expected) = (0u64, 0u64);
    for p in &people {
        if let Some(heard) = &p.heard {
            for (low, high, count) in heard.lock().unwrap().values() {
                received += count;
                expected += high - low + 1;
            }
        }
    }
    let forwarded = (fwd1 - fwd0) as f64;
    println!(
        "| {label} ({per_room} per room) | {} | {:.0} | {:.0} % | {:.2} µs | {:.1} / {:.1} / {:.1} ms | {:.2} % | {:.0} KiB | {:.0} % |",
        everyone.len(),
        forwarded / elapsed,
        (cpu1 - cpu0) / elapsed * 100.0,
        (cpu1 - cpu0) / forwarded * 1e6,
        shared.latency.ms(0.5),
        shared.latency.ms(0.99),
        shared.latency.ms(1.0),
        if expected == 0 { f64::NAN } else { (1.0 - received as f64 / expected as f64) * 100.0 },
        rss.saturating_sub(baseline) as f64 / everyone.len() as f64,
        (gen1 - gen0) / elapsed * 100.0,
    );
    leave(http, server.addr, &people).await;
}

/// Ends each participant: its page's `POST /v/{id}/leave`, then its task.
async fn leave(http: &Http, addr: SocketAddr, people: &[Participant]) {
    for p in people {
        p.stop.store(true, Relaxed);
        let _ = request(http, addr, "POST", &format!("/v/{}/leave", p.room), Some(&p.cookie), "").await;
    }
    for p in people {
        p.task.abort();
    }
    // The SFU's roster broadcasts and peer teardown settle before the next step.
    tokio::time::sleep(Duration::from_millis(500)).await;
}

fn participant(addr: SocketAddr, cookie: &str, room: i64, probe: bool, shared: &Arc<Shared>, first: Option<oneshot::Sender<Instant>>) -> Participant {
    let stop = Arc::new(AtomicBool::new(false));
    let heard: Option<Heard> = probe.then(Arc::default);
    let task = tokio::spawn(run_participant(addr, cookie.to_string(), room, shared.clone(), stop.clone(), heard.clone(), first));
    Participant { stop, task, cookie: cookie.to_string(), room, heard }
}

static NEXT_INDEX: AtomicU64 = AtomicU64::new(0);

async fn run_participant(addr: SocketAddr, cookie: String, room: i64, shared: Arc<Shared>, stop: Arc<AtomicBool>, heard: Option<Heard>, mut first: Option<oneshot::Sender<Instant>>) -> Result<(), String> {
    let index = NEXT_INDEX.fetch_add(1, Relaxed) as u32;
    let socket = UdpSocket::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let local = socket.local_addr().map_err(|e| e.to_string())?;
    let mut rtc = Rtc::builder().build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp").map_err(|e| e.to_string())?);
    let mut change = rtc.sdp_api();
    let mic = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    change.add_channel("signal".into());
    let (offer, pending) = change.apply().ok_or("no offer")?;
    let answer = post_offer(addr, &cookie, room, &offer).await?;
    rtc.sdp_api().accept_answer(pending, answer).map_err(|e| e.to_string())?;

    let mut buf = vec![0u8; 2048];
    let mut channel: Option<ChannelId> = None;
    let mut connected = false;
    let (mut seq, mut rtp_time) = (0u64, 0u64);
    let mut next_frame = tokio::time::Instant::now();
    let mut senders_heard = std::collections::HashSet::new();
    let mut announced_ready = false;
    // Tracks the SFU has added for us to receive (one per other participant).
    let mut tracks = 0;
    loop {
        if stop.load(Relaxed) {
            return Ok(());
        }
        // Everything str0m has to say now; then wait for a datagram, its next timeout or
        // the next frame to send.
        let mut wake = Instant::now() + Duration::from_millis(100);
        loop {
            match rtc.poll_output().map_err(|e| e.to_string())? {
                Output::Timeout(at) => {
                    wake = wake.min(at);
                    break;
                }
                Output::Transmit(t) => {
                    let _ = socket.try_send_to(&t.contents, t.destination);
                }
                Output::Event(event) => match event {
                    Event::Connected => connected = true,
                    Event::MediaAdded(added) if added.direction == Direction::RecvOnly => tracks += 1,
                    Event::ChannelOpen(id, _) => channel = Some(id),
                    Event::ChannelData(data) => {
                        if let Ok(offer) = serde_json::from_slice::<SdpOffer>(&data.data) {
                            let answer = rtc.sdp_api().accept_offer(offer).map_err(|e| e.to_string())?;
                            let json = serde_json::to_vec(&answer).map_err(|e| e.to_string())?;
                            if let Some(mut ch) = channel.and_then(|id| rtc.channel(id)) {
                                ch.write(false, &json).map_err(|e| e.to_string())?;
                            }
                        }
                    }
                    Event::MediaData(data) => {
                        if let (Some(heard), Some((from, sent_seq, sent_at))) = (&heard, parse(&data.data)) {
                            senders_heard.insert(from);
                            let (window_from, window_until) = (shared.from.load(Relaxed), shared.until.load(Relaxed));
                            if window_from != 0 && sent_at >= window_from && sent_at <= window_until {
                                shared.latency.record(Duration::from_nanos(EPOCH.elapsed().as_nanos() as u64 - sent_at));
                                let mut heard = heard.lock().unwrap();
                                let entry = heard.entry(from).or_insert((sent_seq, sent_seq, 0));
                                entry.0 = entry.0.min(sent_seq);
                                entry.1 = entry.1.max(sent_seq);
                                entry.2 += 1;
                            }
                        }
                    }
                    _ => {}
                },
            }
        }
        // A probe is ready once it hears as many others as it receives tracks for.
        if heard.is_some() && !announced_ready && connected && tracks > 0 && senders_heard.len() >= tracks {
            announced_ready = true;
            shared.ready.fetch_add(1, Relaxed);
        }
        let wake = tokio::time::Instant::from_std(wake).min(next_frame);
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let (n, source) = received.map_err(|e| e.to_string())?;
                let data = &buf[..n];
                let rtp = n > 1 && (128..=191).contains(&data[0]) && !(64..=95).contains(&(data[1] & 0x7f));
                if rtp {
                    shared.forwarded.fetch_add(1, Relaxed);
                    if let Some(tx) = first.take() {
                        let _ = tx.send(Instant::now());
                    }
                    // Only probes decrypt what they receive.
                    if heard.is_none() {
                        continue;
                    }
                }
                let Ok(contents) = data.try_into() else { continue };
                let input = Input::Receive(Instant::now(), Receive { proto: Protocol::Udp, source, destination: local, contents });
                rtc.handle_input(input).map_err(|e| e.to_string())?;
            }
            _ = tokio::time::sleep_until(wake) => {
                let now = Instant::now();
                if connected && tokio::time::Instant::now() >= next_frame {
                    next_frame += FRAME;
                    send_frame(&mut rtc, mic, index, seq, rtp_time)?;
                    seq += 1;
                    rtp_time += 960;
                }
                rtc.handle_input(Input::Timeout(now)).map_err(|e| e.to_string())?;
            }
        }
    }
}

/// One 20 ms "Opus" frame: 80 bytes that say who sent it, which one and when.
fn send_frame(rtc: &mut Rtc, mic: Mid, index: u32, seq: u64, rtp_time: u64) -> Result<(), String> {
    let Some(writer) = rtc.writer(mic) else { return Ok(()) };
    let Some(pt) = writer.payload_params().find(|p| p.spec().codec == Codec::Opus).map(|p| p.pt()) else { return Ok(()) };
    let mut payload = vec![0u8; 80];
    payload[..4].copy_from_slice(MAGIC);
    payload[4..8].copy_from_slice(&index.to_le_bytes());
    payload[8..16].copy_from_slice(&seq.to_le_bytes());
    payload[16..24].copy_from_slice(&(EPOCH.elapsed().as_nanos() as u64).to_le_bytes());
    writer.write(pt, Instant::now(), MediaTime::new(rtp_time, Frequency::FORTY_EIGHT_KHZ), payload).map_err(|e| e.to_string())
}

fn parse(data: &[u8]) -> Option<(u32, u64, u64)> {
    if data.len() < 24 || &data[..4] != MAGIC {
        return None;
    }
    Some((u32::from_le_bytes(data[4..8].try_into().ok()?), u64::from_le_bytes(data[8..16].try_into().ok()?), u64::from_le_bytes(data[16..24].try_into().ok()?)))
}

/// The offer as `voice.js` posts it; the SFU's answer.
async fn post_offer(addr: SocketAddr, cookie: &str, room: i64, offer: &SdpOffer) -> Result<SdpAnswer, String> {
    let http = http_client();
    let body = serde_json::to_vec(offer).map_err(|e| e.to_string())?;
    let req = Request::builder()
        .method("POST")
        .uri(format!("http://{addr}/v/{room}/rtc"))
        .header(header::COOKIE, cookie)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(Duration::from_secs(10), http.request(req)).await.map_err(|_| "join timed out")?.map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    if status != StatusCode::OK {
        return Err(format!("join: HTTP {status} {}", String::from_utf8_lossy(&body)));
    }
    let joined: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    serde_json::from_value(joined["answer"].clone()).map_err(|e| e.to_string())
}
