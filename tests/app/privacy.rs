//! Issue 12, privacy and spam: message requests from outside one's circle, blocking,
//! who may add one to groups, and "last seen" as each person chose.

use std::time::Duration;

use axum::http::StatusCode;

use crate::conversations::{conversation_id, open_dm, send};
use crate::profiles::{set_status, status_of, user_id};
use crate::support::{Client, TestApp};

const SOON: Duration = Duration::from_secs(3);

async fn person(app: &TestApp, name: &str) -> Client {
    let mut client = app.client();
    client.register(name).await;
    client
}

async fn choose(client: &mut Client, last_seen: &str, dms: &str, groups: &str) {
    let response = client.post("/settings/privacy", &[("last_seen", last_seen), ("dms", dms), ("groups", groups)]).await;
    response.assert_redirect("/settings/privacy?saved=1");
}

/// Acceptance 7, first half.
async fn a_strangers_dm_arrives_as_a_request_not_in_the_sidebar(app: TestApp) {
    let mut bob = person(&app, "bob").await;
    let mut mallory = person(&app, "mallory").await;
    let mut carol = person(&app, "carol").await;
    choose(&mut bob, "everyone", "shared", "everyone").await;
    // Carol shares a group with Bob; Mallory shares nothing with him.
    carol.post("/groups", &[("name", "Book club"), ("members", "bob")]).await;
    let mut stream = bob.events("/events", None).await;

    let request = open_dm(&mut mallory, "bob").await;
    send(&mut mallory, request, "hi bob, buy my crypto").await;
    let direct = open_dm(&mut carol, "bob").await;
    let from_carol = send(&mut carol, direct, "see you at book club").await;

    // Carol's DM arrives live; Mallory's never does (checked after Carol's, which was sent later).
    let mut heard = String::new();
    while !heard.contains(&format!("message-{from_carol}")) {
        heard.push_str(&stream.next(SOON).await.expect("Carol's DM arrives live").data);
    }
    assert!(stream.next(SOON).await.is_none_or(|e| !e.data.contains("crypto")));
    assert!(!heard.contains("crypto"));

    let home = bob.get(&format!("/c/{direct}")).await.body;
    assert!(home.contains(&format!("id=\"sidebar-{direct}\"")));
    assert!(!home.contains(&format!("id=\"sidebar-{request}\"")), "the request is not in Bob's sidebar");
    assert!(home.contains("href=\"/requests\"") && home.contains("aria-label=\"1 waiting\""), "a link with the count");
    assert_eq!(bob.get(&format!("/c/{request}")).await.status, StatusCode::NOT_FOUND);
    let requests = bob.get("/requests").await.body;
    assert!(requests.contains("mallory") && requests.contains(&format!("href=\"/requests/{request}\"")));
    let opened = bob.get(&format!("/requests/{request}")).await;
    assert!(opened.body.contains("hi bob, buy my crypto") && opened.body.contains(">Accept</button>"));
    // Nobody else can read or answer it.
    assert_eq!(carol.get(&format!("/requests/{request}")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(carol.post(&format!("/requests/{request}/accept"), &[]).await.status, StatusCode::NOT_FOUND);

    // Accepting makes it a normal DM, with the message unread.
    bob.post(&format!("/requests/{request}/accept"), &[]).await.assert_redirect(&format!("/c/{request}"));
    let page = bob.get(&format!("/c/{request}")).await.body;
    assert!(page.contains("hi bob, buy my crypto") && page.contains(&format!("id=\"sidebar-{request}\"")));
    assert!(!bob.get("/requests").await.body.contains(&format!("href=\"/requests/{request}\"")));
    let reply = send(&mut bob, request, "who are you?").await;
    assert!(mallory.get(&format!("/c/{request}")).await.body.contains(&format!("message-{reply}")));
}

async fn declining_a_request_blocks_the_sender(app: TestApp) {
    let mut bob = person(&app, "bob").await;
    let mut mallory = person(&app, "mallory").await;
    choose(&mut bob, "everyone", "nobody", "everyone").await;
    let request = open_dm(&mut mallory, "bob").await;
    send(&mut mallory, request, "hello?").await;
    bob.post(&format!("/requests/{request}/decline"), &[]).await.assert_redirect("/requests");
    assert!(!bob.get("/requests").await.body.contains(&format!("href=\"/requests/{request}\"")));
    assert!(bob.get("/settings/privacy").await.body.contains("aria-label=\"Unblock mallory\""));

    let refused = mallory.post(&format!("/c/{request}/messages"), &[("body", "hello again"), ("client_id", "x1")]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("You can&#39;t send messages to this person.") || refused.body.contains("You can't send messages to this person."), "{}", refused.body);
    assert!(refused.body.contains("hello again"), "the draft is kept");
    assert_eq!(mallory.post("/u/bob/message", &[]).await.status, StatusCode::FORBIDDEN);
}

/// Acceptance 7, second half: a blocked user's DM is refused with a clear message,
/// and they cannot add the blocker to groups either.
async fn a_blocked_users_dm_is_refused(app: TestApp) {
    let mut alice = person(&app, "alice").await;
    let mut bob = person(&app, "bob").await;
    let dm = open_dm(&mut alice, "bob").await;
    send(&mut alice, dm, "before").await;
    bob.post("/u/alice/block", &[]).await.assert_redirect("/u/alice");
    assert!(bob.get("/u/alice").await.body.contains("aria-label=\"Unblock alice\""));

    let refused = alice.post(&format!("/c/{dm}/messages"), &[("body", "sent after the block"), ("client_id", "x2")]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("send messages to this person."), "{}", refused.body);
    let opened = alice.post("/u/bob/message", &[]).await;
    assert_eq!(opened.status, StatusCode::FORBIDDEN);
    assert!(opened.body.contains("send messages to this person."));
    assert!(!bob.get(&format!("/c/{dm}")).await.body.contains("sent after the block"));

    let group = alice.post("/groups", &[("name", "Surprise"), ("members", "bob")]).await;
    assert_eq!(group.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(group.body.contains("@bob can&#39;t be added to groups by you.") || group.body.contains("@bob can't be added to groups by you."));
    assert!(group.body.contains("value=\"Surprise\""), "the form keeps what was typed");

    // Bob, who blocked, is told to unblock first; after unblocking both may write.
    let own = bob.post(&format!("/c/{dm}/messages"), &[("body", "hm"), ("client_id", "x3")]).await;
    assert_eq!(own.status, StatusCode::FORBIDDEN);
    bob.post("/u/alice/unblock", &[]).await.assert_redirect("/u/alice");
    send(&mut alice, dm, "after the unblock").await;
}

async fn who_may_add_me_to_groups(app: TestApp) {
    let mut alice = person(&app, "alice").await;
    let mut bob = person(&app, "bob").await;
    let mut carol = person(&app, "carol").await;
    choose(&mut bob, "everyone", "everyone", "shared").await;
    let refused = alice.post("/groups", &[("name", "Strangers"), ("members", "bob")]).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Carol knows Bob (a DM), so she may add him, and then Alice via Carol's group.
    open_dm(&mut carol, "bob").await;
    let group = conversation_id(&carol.post("/groups", &[("name", "Friends"), ("members", "bob, alice")]).await);
    assert!(bob.get(&format!("/c/{group}")).await.status.is_success());
    choose(&mut bob, "everyone", "everyone", "nobody").await;
    let members = carol.post(&format!("/c/{group}/members"), &[("username", "bob")]).await;
    assert!(members.status.is_redirection(), "already a member: nothing to refuse");
    let other = carol.post("/groups", &[("name", "Another"), ("members", "bob")]).await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn last_seen_follows_each_persons_choice(app: TestApp) {
    let mut alice = person(&app, "alice").await;
    let mut bob = person(&app, "bob").await;
    let mut dave = person(&app, "dave").await;
    let dm = open_dm(&mut bob, "alice").await;
    reale::with_db!(app.state.store, pool => {
        sqlx::query("UPDATE users SET last_seen_at = 1700000000000 WHERE username = 'alice'").execute(pool).await.map(|_| ())
    })
    .expect("last seen set");
    let seen = "Last seen 2023-11-14 22:13 UTC";

    // Everyone: Bob (a DM) and Dave (nothing shared) both see it.
    assert!(bob.get(&format!("/c/{dm}")).await.body.contains(seen));
    assert!(dave.get("/u/alice").await.body.contains(seen));
    // People I share a conversation with: Bob still, Dave no longer.
    choose(&mut alice, "shared", "everyone", "everyone").await;
    assert!(bob.get(&format!("/c/{dm}")).await.body.contains(seen));
    assert!(bob.get("/u/alice").await.body.contains(seen));
    let card = dave.get("/u/alice").await.body;
    assert!(!card.contains("Last seen") && card.contains("title=\"Offline\""), "{card}");
    // Nobody: no one, in the sidebar, the header or the card.
    choose(&mut alice, "nobody", "everyone", "everyone").await;
    let page = bob.get(&format!("/c/{dm}")).await.body;
    assert!(!page.contains("Last seen") && page.contains("title=\"Offline\""));
    assert!(!bob.get("/u/alice").await.body.contains("Last seen"));
}

async fn a_blocked_user_sees_no_presence_or_status(app: TestApp) {
    let mut alice = person(&app, "alice").await;
    let mut bob = person(&app, "bob").await;
    let mut carol = person(&app, "carol").await;
    let alice_id = user_id(&app, "alice").await;
    let group = conversation_id(&alice.post("/groups", &[("name", "Three"), ("members", "bob, carol")]).await);
    let bob_dm = open_dm(&mut alice, "bob").await;
    set_status(&mut alice, "🎧", "Focusing", "never").await;
    let _alice_stream = alice.events("/events", None).await;
    let mut bob_stream = bob.events("/events", None).await;
    let mut carol_stream = carol.events("/events", None).await;

    alice.post("/u/bob/block", &[]).await.assert_redirect("/u/bob");
    // Open pages learn it at once: Bob's shows her offline with no status.
    let hidden = bob_stream.expect(&format!("<span class=\"user-status status-{alice_id}\"></span>"), SOON).await;
    assert!(!hidden.data.contains("Focusing") && hidden.data.contains("data-state=\"offline\""), "{}", hidden.data);

    let page = bob.get(&format!("/c/{bob_dm}")).await.body;
    assert!(!page.contains("Focusing") && !page.contains(&format!("presence-{alice_id}\" data-state=\"online\"")), "{page}");
    let members = bob.get(&format!("/c/{group}/members")).await.body;
    assert!(!members.contains("Focusing") && !members.contains("Last seen"));
    assert!(members.contains(&format!("presence-{alice_id}\" data-state=\"offline\"")));
    let card = bob.get("/u/alice").await.body;
    assert!(!card.contains("Focusing") && card.contains("title=\"Offline\""));

    // Carol, not blocked, sees both; a live message from Alice in the group carries no
    // status for anyone while a blocked member is in it, and the page keeps it for Carol.
    let members = carol.get(&format!("/c/{group}/members")).await.body;
    assert!(members.contains("Focusing") && members.contains(&format!("presence-{alice_id}\" data-state=\"online\"")));
    let id = send(&mut alice, group, "status check").await;
    let live = bob_stream.expect(&format!("id=\"message-{id}\""), SOON).await;
    assert!(!live.data.contains("Focusing"));
    carol_stream.expect(&format!("id=\"message-{id}\""), SOON).await;
    let page = carol.get(&format!("/c/{group}")).await.body;
    let article = crate::profiles::element(&page, &format!("<article id=\"message-{id}\""), "</article>");
    assert!(status_of(article, alice_id).contains("Focusing"));
    assert!(!bob.get(&format!("/c/{group}")).await.body.contains("Focusing"));
}

crate::on_both_backends!(
    a_strangers_dm_arrives_as_a_request_not_in_the_sidebar,
    declining_a_request_blocks_the_sender,
    a_blocked_users_dm_is_refused,
    who_may_add_me_to_groups,
    last_seen_follows_each_persons_choice,
    a_blocked_user_sees_no_presence_or_status,
);
