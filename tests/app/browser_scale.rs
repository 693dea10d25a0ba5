//! Acceptance 3 in Chromium: two server processes on one Postgres and a private
//! Redis, behind one loopback "load balancer" (`support::balancer`) that spreads the
//! browsers' connections over both. Alice and Bob, each in their own headless
//! Chromium with JavaScript, take turns writing in their DM. Mid-burst instance A is
//! killed -9 (right after a Send click, so that request may die with it) and started
//! again, and Redis is killed and restarted empty. Like people, they press Send again
//! when a send visibly failed (the compose box still holds the text, nothing in flight).
//!
//! Both pages must end with every message once, in order, without anyone landing on
//! the login page, during the burst or on a reload after it.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use serde_json::json;

use crate::browser::{Browser, Driver, binary, skip};
use crate::browser_live::{IDLE, MESSAGE_WITH, assert_once_in_order, messages, register};
use crate::support::balancer::Balancer;
use crate::support::cluster::{PrivateRedis, Server, temp_dir};
use crate::support::{Backend, TestApp};

/// Messages in the burst, alternating Alice and Bob.
const MESSAGES: usize = 24;
/// After this send is clicked, A is killed -9 …
const KILL_A: usize = 6;
/// … and after this one it is started again.
const RESTART_A: usize = 11;
/// After this one Redis is killed, and restarted empty 300 ms later.
const RESTART_REDIS: usize = 16;
/// A send that shows nothing for this long, with nothing in flight, is pressed again.
const RESEND_AFTER: Duration = Duration::from_secs(3);
/// Longest wait for one message, or for a page to catch up.
const DEADLINE: Duration = Duration::from_secs(30);
const FLOW_LIMIT: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_people_keep_chatting_in_chromium_through_an_instance_kill_and_a_redis_restart() {
    let chromium = binary("REALE_TEST_CHROMIUM", "/usr/bin/chromium");
    let chromedriver = binary("REALE_TEST_CHROMEDRIVER", "/usr/bin/chromedriver");
    for path in [&chromium, &chromedriver] {
        if !path.is_file() {
            return skip(&format!("{} not found", path.display()));
        }
    }
    let Some(mut redis) = PrivateRedis::start().await else { return };
    // The database (created, migrated, dropped at the end) comes from a TestApp.
    let Some(db) = TestApp::spawn(Backend::Postgres).await else { return };
    let database_url = db.state.config.database_url();
    let dir = temp_dir("reale_browser_scale");
    std::fs::create_dir_all(&dir).expect("dir");
    let mut a = Server::new("a", &database_url, &redis.url(), &dir);
    let mut b = Server::new("b", &database_url, &redis.url(), &dir);
    a.start().await;
    b.start().await;
    let balancer = Balancer::start(vec![a.addr, b.addr]).await;

    let mut driver = match Driver::start(&chromedriver).await {
        Ok(driver) => driver,
        Err(why) => return skip(&why),
    };
    let alice = match driver.browser("alice", &chromium, true).await {
        Ok(browser) => browser,
        Err(why) => return skip(&why),
    };
    let bob = match driver.browser("bob", &chromium, true).await {
        Ok(browser) => browser,
        Err(why) => {
            alice.close().await;
            return skip(&why);
        }
    };

    let flow = tokio::time::timeout(FLOW_LIMIT, chat(&balancer, &mut a, &mut redis, &alice, &bob));
    let outcome = AssertUnwindSafe(flow).catch_unwind().await;
    alice.close().await;
    bob.close().await;
    drop(driver);
    let logs = format!("--- a ---\n{}\n--- b ---\n{}", a.log_tail(), b.log_tail());
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(_)) => panic!("the flow did not finish within {FLOW_LIMIT:?}\n{logs}"),
        Err(panic) => {
            eprintln!("{logs}");
            std::panic::resume_unwind(panic)
        }
    }
}

