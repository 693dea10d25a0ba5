//! Voice in real browsers (issue 13, acceptance 1): three Chromiums with a fake
//! microphone join a server's voice channel through the SFU inside the binary, and each
//! hears the other two — read off `RTCPeerConnection.getStats()`: inbound audio
//! packets and audio energy rising. A fourth person with JavaScript off sees who is in
//! the channel list; a mute stops that person's audio reaching the others; the list
//! shows who speaks; a browser killed mid-call leaves the list within 20 s while the
//! others keep their audio (acceptance 4); leaving updates everyone's list within a second.
//!
//! The people and the server are set up over HTTP (other flows test those screens);
//! each browser then logs in.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fantoccini::Locator;

use std::path::Path;

use crate::browser::{Browser, Driver, Findings, chromium_and_driver, skip};
use crate::servers::{create_server, invite};
use crate::support::{Backend, FLOW_ARGS, PASSWORD, TestApp};

/// Every `RTCPeerConnection` a page makes, kept where the test can read its stats.
pub(crate) const KEEP_PEERS: &str = "(() => { const Native = window.RTCPeerConnection; if (!Native) return; window.__peers = []; \
    window.RTCPeerConnection = function (...args) { const pc = new Native(...args); window.__peers.push(pc); return pc; }; \
    window.RTCPeerConnection.prototype = Native.prototype; })();";

/// Per inbound audio stream: [ssrc, packets received, total audio energy].
const INBOUND_AUDIO: &str = "const done = arguments[0]; const pc = (window.__peers || []).at(-1); \
    if (!pc) { done([]); return; } \
    pc.getStats().then((stats) => { const out = []; stats.forEach((s) => { \
      if (s.type === 'inbound-rtp' && s.kind === 'audio') out.push([s.ssrc, s.packetsReceived || 0, s.totalAudioEnergy || 0]); }); \
      done(out); });";

pub(crate) const MEDIA: &[&str] = &[
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_people_hear_each_other_in_a_voice_channel() {
    let Some((chromium, mut driver)) = chromium_and_driver().await else { return };
    let mut args = FLOW_ARGS.to_vec();
    args.extend(["--rtc-port", "0", "--rtc-public-ip", "127.0.0.1"]);
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, &args).await else { return };
    let base = format!("http://{}", app.serve().await);

    // Alice's server; Bob, Carol and Dave join it by invite.
    let mut alice = app.client();
    alice.register("alice").await;
    let server = create_server(&mut alice, "Voice club").await;
    let code = invite(&mut alice, server, "10080", "0").await;
    let mut people = vec![alice];
    for name in ["bob", "carol", "dave"] {
        let mut person = app.client().fresh();
        person.register(name).await;
        person.post(&format!("/i/{code}"), &[]).await.assert_redirect(&format!("/s/{server}"));
        people.push(person);
    }
    let page = people[0].get(&format!("/s/{server}")).await.body;
    let room = crate::voice::voice_channel(&page, "General");

    let Some(browsers) = media_browsers(&mut driver, &chromium, &base, &["alice", "bob", "carol"], KEEP_PEERS).await else { return };
    let dave = match driver.browser("dave", &chromium, false).await {
        Ok(b) => b,
        Err(why) => {
            close_all(browsers).await;
            return skip(&why);
        }
    };
    signed_in(&dave, &base, "dave").await;

    let outcome = bounded(Duration::from_secs(120), flow(&base, server, room, &browsers, &dave)).await;
    close_all(browsers).await;
    dave.close().await;
    drop(driver);
    outcome.check("the voice flow");
}

