//! Issue 12, profiles: a custom status seen by others wherever a name is (sidebar,
//! message headers, member lists) and live; the profile card; the settings forms.

use std::time::Duration;

use axum::http::StatusCode;

use crate::conversations::{conversation_id, open_dm, send};
use crate::support::{Client, TestApp};

const SOON: Duration = Duration::from_secs(3);

pub async fn user_id(app: &TestApp, username: &str) -> i64 {
    reale::with_db!(app.state.store, pool => {
        sqlx::query_scalar("SELECT id FROM users WHERE username = $1").bind(username).fetch_one(pool).await
    })
    .expect("user exists")
}

/// The element that starts at `start` (e.g. `<li id="sidebar-3"`) up to its `close` tag.
pub fn element<'a>(page: &'a str, start: &str, close: &str) -> &'a str {
    let from = page.find(start).unwrap_or_else(|| panic!("{start} on the page:\n{page}"));
    let to = page[from..].find(close).map(|i| from + i + close.len()).expect("element closes");
    &page[from..to]
}

/// The status slot for `user` inside `html`, as the page shows it.
pub fn status_of(html: &str, user: i64) -> &str {
    element(html, &format!("<span class=\"user-status status-{user}\""), "</span></span>")
}

pub async fn set_status(client: &mut Client, emoji: &str, text: &str, expiry: &str) {
    let response = client
        .post("/settings/profile/status", &[("status_emoji", emoji), ("status_text", text), ("status_expiry", expiry)])
        .await;
    response.assert_redirect("/settings/profile?saved=status");
}

async fn group_of(owner: &mut Client, name: &str, members: &str) -> i64 {
    let response = owner.post("/groups", &[("name", name), ("members", members)]).await;
    conversation_id(&response)
}

async fn alices_status_reaches_bob_everywhere_her_name_is_and_live(app: TestApp) {
    let mut alice = app.client();
    alice.register("alice").await;
    let mut bob = app.client();
    bob.register("bob").await;
    let alice_id = user_id(&app, "alice").await;
    let dm = open_dm(&mut alice, "bob").await;
    let group = group_of(&mut alice, "Trip", "bob").await;
    let before = send(&mut alice, group, "packing now").await;
    let mut stream = bob.events("/events", None).await;

    set_status(&mut alice, "🌴", "On holiday", "1h").await;
    let event = stream.expect("On holiday", SOON).await;
    assert!(event.data.contains(&format!("data-each=\".status-{alice_id}\"")), "{}", event.data);

    // The sidebar (her DM), the DM header, her message header, the member list.
    let page = bob.get(&format!("/c/{dm}")).await.body;
    assert!(status_of(element(&page, &format!("<li id=\"sidebar-{dm}\""), "</li>"), alice_id).contains("On holiday"));
    assert!(status_of(element(&page, "<h1 id=\"conversation-title\"", "</header>"), alice_id).contains("🌴"));
    let page = bob.get(&format!("/c/{group}")).await.body;
    let article = element(&page, &format!("<article id=\"message-{before}\""), "</article>");
    assert!(status_of(article, alice_id).contains("On holiday"), "{article}");
    let members = bob.get(&format!("/c/{group}/members")).await.body;
    let alice_row = element(&members, "<a href=\"/u/alice\">", "</li>");
    assert!(status_of(alice_row, alice_id).contains("On holiday"), "{alice_row}");

    // Her next message arrives live with the status in its header.
    let after = send(&mut alice, group, "at the beach").await;
    let event = stream.expect(&format!("id=\"message-{after}\""), SOON).await;
    assert!(status_of(&event.data, alice_id).contains("On holiday"), "{}", event.data);

    // Cleared: gone live and from the pages.
    let response = alice.post("/settings/profile/status", &[("clear", "1")]).await;
    response.assert_redirect("/settings/profile?saved=status");
    stream.expect(&format!("<span class=\"user-status status-{alice_id}\"></span>"), SOON).await;
    assert!(!bob.get(&format!("/c/{group}")).await.body.contains("On holiday"));
}

