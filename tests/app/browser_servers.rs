//! A server in a real browser, as its owner and two friends use it: the owner creates a
//! server, a category, two text channels and a voice channel, and an invite link; a
//! visitor registers through the link, accepts it and chats in #general (reply,
//! reaction); a second visitor does the same and writes in the new channel; the owner
//! makes that channel private to a role, and the visitor has it only with the role. Once with
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
    owner.the_one("//nav//a[contains(@class,'voice')][contains(.,'Lounge')]", "the voice channel in the list").await;
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
    // The picker opens inside the message with JavaScript, as its own page without.
    in_message(owner, hello, "//a[normalize-space(.)='Add reaction']", "Add reaction").await.click().await.expect("open Add reaction");
    owner.the_one("//button[@aria-label='React with 👍']", "React with 👍").await.click().await.expect("react");
    owner.wait_for_path(&format!("/c/{general}"), "reacting").await;
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

    // #help-desk made private: a Mods role, @everyone denied View channel, Mods allowed.
    private_channel(base, owner, friend, server, help, &mut findings).await;

    findings.assert_none();
}

/// Picks allow / inherit / deny for one permission of one override.
async fn pick(b: &Browser, permission: &str, subject: &str, choice: &str) {
    let xpath = format!(
        "//fieldset[legend[normalize-space(.)={}]]//label[normalize-space(.)={}]/input",
        xpath_literal(&format!("{permission} for {subject}")),
        xpath_literal(choice)
    );
    b.the_one(&xpath, &format!("{choice} for {permission} of {subject}")).await.click().await.expect("pick a choice");
}

/// Adds an override for `role` on the open permissions page and sets View channel.
async fn override_view(b: &Browser, role: &str, choice: &str) {
    choose(b, "Role", role).await;
    click_button(b, "Add override").await;
    b.the_one(&format!("//h3[normalize-space(.)={}]", xpath_literal(&format!("Role {role}"))), "the new override").await;
    pick(b, "View channel", role, choice).await;
    click_button(b, &format!("Save override for {role}")).await;
    let checked = format!("//fieldset[legend[normalize-space(.)={}]]//label[normalize-space(.)={}]/input[@checked]", xpath_literal(&format!("View channel for {role}")), xpath_literal(choice));
    let checked = &checked;
    // No refresh while waiting: reloading could abort the save's own navigation.
    b.eventually("expected the saved choice after saving", || async move {
        let found = b.client.find_all(Locator::XPath(checked)).await.map_err(|e| e.to_string())?;
        if found.len() == 1 { Ok(()) } else { Err(format!("{} checked", found.len())) }
    })
    .await;
}

/// Whether `b` finds #`name` in the server's channel list.
async fn lists_channel(b: &Browser, base: &str, server: i64, name: &str) -> bool {
    b.goto(&format!("{base}/s/{server}")).await;
    b.wait_for_path(&format!("/s/{server}"), "opening the server").await;
    let xpath = format!("//nav//a[normalize-space(text()[1])={}]", xpath_literal(name));
    !b.client.find_all(Locator::XPath(&xpath)).await.expect("find").is_empty()
}

async fn private_channel(base: &str, owner: &Browser, friend: &Browser, server: i64, help: i64, findings: &mut Findings) {
    owner.goto(&format!("{base}/s/{server}/roles")).await;
    owner.wait_for_path(&format!("/s/{server}/roles"), "opening roles").await;
    owner.fill("Role name", "Mods").await;
    owner.fill("Colour", "#3a7bd5").await;
    click_button(owner, "Create role").await;
    owner.the_one("//a[@aria-label='Edit role Mods']", "the Mods role").await;
    owner.check_page("roles", findings).await;
    owner.the_one("//a[@aria-label='Edit role Mods']", "Edit role Mods").await.click().await.expect("click Edit role Mods");
    owner.the_one("//h1[normalize-space(.)='Edit role Mods']", "the role page").await;
    owner.check_page("role", findings).await;

    owner.goto(&format!("{base}/s/{server}/channels")).await;
    owner.the_one("//a[@aria-label='Permissions of channel help-desk']", "Permissions of #help-desk").await.click().await.expect("click Permissions");
    owner.the_one("//h1[normalize-space(.)='Permissions of #help-desk']", "the channel's permissions").await;
    owner.the_one("//p[contains(.,'synced with its category')]", "the synced note").await;
    owner.check_page("channel permissions, synced with its category", findings).await;
    override_view(owner, "@everyone", "Deny").await;
    override_view(owner, "Mods", "Allow").await;
    owner.check_page("channel permissions with overrides", findings).await;
    assert!(!lists_channel(friend, base, server, "help-desk").await, "the second friend no longer sees #help-desk");
    friend.goto(&format!("{base}/c/{help}")).await;
    friend.the_one("//h1[normalize-space(.)='Not found']", "not found").await;

    // The owner gives the second friend Mods on their member page: the channel is back.
    owner.goto(&format!("{base}/s/{server}")).await;
    owner.the_one("//a[@aria-label='Roles of second']", "Roles of second").await.click().await.expect("click Roles of second");
    owner.the_one("//legend[normalize-space(.)='Roles of second']", "second's roles").await;
    owner.check_page("a member's roles", findings).await;
    owner.the_one("//label[normalize-space(.)='Mods']/input", "the Mods checkbox").await.click().await.expect("tick Mods");
    click_button(owner, "Save roles").await;
    owner.eventually("expected Mods saved", || async move {
        owner.client.refresh().await.map_err(|e| e.to_string())?;
        let found = owner.client.find_all(Locator::XPath("//label[normalize-space(.)='Mods']/input[@checked]")).await.map_err(|e| e.to_string())?;
        if found.len() == 1 { Ok(()) } else { Err("not yet".into()) }
    })
    .await;
    owner.goto(&format!("{base}/s/{server}")).await;
    owner.check_page("server home with a coloured role", findings).await;
    assert!(lists_channel(friend, base, server, "help-desk").await, "with Mods, #help-desk is back");
}
