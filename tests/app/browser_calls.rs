//! Calls in real browsers (issue 13, acceptance 2): Alice starts a video call from her
//! DM with Bob; Bob, on another page, sees it ring live and presses Accept; each
//! receives the other's audio and video (getStats: inbound packets and audio energy
//! rising, frames decoded rising). Alice hangs up: both conversations show the call's
//! length.
//!
//! The people and the DM are set up over HTTP; each browser then logs in.

use std::time::Duration;

use fantoccini::Locator;

use crate::browser::{Browser, Findings, chromium_and_driver};
use crate::browser_video::decoding;
use crate::browser_voice::{KEEP_PEERS, body_text, bounded, close_all, inbound, media_browsers};
use crate::conversations::open_dm;
use crate::support::{Backend, FLOW_ARGS, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alice_video_calls_bob_who_accepts_from_the_banner_and_they_see_and_hear_each_other() {
    let Some((chromium, mut driver)) = chromium_and_driver().await else { return };
    let mut args = FLOW_ARGS.to_vec();
    args.extend(["--rtc-port", "0", "--rtc-public-ip", "127.0.0.1"]);
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, &args).await else { return };
    let base = format!("http://{}", app.serve().await);
    let (mut alice, mut bob) = (app.client(), app.client().fresh());
    alice.register("alice").await;
    bob.register("bob").await;
    let dm = open_dm(&mut alice, "bob").await;

    let Some(browsers) = media_browsers(&mut driver, &chromium, &base, &["alice", "bob"], KEEP_PEERS).await else { return };
    let outcome = bounded(Duration::from_secs(90), flow(&base, dm, &browsers)).await;
    close_all(browsers).await;
    drop(driver);
    outcome.check("the call flow");
}

async fn flow(base: &str, dm: i64, browsers: &[Browser]) {
    let [alice, bob] = browsers else { unreachable!() };
    // Bob is somewhere else: his home page.
    bob.goto(&format!("{base}/")).await;
    alice.goto(&format!("{base}/c/{dm}")).await;
    alice.button("Start video call").await.click().await.expect("click Start video call");
    connected(alice).await;

    // The call rings on Bob's page, live.
    bob.eventually("the incoming call banner", || async {
        let banners = bob.client.find_all(Locator::Css(".call-banner")).await.map_err(|e| e.to_string())?;
        let mut texts = Vec::new();
        for banner in banners {
            texts.push(banner.text().await.unwrap_or_default());
        }
        if texts.iter().any(|t| t.contains("alice is calling (video call)")) { Ok(()) } else { Err(format!("banners: {texts:?}")) }
    })
    .await;
    bob.button("Accept").await.click().await.expect("click Accept");
    connected(bob).await;

    let mut findings = Findings::default();
    bob.check_page("call", &mut findings).await;
    findings.assert_none();

    // Each sees the other: a video call turns both cameras on, and frames decode.
    for b in browsers {
        b.eventually("the other's camera decoding", || async {
            match decoding(b, Duration::from_millis(500)).await {
                0 => Err("no inbound video decodes new frames".to_string()),
                _ => Ok(()),
            }
        })
        .await;
    }

    // Each hears the other: one inbound audio stream, flowing, with sound.
    for b in browsers {
        let first = b.eventually("an inbound audio stream", || inbound(b, 1)).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let later = inbound(b, 1).await.unwrap_or_else(|why| panic!("browser {}: {why}", b.name));
        for (ssrc, before) in &first {
            let after = later.get(ssrc).unwrap_or_else(|| panic!("browser {}: stream {ssrc} went away", b.name));
            assert!(after.0 > before.0, "browser {}: packets keep arriving ({first:?} → {later:?})", b.name);
            assert!(after.1 > before.1, "browser {}: the audio carries sound ({first:?} → {later:?})", b.name);
        }
    }

    // Alice hangs up: the call's length shows in both conversations, and Bob's page
    // says the call ended.
    alice.button("Hang up").await.click().await.expect("click Hang up");
    bob.eventually("Bob's page says the call ended", || async {
        let status = bob.text_of("#voice-status").await;
        if status.contains("The call ended") { Ok(()) } else { Err(status) }
    })
    .await;
    for b in browsers {
        b.goto(&format!("{base}/c/{dm}")).await;
        b.eventually("the call's line", || async {
            let text = body_text(b).await;
            if text.contains("Video call · 0:0") { Ok(()) } else { Err(text) }
        })
        .await;
    }
}

async fn connected(b: &Browser) {
    b.eventually("connected to the call", || async {
        let status = b.text_of("#voice-status").await;
        if status.contains("Connected to voice") { Ok(()) } else { Err(status) }
    })
    .await;
}