async fn an_expired_status_is_not_shown(app: TestApp) {
    let mut alice = app.client();
    alice.register("alice").await;
    let mut bob = app.client();
    bob.register("bob").await;
    let dm = open_dm(&mut bob, "alice").await;
    set_status(&mut alice, "🍕", "At lunch", "30m").await;
    assert!(bob.get(&format!("/c/{dm}")).await.body.contains("At lunch"));
    // Half an hour later, as far as the database can tell.
    reale::with_db!(app.state.store, pool => {
        sqlx::query("UPDATE users SET status_expires_at = status_expires_at - 1800001").execute(pool).await.map(|_| ())
    })
    .expect("moved back");
    assert!(!bob.get(&format!("/c/{dm}")).await.body.contains("At lunch"));
    assert!(!bob.get("/u/alice").await.body.contains("At lunch"));
}

async fn the_profile_card_shows_who_someone_is(app: TestApp) {
    let mut alice = app.client();
    alice.register("alice").await;
    let response = alice
        .post("/settings/profile", &[("display_name", "Alice Liddell"), ("pronouns", "she/her"), ("bio", "Down the rabbit hole.")])
        .await;
    response.assert_redirect("/settings/profile?saved=profile");
    set_status(&mut alice, "🐇", "Late", "never").await;
    let mut bob = app.client();
    bob.register("bob").await;

    let card = bob.get("/u/alice").await;
    assert_eq!(card.status, StatusCode::OK);
    for shown in ["Alice Liddell", "@alice", "she/her", "Down the rabbit hole.", "🐇", "Late", ">Send message</button>", "aria-label=\"Block Alice Liddell\""] {
        assert!(card.body.contains(shown), "{shown} on the card:\n{}", card.body);
    }
    // Names link to the card from message headers.
    let dm = open_dm(&mut alice, "bob").await;
    send(&mut alice, dm, "hello").await;
    assert!(bob.get(&format!("/c/{dm}")).await.body.contains("<a class=\"author\" href=\"/u/alice\">Alice Liddell</a>"));

    assert_eq!(bob.get("/u/nobody-here").await.status, StatusCode::NOT_FOUND);
    // Signed out, a profile is the login page, for real and unknown names alike.
    let mut stranger = app.client();
    let real = stranger.get("/u/alice").await;
    let unknown = stranger.get("/u/nobody-here").await;
    assert_eq!(real.status, StatusCode::SEE_OTHER);
    assert_eq!((real.status, real.location().map(|l| l.replace("alice", "X"))), (unknown.status, unknown.location().map(|l| l.replace("nobody-here", "X"))));
    assert!(!real.body.contains("Alice Liddell"));
}

async fn profile_forms_keep_what_was_typed_on_422(app: TestApp) {
    let mut alice = app.client();
    alice.register("alice").await;
    let long_bio = "b".repeat(501);
    let response = alice.post("/settings/profile", &[("display_name", "Typed Name"), ("pronouns", "they/them"), ("bio", &long_bio)]).await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(response.body.contains("value=\"Typed Name\"") && response.body.contains("value=\"they/them\""), "{}", response.body);
    assert!(response.body.contains("The bio can have at most 500 characters.") && response.body.contains(&long_bio));

    let response = alice
        .post("/settings/profile/status", &[("status_emoji", "not an emoji"), ("status_text", "Typed status"), ("status_expiry", "4h")])
        .await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(response.body.contains("value=\"not an emoji\"") && response.body.contains("value=\"Typed status\""), "{}", response.body);
    assert!(response.body.contains("<option value=\"4h\" selected>"));
    assert!(response.body.contains("The status emoji is one emoji"));
    // Nothing was saved.
    assert!(!alice.get("/u/alice").await.body.contains("Typed"));
}

crate::on_both_backends!(
    alices_status_reaches_bob_everywhere_her_name_is_and_live,
    an_expired_status_is_not_shown,
    the_profile_card_shows_who_someone_is,
    profile_forms_keep_what_was_typed_on_422,
);
