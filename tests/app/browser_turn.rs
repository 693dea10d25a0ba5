//! Voice through a TURN server (issue 13, TURN): a real coturn (Debian's `coturn`) with a
//! shared secret, Reale started with `--turn-url` and `--turn-secret`, and two Chromiums
//! allowed only relayed connections (`iceTransportPolicy: "relay"`, as a network that
//! blocks the media port leaves them): both join a voice channel, hear each other, and
//! the connection in use is a relay one — so the credentials the page handed out were
//! accepted by coturn.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::browser::{Browser, chromium_and_driver, skip};
use crate::browser_voice::{bounded, close_all, media_browsers};
use crate::support::{Backend, FLOW_ARGS, TestApp, in_ci};

const SECRET: &str = "turn-test-secret";

/// Every `RTCPeerConnection` a page makes is kept for the test and allowed relayed
/// candidates only.
const RELAY_ONLY: &str = "(() => { const Native = window.RTCPeerConnection; if (!Native) return; window.__peers = []; \
    window.RTCPeerConnection = function (config) { const pc = new Native({ ...(config || {}), iceTransportPolicy: 'relay' }); window.__peers.push(pc); return pc; }; \
    window.RTCPeerConnection.prototype = Native.prototype; })();";

/// [audio packets received, type of the local candidate of the pair in use].
const STATS: &str = "const done = arguments[0]; const pc = (window.__peers || []).at(-1); \
    if (!pc) { done([0, '']); return; } \
    pc.getStats().then((stats) => { let packets = 0; let pair = null; const byId = new Map(); \
      stats.forEach((s) => { byId.set(s.id, s); if (s.type === 'inbound-rtp' && s.kind === 'audio') packets += s.packetsReceived || 0; \
        if (s.type === 'transport' && s.selectedCandidatePairId) pair = s.selectedCandidatePairId; }); \
      const local = pair && byId.get(pair) ? byId.get(byId.get(pair).localCandidateId) : null; \
      done([packets, local ? local.candidateType : '']); });";

struct Coturn {
    child: Child,
    _dir: std::path::PathBuf,
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

/// coturn on a free UDP port of 127.0.0.1, with `SECRET`, relaying to loopback peers.
fn coturn() -> Result<(Coturn, u16), String> {
    let binary = crate::browser::binary("REALE_TEST_TURNSERVER", "/usr/bin/turnserver");
    if !binary.is_file() {
        return Err(format!("{} not found (Debian package coturn)", binary.display()));
    }
    let port = std::net::UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).map_err(|e| e.to_string())?.port();
    let relay: u16 = 40_000 + (rand::random::<u16>() % 200) * 100;
    let dir = std::env::temp_dir().join(format!("reale-coturn-{port}"));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let child = Command::new(binary)
        .args(["-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", "--use-auth-secret", "--realm=reale.test"])
        .args(["--allow-loopback-peers", "--no-cli", "--no-tls", "--no-dtls", "--log-file=stdout"])
        .arg(format!("--listening-port={port}"))
        .arg(format!("--static-auth-secret={SECRET}"))
        .arg(format!("--min-port={relay}"))
        .arg(format!("--max-port={}", relay + 99))
        .arg(format!("--userdb={}", dir.join("turndb").display()))
        .arg(format!("--pidfile={}", dir.join("pid").display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(500));
    Ok((Coturn { child, _dir: dir }, port))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voice_goes_through_turn_when_only_relays_are_allowed() {
    let (_coturn, port) = match coturn() {
        Ok(started) => started,
        Err(why) if in_ci() => panic!("coturn is required under CI=true: {why}"),
        Err(why) => return skip(&why),
    };
    let Some((chromium, mut driver)) = chromium_and_driver().await else { return };
    let turn_url = format!("turn:127.0.0.1:{port}?transport=udp");
    let mut args = FLOW_ARGS.to_vec();
    args.extend(["--rtc-port", "0", "--rtc-public-ip", "127.0.0.1", "--turn-url", &turn_url, "--turn-secret", SECRET]);
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, &args).await else { return };
    let base = format!("http://{}", app.serve().await);

    let room = crate::voice::alice_bob_and_a_voice_channel(&app).await.2.general;

    let Some(browsers) = media_browsers(&mut driver, &chromium, &base, &["alice", "bob"], RELAY_ONLY).await else { return };
    let outcome = bounded(Duration::from_secs(90), flow(&base, room, &browsers)).await;
    close_all(browsers).await;
    drop(driver);
    outcome.check("the relayed voice flow");
}

async fn flow(base: &str, room: i64, browsers: &[Browser]) {
    for b in browsers {
        crate::browser_voice::join_voice(b, base, room).await;
    }
    for b in browsers {
        let (first, kind) = b
            .eventually("the other's audio through the relay", || async {
                let (packets, kind) = stats(b).await;
                if packets > 0.0 { Ok((packets, kind)) } else { Err(format!("no audio yet ({kind})")) }
            })
            .await;
        assert_eq!(kind, "relay", "browser {}: the connection in use is relayed by TURN", b.name);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (later, _) = stats(b).await;
        assert!(later > first, "browser {}: the other's audio arrives through the relay ({first} → {later})", b.name);
    }
}

async fn stats(b: &Browser) -> (f64, String) {
    let value = b.client.execute_async(STATS, vec![]).await.unwrap_or_else(|e| panic!("browser {}: getStats: {e}", b.name));
    let packets = value.get(0).and_then(|v| v.as_f64()).unwrap_or(0.0);
    let kind = value.get(1).and_then(|v| v.as_str()).unwrap_or_default().to_string();
    (packets, kind)
}