async fn flow(base: &str, server: i64, room: i64, browsers: &[Browser], dave: &Browser) {
    let [alice, bob, carol] = browsers else { unreachable!() };

    // Dave, without JavaScript, is told what voice needs and sees nobody in yet.
    dave.goto(&format!("{base}/v/{room}")).await;
    let text = body_text(dave).await;
    assert!(text.contains("Voice needs JavaScript"), "the page says voice needs JavaScript: {text}");
    let join = dave.client.find(Locator::Id("voice-join")).await.expect("the (hidden) Join button");
    assert!(!join.is_displayed().await.expect("displayed?"), "no Join button without JavaScript");

    for b in browsers {
        join_voice(b, base, room).await;
    }

    // The voice page passes the accessibility checks (axe) with the controls showing,
    // and breaks no CSP rule.
    let mut findings = Findings::default();
    alice.check_page("voice channel", &mut findings).await;
    findings.assert_none();

    // Each hears the other two: two inbound audio streams, both flowing, with sound.
    for b in browsers {
        let first = b.eventually("two inbound audio streams", || inbound(b, 2)).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let later = inbound(b, 2).await.unwrap_or_else(|why| panic!("browser {}: {why}", b.name));
        for (ssrc, before) in &first {
            let after = later.get(ssrc).unwrap_or_else(|| panic!("browser {}: stream {ssrc} went away", b.name));
            assert!(after.0 > before.0, "browser {}: packets keep arriving ({first:?} → {later:?})", b.name);
            assert!(after.1 > before.1, "browser {}: the audio carries sound ({first:?} → {later:?})", b.name);
        }
    }

    // Dave (no JavaScript) sees all three under the channel when he opens the server.
    dave.goto(&format!("{base}/s/{server}")).await;
    let list = roster(dave).await;
    for name in ["alice", "bob", "carol"] {
        assert!(list.contains(name), "Dave sees {name} in General: {list}");
    }

    // Alice mutes: her audio stops reaching Bob (one of his streams stalls, Carol's flows),
    // and everyone's list says she is muted.
    alice.button("Mute").await.click().await.expect("click Mute");
    bob.eventually("Alice shown muted", || async {
        let list = roster(bob).await;
        if list.contains("alice, muted") { Ok(()) } else { Err(list) }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(rising(bob, Duration::from_millis(2000)).await, 1, "only Carol's audio reaches Bob while Alice is muted");

    // Carol's microphone (Chromium's fake one beeps) shows her speaking in Bob's list;
    // muted Alice never does.
    bob.eventually("Carol shown speaking", || async {
        let list = roster(bob).await;
        assert!(!list.contains("alice, speaking"), "a muted person is never shown speaking: {list}");
        if list.contains("carol, speaking") { Ok(()) } else { Err(list) }
    })
    .await;

    // Carol's browser dies: she leaves everyone's list within 20 s (the connection is
    // given 15 s to come back), and Alice still hears Bob.
    carol.kill();
    leaves_roster(alice, "carol", Duration::from_secs(20), "Carol still listed 20 s after her browser died").await;
    assert_eq!(rising(alice, Duration::from_millis(1500)).await, 1, "Bob's audio still reaches Alice");

    // Bob leaves: Alice's list (live) drops him within a second.
    bob.button("Leave voice").await.click().await.expect("click Leave voice");
    leaves_roster(alice, "bob", Duration::from_secs(1), "Bob still listed a second after leaving").await;
    dave.goto(&format!("{base}/s/{server}")).await;
    let list = roster(dave).await;
    assert!(list.contains("alice") && !list.contains("bob") && !list.contains("carol"), "Dave's list after the others left: {list}");
}

/// Opens voice room `room` on `base`, presses *Join voice* and waits until the page says
/// it is connected.
pub(crate) async fn join_voice(b: &Browser, base: &str, room: i64) {
    b.goto(&format!("{base}/v/{room}")).await;
    b.button("Join voice").await.click().await.expect("click Join voice");
    b.eventually("connected to voice", || async {
        let status = b.text_of("#voice-status").await;
        if status.contains("Connected to voice") { Ok(()) } else { Err(status) }
    })
    .await;
}

/// Logs the browser in as `username`, as a person would.
pub(crate) async fn signed_in(b: &Browser, base: &str, username: &str) {
    b.goto(&format!("{base}/login")).await;
    b.fill("Username or email", username).await;
    b.fill("Password", PASSWORD).await;
    b.button("Log in").await.click().await.expect("click Log in");
    b.wait_for_path("/", "logging in").await;
}

pub(crate) async fn body_text(b: &Browser) -> String {
    b.client.find(Locator::Css("main")).await.expect("main").text().await.expect("text")
}

/// The voice channel's roster in the channel list as a screen reader reads it: one
/// entry per person, separated by `|`.
/// Waits until `name` is gone from `b`'s roster; fails with `why` after `within`.
pub(crate) async fn leaves_roster(b: &Browser, name: &str, within: Duration, why: &str) {
    let since = Instant::now();
    loop {
        let list = roster(b).await;
        if !list.contains(name) {
            return;
        }
        assert!(since.elapsed() < within, "{why}: {list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn roster(b: &Browser) -> String {
    if !b.javascript {
        let mut names = Vec::new();
        for item in b.client.find_all(Locator::Css("nav .voice-roster li")).await.unwrap_or_default() {
            names.push(item.text().await.unwrap_or_default());
        }
        return names.join("|");
    }
    let script = "const list = document.querySelector('nav .voice-roster'); \
        return list ? [...list.querySelectorAll('li')].map((li) => li.textContent.trim()).join('|') : '';";
    b.client.execute(script, vec![]).await.ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// The inbound audio streams that have received anything, by SSRC: (packets, energy).
async fn streams(b: &Browser) -> BTreeMap<u64, (f64, f64)> {
    let value = b.client.execute_async(INBOUND_AUDIO, vec![]).await.unwrap_or_else(|e| panic!("browser {}: getStats: {e}", b.name));
    value
        .as_array()
        .map(|a| a.iter().filter_map(|s| Some((s.get(0)?.as_u64()?, (s.get(1)?.as_f64()?, s.get(2)?.as_f64()?)))).filter(|(_, s)| s.0 > 0.0).collect())
        .unwrap_or_default()
}

/// The inbound audio streams, once there are `want` of them.
pub(crate) async fn inbound(b: &Browser, want: usize) -> Result<BTreeMap<u64, (f64, f64)>, String> {
    let streams = streams(b).await;
    if streams.len() == want { Ok(streams) } else { Err(format!("{} streams with packets: {streams:?}", streams.len())) }
}

/// How many of `b`'s inbound audio streams receive packets over the next `wait`.
pub(crate) async fn rising(b: &Browser, wait: Duration) -> usize {
    let first = streams(b).await;
    tokio::time::sleep(wait).await;
    let later = streams(b).await;
    later.iter().filter(|(ssrc, now)| first.get(ssrc).is_none_or(|then| now.0 > then.0)).count()
}

/// A fake-media Chromium per name, each logged in at `base` with `script` run on every
/// page; None (the test skipped, as `skip` says) when one cannot start.
pub(crate) async fn media_browsers(driver: &mut Driver, chromium: &Path, base: &str, names: &[&'static str], script: &str) -> Option<Vec<Browser>> {
    let mut browsers = Vec::new();
    for name in names {
        match driver.browser_with(name, chromium, true, MEDIA).await {
            Ok(b) => {
                signed_in(&b, base, name).await;
                b.on_every_page(script).await;
                browsers.push(b);
            }
            Err(why) => {
                close_all(browsers).await;
                skip(&why);
                return None;
            }
        }
    }
    Some(browsers)
}

pub(crate) async fn close_all(browsers: Vec<Browser>) {
    for b in browsers {
        b.close().await;
    }
}

/// How a browser flow run for at most some time ended: kept until the browsers are
/// closed, then `check`ed, so a failure never leaves a Chromium behind.
pub(crate) struct Outcome {
    limit: Duration,
    ended: Result<Result<(), tokio::time::error::Elapsed>, Box<dyn std::any::Any + Send>>,
}

pub(crate) async fn bounded(limit: Duration, flow: impl std::future::Future<Output = ()>) -> Outcome {
    let flow = tokio::time::timeout(limit, flow);
    Outcome { limit, ended: futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(flow)).await }
}

impl Outcome {
    /// Fails the test if the flow panicked or ran out of time.
    pub(crate) fn check(self, what: &str) {
        match self.ended {
            Ok(Ok(())) => {}
            Ok(Err(_)) => panic!("{what} did not finish within {:?}", self.limit),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}
