//! Every page a person reaches, checked by axe-core in headless Chromium in the light
//! and in the dark colour scheme (`Browser::run_axe`): signed out (login, register, both
//! with their error messages), home, people and a profile, a DM and a group full of
//! what a conversation holds (replies, reactions, mentions, pins, an edit, a deletion,
//! code, quotes, the unread divider), a message's actions as they look under the
//! pointer and with the reaction picker open, a permalinked message, the pinned view,
//! the edit page, members, new group, search results, the settings pages and the error
//! pages, with their error and success messages. Any serious or critical violation
//! fails the test, naming rule, impact, scheme and elements. The browsers have a mouse,
//! so the quiet rest state of a message's actions is what axe sees. Uses the WebDriver
//! plumbing of `browser.rs`.

use std::time::Instant;

use fantoccini::Locator;
use fantoccini::actions::{InputSource, MouseActions, PointerAction};
use fantoccini::key::Key;
use serde_json::json;

use crate::browser::{Browser, Findings, with_two_browsers};
use crate::browser_chat::{in_message, last_message_id, register, send, wait_for_new_message};
use crate::support::{FLOW_ARGS, PASSWORD};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_passes_axe_in_light_and_dark() {
    with_two_browsers("accessibility", true, FLOW_ARGS, ["alice", "bob"], run_flow).await;
}

