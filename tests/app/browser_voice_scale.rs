//! Acceptance 5 in Chromium: two instances on one Postgres and Redis, Alice's browser
//! on one, Bob's on the other, both with a fake microphone in the same voice channel.
//! Bob's offer reaches B, which sends it to A (where Alice's join put the room); both
//! hear each other (`getStats()`: packets and audio energy rising), each channel list
//! shows both, and Bob leaving on B drops him from Alice's list on A within a second.

use std::time::Duration;

use crate::browser::{Browser, chromium_and_driver, skip};
use crate::browser_voice::{KEEP_PEERS, MEDIA, inbound, rising, roster, signed_in};
use crate::servers::{create_server, invite};
use crate::support::cluster::Pair;
use crate::support::redis_url;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alice_and_bob_hear_each_other_in_chromium_through_two_instances() {
    let Some((chromium, mut driver)) = chromium_and_driver().await else { return };
    let Some(Pair { a, b, mut alice, mut bob, .. }) = Pair::start(&redis_url()).await else { return };
    let bases = [format!("http://{}", a.serve().await), format!("http://{}", b.serve().await)];
    let server = create_server(&mut alice, "Voice club").await;
    let code = invite(&mut alice, server, "10080", "0").await;
    bob.post(&format!("/i/{code}"), &[]).await.assert_redirect(&format!("/s/{server}"));
    let room = crate::voice::voice_channel(&alice.get(&format!("/s/{server}")).await.body, "General");

    let mut browsers = Vec::new();
    for (name, base) in ["alice", "bob"].into_iter().zip(&bases) {
        match driver.browser_with(name, &chromium, true, MEDIA).await {
            Ok(browser) => {
                signed_in(&browser, base, name).await;
                browser.on_every_page(KEEP_PEERS).await;
                browsers.push(browser);
            }
            Err(why) => {
                for browser in browsers {
                    Browser::close(browser).await;
                }
                return skip(&why);
            }
        }
    }
    let flow = tokio::time::timeout(Duration::from_secs(90), flow(&bases, room, &browsers));
    let outcome = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(flow)).await;
    for browser in browsers {
        browser.close().await;
    }
    drop(driver);
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(_)) => panic!("the voice flow did not finish within 90 s"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

async fn flow(bases: &[String; 2], room: i64, browsers: &[Browser]) {
    let [alice, bob] = browsers else { unreachable!() };
    for (browser, base) in browsers.iter().zip(bases) {
        crate::browser_voice::join_voice(browser, base, room).await;
    }

    // Each hears the other: one inbound audio stream, flowing, with sound.
    for browser in browsers {
        let first = browser.eventually("an inbound audio stream", || inbound(browser, 1)).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let later = inbound(browser, 1).await.unwrap_or_else(|why| panic!("browser {}: {why}", browser.name));
        for (ssrc, before) in &first {
            let after = later.get(ssrc).unwrap_or_else(|| panic!("browser {}: stream {ssrc} went away", browser.name));
            assert!(after.0 > before.0 && after.1 > before.1, "browser {}: audio keeps arriving ({first:?} → {later:?})", browser.name);
        }
    }

    // Both lists (one page on A, one on B) show both.
    for browser in browsers {
        browser
            .eventually("both in the list", || async {
                let list = roster(browser).await;
                if list.contains("alice") && list.contains("bob") { Ok(()) } else { Err(list) }
            })
            .await;
    }

    // Bob leaves on B: Alice's list on A drops him within a second, and she hears nobody.
    bob.button("Leave voice").await.click().await.expect("click Leave voice");
    crate::browser_voice::leaves_roster(alice, "bob", Duration::from_secs(1), "Bob still listed a second after leaving").await;
    assert_eq!(rising(alice, Duration::from_millis(1500)).await, 0, "nobody's audio reaches Alice once Bob left");
}
