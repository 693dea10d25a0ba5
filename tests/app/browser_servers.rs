//! A server in a real browser, as its owner and two friends use it: the owner creates a
//! server, a category, two text channels and a voice channel, and an invite link; a
//! visitor registers through the link, accepts it and chats in #general (reply,
//! reaction); a second visitor does the same and writes in the new channel. Once with
//! JavaScript (live updates, htmx) and once without (plain forms). axe checks every
//! server page with JavaScript on.

use fantoccini::Locator;

use crate::browser::{Browser, Findings, with_two_browsers, xpath_literal};
use crate::browser_chat::{in_message, send};
use crate::support::{FLOW_ARGS, PASSWORD};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_flow_in_chromium_with_javascript() {
    with_two_browsers("server", true, FLOW_ARGS, ["owner", "friend"], run_flow).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_flow_in_chromium_without_javascript() {
    with_two_browsers("server", false, FLOW_ARGS, ["owner", "friend"], run_flow).await;
}

/// The path the browser is at now.
async fn path(b: &Browser) -> String {
    b.client.current_url().await.expect("url").path().to_string()
}

/// Waits to arrive at a page whose path starts with `prefix`; returns the path.
async fn wait_for_prefix(b: &Browser, prefix: &str, after: &str) -> String {
    let client = &b.client;
    b.eventually(&format!("expected {prefix}… after {after}"), || async move {
        let url = client.current_url().await.map_err(|e| e.to_string())?;
        let state = client.execute("return document.readyState", vec![]).await.map_err(|e| e.to_string())?;
        match url.path().strip_prefix(prefix) {
            Some(rest) if !rest.is_empty() && state == "complete" => Ok(url.path().to_string()),
            _ => Err(format!("at {url} ({state})")),
        }
    })
    .await
}

fn id_after(path: &str, prefix: &str) -> i64 {
    path.strip_prefix(prefix).and_then(|rest| rest.split('/').next()).and_then(|id| id.parse().ok()).expect("an id in the path")
}

async fn click_button(b: &Browser, name: &str) {
    b.button(name).await.click().await.unwrap_or_else(|e| panic!("browser {}: click {name}: {e}", b.name));
}

async fn click_link(b: &Browser, name: &str) {
    b.link(name).await.click().await.unwrap_or_else(|e| panic!("browser {}: follow {name}: {e}", b.name));
}

async fn choose(b: &Browser, label: &str, option: &str) {
    b.field(label).await.select_by_label(option).await.unwrap_or_else(|e| panic!("browser {}: choose {option} in {label}: {e}", b.name));
}

/// A visitor (signed out) opens the invite, registers on the way and accepts it.
async fn join_by_invite(b: &Browser, base: &str, invite: &str, username: &str, server: i64) {
    b.goto(&format!("{base}{invite}")).await;
    b.wait_for_path(invite, "opening the invite").await;
    click_link(b, "Register to join").await;
    b.wait_for_path("/register", "following Register to join").await;
    b.fill("Username", username).await;
    b.fill("Email", &format!("{username}@example.org")).await;
    b.fill("Password", PASSWORD).await;
    click_button(b, "Create account").await;
    b.wait_for_path(invite, "registering through the invite").await;
    click_button(b, "Accept invite").await;
    b.wait_for_path(&format!("/s/{server}"), "accepting the invite").await;
}

/// The channel link `#name` in the channel list.
async fn open_channel(b: &Browser, name: &str) -> i64 {
    // The link reads "#name", then any unread badge.
    let xpath = format!("//nav//a[contains(@class,'channel')][normalize-space(text()[1])={}]", xpath_literal(name));
    b.the_one(&xpath, &format!("the channel #{name}")).await.click().await.expect("open the channel");
    let at = wait_for_prefix(b, "/c/", &format!("opening #{name}")).await;
    b.client.find(Locator::Id("messages")).await.expect("the messages list");
    id_after(&at, "/c/")
}

async fn run_flow(base: &str, owner: &Browser, friend: &Browser) {
    let mut findings = Findings::default();

    // The owner registers and creates a server from the home page.
    crate::browser_chat::register(owner, base, "owner").await;
    click_link(owner, "create a server").await;
    owner.wait_for_path("/servers/new", "following create a server").await;
    owner.check_page("new server", &mut findings).await;
    owner.fill("Server name", "Rust Club").await;
    click_button(owner, "Create server").await;
    let at = wait_for_prefix(owner, "/s/", "creating the server").await;
    let server = id_after(&at, "/s/");
    owner.check_page("server home", &mut findings).await;

    // A category, two text channels in it and a voice channel.
    click_link(owner, "Manage channels").await;
    owner.wait_for_path(&format!("/s/{server}/channels"), "following Manage channels").await;
    owner.check_page("manage channels", &mut findings).await;
    owner.fill("Category name", "Projects").await;
    click_button(owner, "Create category").await;
    owner.wait_for_path(&format!("/s/{server}/channels"), "creating a category").await;
    owner.the_one("//input[@value='Projects']", "the new category").await;
    for name in ["Help Desk", "Show and tell"] {
        owner.goto(&format!("{base}/s/{server}/channels")).await;
        owner.fill("Channel name", name).await;
        choose(owner, "Category", "Projects").await;
        click_button(owner, "Create channel").await;
        wait_for_prefix(owner, "/c/", &format!("creating {name}")).await;
    }
    owner.goto(&format!("{base}/s/{server}/channels")).await;
    owner.the_one("//label[normalize-space(.)='Voice']/input", "the Voice choice").await.click().await.expect("choose Voice");
    owner.fill("Channel name", "Lounge").await;
    click_button(owner, "Create channel").await;
    owner.wait_for_path(&format!("/s/{server}/channels"), "creating a voice channel").await;
    owner.goto(&format!("{base}/s/{server}")).await;
    owner.the_one("//nav//span[contains(@class,'voice')][contains(.,'Lounge')]", "the voice channel in the list").await;
    owner.the_one("//nav//h3[.='Projects']/following-sibling::ul[1]//a[normalize-space(text()[1])='help-desk']", "#help-desk under Projects").await;
    owner.the_one("//nav//h3[.='Projects']/following-sibling::ul[1]//a[normalize-space(text()[1])='show-and-tell']", "#show-and-tell under Projects").await;

    // An invite link.
    click_link(owner, "Invite people").await;
    owner.wait_for_path(&format!("/s/{server}/invites"), "following Invite people").await;
    click_button(owner, "Create invite link").await;
    owner.wait_for_path(&format!("/s/{server}/invites"), "creating an invite").await;
    owner.check_page("invites", &mut findings).await;
    let invite = owner.the_one("//a[@class='invite-link']", "the invite link").await.text().await.expect("link text");
    assert!(invite.starts_with("/i/"), "the invite reads {invite:?}");

    // The first friend joins through it and says hello in #general.
    join_by_invite(friend, base, &invite, "friend", server).await;
    friend.check_page("server home (member)", &mut findings).await;
    let general = open_channel(friend, "general").await;
    friend.check_page("channel", &mut findings).await;
    let hello = send(friend, general, "Hello **everyone**!").await;

    // The owner sees it, replies and reacts.
    owner.goto(&format!("{base}/s/{server}")).await;
    assert_eq!(open_channel(owner, "general").await, general);
    in_message(owner, hello, "//strong[.='everyone']", "the friend's bold text").await;
    in_message(owner, hello, "//button[normalize-space(.)='Reply']", "Reply").await.click().await.expect("click Reply");
    owner.the_one("//*[@id='replying']", "the Replying to… note").await;
    let reply = send(owner, general, "Welcome!").await;
    in_message(owner, reply, "//a[contains(@class,'reply-quote')]", "the reply quote").await;
    in_message(owner, hello, "//summary[@aria-label='Add reaction']", "Add reaction").await.click().await.expect("open Add reaction");
    in_message(owner, hello, "//button[@aria-label='React with 👍']", "React with 👍").await.click().await.expect("react");
    in_message(owner, hello, "//button[starts-with(@aria-label,'👍 1: owner')]", "the 👍 1 reaction").await;

    // The friend sees the reply and the reaction (live with JavaScript, on reload without).
    if !friend.javascript {
        friend.goto(&format!("{base}/c/{general}")).await;
    }
    in_message(friend, reply, "//a[contains(@class,'reply-quote')]", "the owner's reply").await;
    in_message(friend, hello, "//button[starts-with(@aria-label,'👍 1: owner')]", "the owner's reaction").await;

    // The friend logs out; a second friend joins with the same link and writes in #help-desk.
    click_button(friend, "Log out").await;
    friend.wait_for_path("/login", "logging out").await;
    join_by_invite(friend, base, &invite, "second", server).await;
    let help = open_channel(friend, "help-desk").await;
    let question = send(friend, help, "How do I join voice?").await;
    owner.goto(&format!("{base}/c/{help}")).await;
    owner.wait_for_path(&format!("/c/{help}"), "opening #help-desk").await;
    in_message(owner, question, "//div[@class='body']", "the second friend's question").await;
    let members = {
        owner.goto(&format!("{base}/s/{server}")).await;
        owner.text_of("main").await
    };
    assert!(members.contains("Members (3)"), "the server has three members: {members}");
    assert_eq!(path(owner).await, format!("/s/{server}"));

    findings.assert_none();
}