async fn run_flow(base: &str, alice: &Browser, bob: &Browser) {
    let mut findings = Findings::default();
    let mut checked = 0;
    let started = Instant::now();
    let mut check = async |b: &Browser, page: &str, findings: &mut Findings| {
        b.run_axe(page, findings).await;
        checked += 1;
    };

    // Signed out: the login and register pages, empty and with their errors.
    alice.goto(&format!("{base}/login")).await;
    alice.wait_for_path("/login", "opening the login page").await;
    // The quiet rest state of a message's actions exists only for a mouse; make sure
    // the browser has one, or that state would go unchecked.
    let mouse = alice.client.execute("return matchMedia('(hover: hover) and (pointer: fine)').matches", vec![]).await.expect("media");
    assert_eq!(mouse, json!(true), "the browser reports a mouse");
    check(alice, "login", &mut findings).await;
    alice.fill("Username or email", "nobody").await;
    alice.fill("Password", "not the password").await;
    alice.button("Log in").await.click().await.expect("click Log in");
    alice.the_one("//*[contains(@class,'error')]", "the login error").await;
    check(alice, "login with an error", &mut findings).await;

    bob.goto(&format!("{base}/register")).await;
    bob.wait_for_path("/register", "opening the register page").await;
    check(bob, "register", &mut findings).await;
    bob.fill("Username", "b").await;
    bob.fill("Email", "not an email").await;
    bob.fill("Password", "short").await;
    bob.button("Create account").await.click().await.expect("click Create account");
    bob.the_one("(//*[contains(@class,'field-error')])[1]", "a register error").await;
    check(bob, "register with errors", &mut findings).await;

    tokio::join!(register(alice, base, "alice"), register(bob, base, "bob"));
    check(alice, "home, no conversations yet", &mut findings).await;

    // People, a profile, and a DM that holds everything a message can carry.
    alice.goto(&format!("{base}/people?q=bob")).await;
    alice.wait_for_path("/people", "searching people").await;
    alice.button("Message bob").await;
    check(alice, "people with results", &mut findings).await;
    alice.goto(&format!("{base}/u/bob")).await;
    alice.wait_for_path("/u/bob", "opening bob's profile").await;
    check(alice, "profile", &mut findings).await;
    alice.button("Send message").await.click().await.expect("click Send message");
    let dm = alice.wait_for_conversation("clicking Send message").await;
    let hello = send(alice, dm, "Hello **@bob**, see https://example.org and `code`").await;
    send_lines(alice, dm, &["> a quote", "", "```", "fn main() {}", "```"]).await;
    let doomed = send(alice, dm, "this one goes away").await;

    bob.goto(&format!("{base}/c/{dm}")).await;
    bob.wait_for_path(&format!("/c/{dm}"), "opening the DM").await;
    in_message(bob, hello, "//button[normalize-space(.)='Reply']", "Reply").await.click().await.expect("click Reply");
    bob.the_one("//*[@id='replying']", "the Replying to… note").await;
    check(bob, "DM while replying", &mut findings).await;
    send(bob, dm, "Hi @alice, thanks").await;
    in_message(bob, hello, "//a[normalize-space(.)='Add reaction']", "Add reaction").await.click().await.expect("open Add reaction");
    in_message(bob, hello, "//button[@aria-label='React with 👍']", "React with 👍").await.click().await.expect("click 👍");
    in_message(bob, hello, "//button[starts-with(@aria-label,'👍 1: bob')]", "the 👍 reaction").await;
    in_message(bob, hello, "//button[normalize-space(.)='Pin message']", "Pin message").await.click().await.expect("click Pin");
    in_message(bob, hello, "//span[@class='pinned-badge']", "the Pinned badge").await;

    alice.goto(&format!("{base}/c/{dm}/m/{hello}/edit")).await;
    alice.wait_for_path(&format!("/c/{dm}/m/{hello}/edit"), "opening the edit page").await;
    check(alice, "edit message", &mut findings).await;
    open(alice, base, &format!("/c/{dm}"), "the DM").await;
    in_message(alice, hello, "//button[normalize-space(.)='Edit message']", "Edit").await.click().await.expect("click Edit");
    alice.the_one(&format!("//*[@id='message-{hello}'][@role='listitem']/form[contains(@class,'edit-form')]"), "the inline edit form").await;
    check(alice, "DM with a message being edited", &mut findings).await;
    alice.fill("Edit message", "Hello **@bob** (fixed)").await;
    alice.button("Save").await.click().await.expect("click Save");
    in_message(alice, hello, "//span[@class='edited']", "(edited)").await;
    in_message(alice, doomed, "//button[normalize-space(.)='Delete message']", "Delete").await.click().await.expect("click Delete");
    alice.client.accept_alert().await.expect("confirm the deletion");
    in_message(alice, doomed, "//p[contains(@class,'tombstone')]", "Message deleted").await;
    check(alice, "DM with replies, reactions, mentions, a pin, an edit and a deletion", &mut findings).await;

    // What only the pointer or the keyboard reveals: a message's actions under the
    // pointer, then the reaction picker open.
    hover(alice, &format!("message-{hello}")).await;
    check(alice, "DM with the pointer on a message", &mut findings).await;
    in_message(alice, hello, "//a[normalize-space(.)='Add reaction']", "Add reaction").await.click().await.expect("open Add reaction");
    in_message(alice, hello, &format!("//*[@id='react-{hello}']"), "the reaction picker").await;
    check(alice, "DM with the reaction picker open", &mut findings).await;

    alice.goto(&format!("{base}/c/{dm}/m/{hello}")).await;
    alice.wait_for_path(&format!("/c/{dm}"), "following a permalink").await;
    let target = alice.client.execute(&format!("return document.getElementById('message-{hello}').matches(':target')"), vec![]).await.expect(":target");
    assert_eq!(target, json!(true), "the permalinked message is the page's target");
    check(alice, "permalinked message", &mut findings).await;
    for (page, path) in [
        ("pinned messages", format!("/c/{dm}/pins")),
        ("reaction picker page", format!("/c/{dm}/m/{hello}/react")),
        ("search results", "/search?q=hello".to_string()),
        ("search without results", "/search?q=zebra".to_string()),
        ("people without results", "/people?q=zebra".to_string()),
        ("own profile", "/u/alice".to_string()),
        ("new group", "/groups/new".to_string()),
    ] {
        open(alice, base, &path, page).await;
        check(alice, page, &mut findings).await;
    }

    // A group Bob has not read, with a mention of him: his sidebar shows badges and the
    // group opens at the "New messages" divider.
    alice.fill("Group name", "Plans").await;
    alice.fill("Members", "nobody-by-this-name").await;
    alice.button("Create group").await.click().await.expect("click Create group");
    alice.the_one("//*[contains(@class,'flash') and contains(@class,'error')]", "the new-group error").await;
    check(alice, "new group with an error", &mut findings).await;
    alice.fill("Group name", "Plans").await;
    alice.fill("Members", "bob").await;
    alice.button("Create group").await.click().await.expect("click Create group");
    let group = alice.wait_for_conversation("creating the group").await;
    bob.goto(&format!("{base}/c/{group}")).await;
    bob.wait_for_path(&format!("/c/{group}"), "opening the group").await;
    bob.goto(&format!("{base}/")).await;
    bob.wait_for_path("/", "going home").await;
    for text in ["Shall we meet?", "@bob are you in?", "Friday works"] {
        send(alice, group, text).await;
    }
    check(alice, "group", &mut findings).await;
    open(alice, base, &format!("/c/{group}/members"), "members").await;
    check(alice, "members (as the group's owner)", &mut findings).await;
    bob.goto(&format!("{base}/")).await;
    bob.the_one("//span[contains(@class,'badge') and contains(@class,'mention')]", "the mention badge").await;
    check(bob, "home with unread badges", &mut findings).await;
    open(bob, base, &format!("/c/{group}"), "the unread group").await;
    bob.the_one("//*[@id='unread']", "the New messages divider").await;
    check(bob, "group with unread messages and a mention", &mut findings).await;
    open(bob, base, &format!("/c/{group}/members"), "members").await;
    check(bob, "members (as a member)", &mut findings).await;

    // The profile form with an error, then a status that shows on the profile card.
    open(alice, base, "/settings/profile", "profile").await;
    alice.fill("Status emoji", "not an emoji").await;
    alice.fill("Status text", "Reviewing").await;
    alice.button("Save status").await.click().await.expect("click Save status");
    alice.the_one("(//*[contains(@class,'field-error')])[1]", "the status error").await;
    check(alice, "profile with an error", &mut findings).await;
    alice.fill("Status emoji", "☕").await;
    alice.button("Save status").await.click().await.expect("click Save status");
    alice.the_one("//*[contains(@class,'flash') and contains(@class,'ok')]", "the status-saved message").await;
    open(alice, base, "/u/alice", "alice's profile card").await;
    check(alice, "profile card with a status", &mut findings).await;
    // Settings, with an error and then a success message on the password page.
    for (page, path) in [
        ("sessions", "/settings/sessions"),
        ("status", "/settings/status"),
        ("profile", "/settings/profile"),
        ("privacy", "/settings/privacy"),
        ("notifications", "/settings/notifications"),
        ("message requests", "/requests"),
        ("password", "/settings/password"),
    ] {
        open(alice, base, path, page).await;
        check(alice, page, &mut findings).await;
    }
    alice.fill("Current password", "not the password").await;
    alice.fill("New password", &format!("{PASSWORD}-new")).await;
    alice.button("Change password").await.click().await.expect("click Change password");
    alice.the_one("(//*[contains(@class,'field-error') or contains(@class,'flash')])[1]", "the password error").await;
    check(alice, "password with an error", &mut findings).await;
    alice.fill("Current password", PASSWORD).await;
    alice.fill("New password", &format!("{PASSWORD}-new")).await;
    alice.button("Change password").await.click().await.expect("click Change password");
    alice.the_one("//*[contains(@class,'flash') and contains(@class,'ok')]", "the password-changed message").await;
    check(alice, "password changed", &mut findings).await;

    // Error pages.
    for (page, path) in [("not found", "/no-such-page"), ("a conversation that does not exist", "/c/999999")] {
        open(alice, base, path, page).await;
        check(alice, page, &mut findings).await;
    }

    println!("axe checked {checked} page states in light and dark in {:.1} s", started.elapsed().as_secs_f64());
    findings.assert_none();
}

