//! Issue 12, notification levels: the "Notifications" form on a conversation and on a
//! server, with and without htmx, its errors, who may use it, and the sidebar's muted mark.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};

use crate::conversations::{conversation_id, open_dm};
use crate::on_both_backends;
use crate::servers::{channel_id, create_server};
use crate::support::{Client, TestApp};

on_both_backends!(
    bob_mutes_a_group_and_sees_it_marked_muted_then_unmutes_it,
    the_form_works_inline_with_htmx_and_refuses_bad_choices,
    a_channel_follows_its_server_until_it_has_its_own_level,
);

async fn person(app: &TestApp, name: &str) -> Client {
    let mut client = app.client();
    client.register(name).await;
    client
}

/// The sidebar entry of conversation `id` in a page.
fn sidebar_item(page: &str, id: i64) -> &str {
    let start = page.find(&format!("<li id=\"sidebar-{id}\"")).unwrap_or_else(|| panic!("sidebar-{id} in the page"));
    let rest = &page[start..];
    &rest[..rest.find("</li>").expect("end of the item")]
}

async fn htmx_post(client: &mut Client, path: &str, form: &[(&str, &str)]) -> crate::support::Resp {
    let request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("sec-fetch-site", "same-origin")
        .header("hx-request", "true")
        .body(Body::from(serde_urlencoded::to_string(form).expect("form")))
        .expect("request");
    client.send(request).await
}

async fn bob_mutes_a_group_and_sees_it_marked_muted_then_unmutes_it(app: TestApp) {
    let mut alice = person(&app, "alice").await;
    let mut bob = person(&app, "bob").await;
    let group = conversation_id(&alice.post("/groups", &[("name", "Chatty"), ("members", "bob")]).await);
    let dm = open_dm(&mut bob, "alice").await;

    // The form, with a name for every control.
    let page = bob.get(&format!("/c/{group}")).await.body;
    assert!(page.contains("<summary>Notifications</summary>"));
    for (id, label) in [("notify-level-all", "All messages"), ("notify-level-mentions", "Only @mentions"), ("notify-level-nothing", "Nothing"), ("notify-mute", "Mute")] {
        assert!(page.contains(&format!("<label for=\"{id}\">{label}</label>")), "{id} is labelled {label}");
    }
    assert!(page.contains("id=\"notify-level-all\" name=\"level\" value=\"all\" checked"), "groups default to All messages");
    assert!(!sidebar_item(&page, group).contains("muted"), "not muted yet");

    // Muted for an hour: the page says until when; the sidebar marks it for eyes and screen readers.
    bob.post(&format!("/c/{group}/notifications"), &[("level", "all"), ("mute", "1h")]).await.assert_redirect(&format!("/c/{group}#notifications"));
    let page = bob.get(&format!("/c/{dm}")).await.body;
    let item = sidebar_item(&page, group);
    assert!(item.starts_with(&format!("<li id=\"sidebar-{group}\" class=\"muted-conversation\">")), "styled muted: {item}");
    assert!(item.contains("<span class=\"visually-hidden\">(muted)</span>"), "says muted to screen readers: {item}");
    assert!(!sidebar_item(&page, dm).contains("muted"), "only that conversation");
    assert!(bob.get(&format!("/c/{group}")).await.body.contains("Muted until "));
    // Alice's sidebar is her own.
    assert!(!sidebar_item(&alice.get("/").await.body, group).contains("muted"));

    // "Nothing" also reads as muted; unmuting with All clears the mark.
    bob.post(&format!("/c/{group}/notifications"), &[("level", "nothing"), ("mute", "off")]).await;
    assert!(sidebar_item(&bob.get("/").await.body, group).contains("(muted)"));
    bob.post(&format!("/c/{group}/notifications"), &[("level", "all"), ("mute", "off")]).await;
    let page = bob.get(&format!("/c/{group}")).await.body;
    assert!(!sidebar_item(&page, group).contains("muted") && !page.contains("Muted until"));

    // Someone outside the group gets 404, as for the group itself.
    let mut carol = person(&app, "carol").await;
    assert_eq!(carol.post(&format!("/c/{group}/notifications"), &[("level", "nothing"), ("mute", "forever")]).await.status, StatusCode::NOT_FOUND);
}

async fn the_form_works_inline_with_htmx_and_refuses_bad_choices(app: TestApp) {
    let mut alice = person(&app, "alice").await;
    let _bob = person(&app, "bob").await;
    let dm = open_dm(&mut alice, "bob").await;
    let saved = htmx_post(&mut alice, &format!("/c/{dm}/notifications"), &[("level", "mentions"), ("mute", "forever")]).await;
    assert_eq!(saved.status, StatusCode::OK);
    assert!(saved.body.starts_with("<details class=\"notifications\" id=\"notifications\" open>"), "the form again: {}", saved.body);
    assert!(saved.body.contains("Notification settings saved."));
    assert!(saved.body.contains("value=\"mentions\" checked") && saved.body.contains("Muted until you turn it back on"));

    // Bad choices: a message that repeats what was sent, and nothing changes.
    let refused = htmx_post(&mut alice, &format!("/c/{dm}/notifications"), &[("level", "loud"), ("mute", "")]).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("role=\"alert\"") && refused.body.contains("(got \u{201c}loud\u{201d})"), "{}", refused.body);
    let refused = alice.post(&format!("/c/{dm}/notifications"), &[("level", "all"), ("mute", "a year")]).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("Choose how long to mute for (got \u{201c}a year\u{201d})."), "{}", refused.body);
    let page = alice.get(&format!("/c/{dm}")).await.body;
    assert!(page.contains("value=\"mentions\" checked") && page.contains("Muted until you turn it back on"), "unchanged");
}

async fn a_channel_follows_its_server_until_it_has_its_own_level(app: TestApp) {
    let mut alice = person(&app, "alice").await;
    let server = create_server(&mut alice, "Garden").await;
    let home = alice.get(&format!("/s/{server}")).await.body;
    assert!(home.contains(&format!("action=\"/s/{server}/notifications\"")), "the server page has the server's form");
    let general = channel_id(&home, "general");
    let channel = alice.get(&format!("/c/{general}")).await.body;
    assert!(channel.contains("<label for=\"notify-level-default\">As the server (All messages)</label>"));
    assert!(channel.contains("value=\"default\" checked"));

    alice.post(&format!("/s/{server}/notifications"), &[("level", "mentions"), ("mute", "")]).await.assert_redirect(&format!("/s/{server}#notifications"));
    let channel = alice.get(&format!("/c/{general}")).await.body;
    assert!(channel.contains("As the server (Only @mentions)</label>") && channel.contains("value=\"default\" checked"));
    alice.post(&format!("/c/{general}/notifications"), &[("level", "nothing"), ("mute", "")]).await;
    let channel = alice.get(&format!("/c/{general}")).await.body;
    assert!(channel.contains("value=\"nothing\" checked") && !channel.contains("value=\"default\" checked"));
    // Back to the server's choice.
    alice.post(&format!("/c/{general}/notifications"), &[("level", "default"), ("mute", "")]).await;
    assert!(alice.get(&format!("/c/{general}")).await.body.contains("value=\"default\" checked"));

    // Not a member: 404 for the server's form too.
    let mut bob = person(&app, "bob").await;
    assert_eq!(bob.post(&format!("/s/{server}/notifications"), &[("level", "nothing"), ("mute", "")]).await.status, StatusCode::NOT_FOUND);
    assert_eq!(bob.post(&format!("/c/{general}/notifications"), &[("level", "nothing"), ("mute", "")]).await.status, StatusCode::NOT_FOUND);
}