async fn chat(balancer: &Balancer, a: &mut Server, redis: &mut PrivateRedis, alice: &Browser, bob: &Browser) {
    let base = balancer.origin();
    tokio::join!(register(alice, &base, "alice"), register(bob, &base, "bob"));
    let dm = alice.message_through_people("bob").await;
    bob.goto(&format!("{base}/c/{dm}")).await;
    bob.wait_for_path(&format!("/c/{dm}"), "opening the DM").await;

    let mut expected = Vec::new();
    let mut resent = 0;
    let mut cut = 0;
    let started = Instant::now();
    for n in 0..MESSAGES {
        let (sender, name) = if n % 2 == 0 { (alice, "alice") } else { (bob, "bob") };
        let text = format!("{name} says {n:02}");
        sender.fill("Message", &text).await;
        sender.button("Send").await.click().await.expect("click Send");
        match n {
            KILL_A => {
                cut = balancer.open[0].load(Ordering::Relaxed);
                a.kill();
            }
            RESTART_A => a.start().await,
            RESTART_REDIS => {
                redis.kill();
                tokio::time::sleep(Duration::from_millis(300)).await;
                redis.restart().await;
            }
            _ => {}
        }
        resent += confirm_sent(sender, dm, &text).await;
        expected.push(text);
    }
    let burst = started.elapsed();

    for b in [alice, bob] {
        caught_up(b, dm, &expected).await;
        assert_once_in_order(b, &messages(b, dm).await, &expected);
        // A reload asks the server afresh: still signed in, everything still there.
        b.goto(&format!("{base}/c/{dm}")).await;
        b.wait_for_path(&format!("/c/{dm}"), "reloading the DM after the burst").await;
        assert_once_in_order(b, &messages(b, dm).await, &expected);
    }
    let counts: Vec<usize> = balancer.forwarded.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    assert!(counts.iter().all(|&c| c > 0), "both instances served the browsers: {counts:?}");
    assert!(cut > 0, "the kill of A cut no browser connection, so it tested nothing");
    eprintln!(
        "browser scale: {MESSAGES} messages in {burst:?}; A killed after send {KILL_A}, back after {RESTART_A}, Redis restarted after {RESTART_REDIS}; {resent} send(s) pressed again; the kill cut {cut} open connection(s); connections to A/B {counts:?}"
    );
}

/// Waits until `text` shows on the sender's page and the compose box is empty again;
/// presses Send again (as a person would) when the send failed. Returns how many times
/// it was pressed again. Landing on the login page fails the test.
async fn confirm_sent(b: &Browser, dm: i64, text: &str) -> usize {
    let deadline = Instant::now() + DEADLINE;
    let mut pressed = Instant::now();
    let mut again = 0;
    loop {
        signed_in(b, dm, &format!("sending {text:?}")).await;
        let shown = b.client.execute(MESSAGE_WITH, vec![json!(dm), json!(text)]).await.expect("look for the message");
        let compose = b
            .client
            .execute("return document.getElementById('compose-body')?.value ?? null", vec![])
            .await
            .expect("read the compose box");
        if !shown.is_null() && compose == json!("") {
            return again;
        }
        assert!(Instant::now() < deadline, "browser {}: {text:?} not sent after {DEADLINE:?}", b.name);
        let idle = b.client.execute(IDLE, vec![]).await.expect("idle") == json!(true);
        if shown.is_null() && compose == json!(text) && idle && pressed.elapsed() > RESEND_AFTER {
            b.button("Send").await.click().await.expect("click Send again");
            pressed = Instant::now();
            again += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The browser is still on the conversation (not sent to the login page).
async fn signed_in(b: &Browser, dm: i64, during: &str) {
    let url = b.client.current_url().await.expect("current url");
    assert_eq!(url.path(), format!("/c/{dm}"), "browser {} left the conversation (signed out?) while {during}", b.name);
}

/// Waits until the page shows every text message in `expected`.
async fn caught_up(b: &Browser, dm: i64, expected: &[String]) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        signed_in(b, dm, "waiting for the burst").await;
        let texts: Vec<String> = messages(b, dm).await.into_iter().filter(|m| !m.system).map(|m| m.text).collect();
        if expected.iter().all(|t| texts.contains(t)) || Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