/// Opens `path` and waits until it has loaded.
async fn open(b: &Browser, base: &str, path: &str, page: &str) {
    b.goto(&format!("{base}{path}")).await;
    let path = path.split(['?', '#']).next().unwrap_or(path);
    b.wait_for_path(path, &format!("opening the {page} page")).await;
}

/// Rests the mouse pointer on the element with this id, as a person reading it would.
async fn hover(b: &Browser, id: &str) {
    let element = b.client.find(Locator::Id(id)).await.unwrap_or_else(|e| panic!("browser {}: no #{id}: {e}", b.name));
    let moves = MouseActions::new("mouse".to_string()).then(PointerAction::MoveToElement {
        element,
        duration: None,
        x: 0.0,
        y: 0.0,
    });
    b.client.perform_actions(moves).await.expect("move the pointer");
    let hovered = b.client.execute(&format!("return document.getElementById('{id}').matches(':hover')"), vec![]).await.expect(":hover");
    assert_eq!(hovered, json!(true), "browser {}: the pointer rests on #{id}", b.name);
}

/// Sends a message of several lines (Shift+Enter between them, as a person types them).
async fn send_lines(b: &Browser, conversation: i64, lines: &[&str]) -> i64 {
    let last = last_message_id(b).await.unwrap_or(0);
    let field = b.field("Message").await;
    field.clear().await.expect("clear the compose field");
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            field.send_keys(&format!("{}{}", Key::Shift, Key::Enter)).await.expect("Shift+Enter");
        }
        field.send_keys(line).await.expect("type a line");
    }
    b.button("Send").await.click().await.expect("click Send");
    wait_for_new_message(b, conversation, last).await
}
