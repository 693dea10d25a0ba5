//! Moderation in Chromium, with JavaScript on and off: the owner finds a member through
//! the server's member list, times him out and bans him with the page's own forms, then
//! reads the bans list and the audit log. With JavaScript on, axe-core checks each of
//! those pages (light and dark) and the banned member's open channel page drops the
//! channel live.

use crate::browser::{Browser, Findings, with_two_browsers};
use crate::browser_chat::register;
use crate::support::FLOW_ARGS;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderating_in_chromium_with_javascript() {
    with_two_browsers("moderation", true, FLOW_ARGS, ["alice", "bob"], async |base: &str, alice: &Browser, bob: &Browser| flow(base, alice, bob, true).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moderating_in_chromium_without_javascript() {
    with_two_browsers("moderation", false, FLOW_ARGS, ["alice", "bob"], async |base: &str, alice: &Browser, bob: &Browser| flow(base, alice, bob, false).await).await;
}

/// The number after `prefix` in the browser's current path.
async fn id_in_path(b: &Browser, prefix: &str) -> i64 {
    let url = b.client.current_url().await.expect("url");
    url.path().strip_prefix(prefix).and_then(|rest| rest.split('/').next()).and_then(|id| id.parse().ok()).unwrap_or_else(|| panic!("{prefix}N in {url}"))
}

/// axe-core runs in the page, so only where the page runs scripts.
async fn axe(b: &Browser, page: &str, javascript: bool, findings: &mut Findings) {
    if javascript {
        b.run_axe(page, findings).await;
    }
}

/// The page's text, or why it could not be read (the page may be navigating).
async fn body_text(b: &Browser) -> Result<String, String> {
    let body = b.client.find(fantoccini::Locator::Css("body")).await.map_err(|e| e.to_string())?;
    body.text().await.map_err(|e| e.to_string())
}

async fn flow(base: &str, alice: &Browser, bob: &Browser, javascript: bool) {
    let mut findings = Findings::default();
    register(alice, base, "alice").await;
    register(bob, base, "bob").await;

    alice.goto(&format!("{base}/servers/new")).await;
    alice.fill("Server name", "Harbour").await;
    alice.button("Create server").await.click().await.expect("click Create server");
    alice.the_one("//h1[@id='server-title']", "the new server's home").await;
    let server = id_in_path(alice, "/s/").await;
    alice.goto(&format!("{base}/s/{server}/invites")).await;
    alice.button("Create invite link").await.click().await.expect("click Create invite link");
    let code = alice.the_one("//a[@class='invite-link']", "the invite link").await.text().await.expect("text");
    bob.goto(&format!("{base}{code}")).await;
    bob.button("Accept invite").await.click().await.expect("click Accept invite");
    bob.wait_for_path(&format!("/s/{server}"), "accepting the invite").await;
    let link = bob.the_one("//a[@class='channel' and contains(., 'general')]", "#general").await;
    let href = link.attr("href").await.expect("href").expect("a link");
    let general: i64 = href.trim_start_matches("/c/").parse().expect("channel id");
    link.click().await.expect("open #general");
    bob.wait_for_path(&format!("/c/{general}"), "opening #general").await;

    // From the member list to the member's page.
    alice.goto(&format!("{base}/s/{server}")).await;
    axe(alice, "server home with moderation links", javascript, &mut findings).await;
    let link = alice.the_one("//a[@aria-label='Moderate bob']", "the Moderate bob link").await;
    let moderate = link.attr("href").await.expect("href").expect("a link");
    assert!(moderate.starts_with(&format!("/s/{server}/members/")) && moderate.ends_with("/moderate"), "{moderate}");
    link.click().await.expect("click Moderate bob");
    alice.wait_for_path(&moderate, "following Moderate bob").await;
    axe(alice, "member page", javascript, &mut findings).await;

    alice.fill("Timeout reason (optional)", "cool down").await;
    alice.button("Time out bob").await.click().await.expect("click Time out bob");
    alice.eventually("the timeout shows", || async {
        let text = body_text(alice).await?;
        if text.contains("Timed out until") { Ok(()) } else { Err(text) }
    })
    .await;
    axe(alice, "member page, timed out", javascript, &mut findings).await;
    bob.goto(&format!("{base}/c/{general}")).await;
    bob.the_one("//*[contains(@class,'compose-locked') and contains(., 'You are timed out until')]", "the locked composer").await;
    alice.button("Remove timeout").await.click().await.expect("click Remove timeout");
    alice.eventually("the timeout is lifted", || async {
        let text = body_text(alice).await?;
        if text.contains("Timed out until") || !text.contains("Time out bob") { Err(text) } else { Ok(()) }
    })
    .await;
    bob.goto(&format!("{base}/c/{general}")).await;
    bob.the_one("//textarea[@id='compose-body']", "the composer back").await;

    alice.fill("Ban reason (optional)", "raid account").await;
    alice.button("Ban bob").await.click().await.expect("click Ban bob");
    alice.wait_for_path(&format!("/s/{server}/bans"), "banning bob").await;
    alice.the_one("//button[@aria-label='Unban bob']", "bob in the bans list").await;
    axe(alice, "bans page", javascript, &mut findings).await;
    if javascript {
        // His open channel page hears the ban and drops the channel.
        bob.the_one("//*[contains(., 'You are no longer a member of this conversation.') and @class='flash']", "the removal notice").await;
    }
    bob.goto(&format!("{base}/i/{}", code.trim_start_matches("/i/"))).await;
    bob.the_one("//*[@role='alert' and contains(., 'You are banned from this server.')]", "the refusal").await;

    alice.goto(&format!("{base}/s/{server}/audit")).await;
    alice.the_one("//h1[@id='audit-title']", "the audit log").await;
    let log = alice.text_of("body").await;
    for text in ["Banned a member", "raid account", "Timed out a member", "cool down"] {
        assert!(log.contains(text), "{text} in the audit log: {log}");
    }
    axe(alice, "audit log", javascript, &mut findings).await;
    alice.fill("Actor's username", "nobody").await;
    alice.button("Filter").await.click().await.expect("click Filter");
    alice.the_one("//*[@id='audit-error' and contains(., 'Nobody is called @nobody.')]", "the filter's error").await;
    axe(alice, "audit log with an error", javascript, &mut findings).await;
    findings.assert_none();
}
