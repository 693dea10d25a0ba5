//! Video in real browsers (issue 13, "Video and screen share"): two Chromiums with a
//! fake camera in a server's voice channel. Alice turns her camera on: Bob's browser
//! decodes her frames (`getStats()`: frames decoded rising) and shows them in a tile
//! named after her; she shares her screen: a second tile, "alice’s screen", decodes too;
//! Bob rejoins and sees both at once (keyframes asked for him); she turns both off: the frames stop and the tiles go; Bob mutes: Alice's tile of him
//! says so.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::browser::{Browser, chromium_and_driver};
use crate::browser_voice::{KEEP_PEERS, bounded, close_all, media_browsers};
use crate::support::{Backend, FLOW_ARGS, TestApp};

/// Per inbound video stream: [ssrc, frames decoded, frame width].
const INBOUND_VIDEO: &str = "const done = arguments[0]; const pc = (window.__peers || []).at(-1); \
    if (!pc) { done([]); return; } \
    pc.getStats().then((stats) => { const out = []; stats.forEach((s) => { \
      if (s.type === 'inbound-rtp' && s.kind === 'video') out.push([s.ssrc, s.framesDecoded || 0, s.frameWidth || 0]); }); \
      done(out); });";

/// The video tiles as a person sees them: caption, and whether a picture is playing in it.
const TILES: &str = "return [...document.querySelectorAll('#voice-tiles figure')].map((f) => { \
    const v = f.querySelector('video'); return f.querySelector('figcaption').textContent + (v && v.videoWidth > 0 ? ' [picture]' : ''); }).join('|');";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_and_screen_reach_the_others_in_tiles() {
    let Some((chromium, mut driver)) = chromium_and_driver().await else { return };
    let mut args = FLOW_ARGS.to_vec();
    args.extend(["--rtc-port", "0", "--rtc-public-ip", "127.0.0.1"]);
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, &args).await else { return };
    let base = format!("http://{}", app.serve().await);

    let room = crate::voice::alice_bob_and_a_voice_channel(&app).await.2.general;

    let Some(browsers) = media_browsers(&mut driver, &chromium, &base, &["alice", "bob"], KEEP_PEERS).await else { return };
    let outcome = bounded(Duration::from_secs(120), flow(&base, room, &browsers)).await;
    close_all(browsers).await;
    drop(driver);
    outcome.check("the video flow");
}

async fn flow(base: &str, room: i64, browsers: &[Browser]) {
    let [alice, bob] = browsers else { unreachable!() };
    for b in browsers {
        crate::browser_voice::join_voice(b, base, room).await;
    }
    // Before anyone turns a camera on, nothing is decoded: tiles show names only.
    assert_eq!(decoding(bob, Duration::from_millis(1500)).await, 0, "no video before a camera is on");
    assert_eq!(tiles(bob).await, "alice|You", "one tile per person, names only");

    // Alice's camera: Bob decodes her frames and sees them in her tile.
    alice.button("Camera").await.click().await.expect("click Camera");
    bob.eventually("Alice's camera in her tile", || async {
        let shown = tiles(bob).await;
        if shown.contains("alice [picture]") { Ok(()) } else { Err(shown) }
    })
    .await;
    assert_eq!(decoding(bob, Duration::from_millis(1500)).await, 1, "Alice's camera frames keep being decoded");
    let list = roster(bob).await;
    assert!(list.split('|').any(|entry| entry.starts_with("alice") && entry.contains("camera on")), "the list says her camera is on: {list}");
    assert!(tiles(alice).await.contains("You [picture]"), "Alice sees herself");

    // Her screen: a second tile. (Chromium's fake capture answers getDisplayMedia.)
    alice.button("Share screen").await.click().await.expect("click Share screen");
    bob.eventually("Alice's screen in its own tile", || async {
        let shown = tiles(bob).await;
        if shown.contains("alice’s screen [picture]") { Ok(()) } else { Err(format!("{shown} / Alice's status: {}", alice.text_of("#voice-status").await)) }
    })
    .await;
    assert_eq!(decoding(bob, Duration::from_millis(1500)).await, 2, "camera and screen both decoded");

    // Bob leaves and comes back while both are on: the SFU asks Alice's browser for
    // keyframes for him, so her picture shows at once, not at her encoder's next keyframe.
    bob.button("Leave voice").await.click().await.expect("click Leave voice");
    bob.button("Join voice").await.click().await.expect("click Join voice again");
    bob.eventually("Alice's camera and screen again after rejoining", || async {
        let shown = tiles(bob).await;
        if shown.contains("alice [picture]") && shown.contains("alice’s screen [picture]") { Ok(()) } else { Err(shown) }
    })
    .await;

    // Both off: the frames stop (given as long as they had to start) and the tiles go.
    alice.button("Camera").await.click().await.expect("click Camera again");
    alice.button("Share screen").await.click().await.expect("click Share screen again");
    bob.eventually("Alice's picture gone", || async {
        let shown = tiles(bob).await;
        if shown == "alice|You" { Ok(()) } else { Err(shown) }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(decoding(bob, Duration::from_millis(1500)).await, 0, "no frames once her camera and screen are off");
    assert!(!roster(bob).await.contains("camera on"), "the list no longer says camera on");

    // Bob mutes: Alice's tile of him says so.
    bob.button("Mute").await.click().await.expect("click Mute");
    alice.eventually("Bob's tile says muted", || async {
        let shown = tiles(alice).await;
        if shown.contains("bob (muted)") { Ok(()) } else { Err(shown) }
    })
    .await;
}

async fn tiles(b: &Browser) -> String {
    b.client.execute(TILES, vec![]).await.ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

async fn roster(b: &Browser) -> String {
    let script = "const list = document.querySelector('main .voice-roster'); \
        return list ? [...list.querySelectorAll('li')].map((li) => li.textContent.trim()).join('|') : '';";
    b.client.execute(script, vec![]).await.ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// Frames decoded so far, by inbound video SSRC.
async fn frames(b: &Browser) -> BTreeMap<u64, f64> {
    let value = b.client.execute_async(INBOUND_VIDEO, vec![]).await.unwrap_or_else(|e| panic!("browser {}: getStats: {e}", b.name));
    value.as_array().map(|a| a.iter().filter_map(|s| Some((s.get(0)?.as_u64()?, s.get(1)?.as_f64()?))).collect()).unwrap_or_default()
}

/// How many of `b`'s inbound video streams decode new frames over the next `wait`.
pub(crate) async fn decoding(b: &Browser, wait: Duration) -> usize {
    let first = frames(b).await;
    tokio::time::sleep(wait).await;
    let later = frames(b).await;
    later.iter().filter(|(ssrc, now)| **now > first.get(*ssrc).copied().unwrap_or(0.0)).count()
}
