//! Calls in DMs and groups over HTTP (issue 13): starting, the live ringing banner,
//! accepting (str0m clients that talk through the SFU and hear each other), declining without
//! JavaScript, the lines a call leaves, and who may not call or see one. Media itself
//! is checked in Chromium (`browser_calls.rs`).

use std::time::{Duration, Instant};

use axum::http::StatusCode;

use crate::conversations::{conversation_id, open_dm};
use crate::on_both_backends;
use crate::support::rtc::{Offering, Talking};
use crate::support::{Client, TestApp};

on_both_backends!(
    alice_calls_bob_who_answers_and_the_call_leaves_its_length,
    a_declined_call_is_a_missed_call_and_strangers_see_nothing_of_it,
    a_ringing_call_shows_on_every_page_and_declines_without_javascript,
    two_starts_at_once_make_one_call,
    a_blocked_person_cannot_call,
    a_member_removed_from_the_group_is_taken_out_of_its_call,
    a_stream_that_connects_after_the_call_started_still_rings,
);

/// The same tests with calls that ring for a second only (`--call-ring-seconds 1`).
macro_rules! short_ring_tests {
    ($($name:ident),* $(,)?) => {
        mod short_ring {
            mod sqlite { $( #[tokio::test] async fn $name() { if let Some(app) = super::super::short_ring(crate::support::Backend::Sqlite).await { super::super::$name(app).await; } } )* }
            mod postgres { $( #[tokio::test] async fn $name() { if let Some(app) = super::super::short_ring(crate::support::Backend::Postgres).await { super::super::$name(app).await; } } )* }
        }
    };
}

short_ring_tests!(a_dm_call_nobody_answers_is_missed, a_group_call_stops_ringing_but_goes_on);

async fn short_ring(backend: crate::support::Backend) -> Option<TestApp> {
    let mut args = crate::support::FLOW_ARGS.to_vec();
    args.extend(["--call-ring-seconds", "1"]);
    TestApp::spawn_with(backend, &args).await
}

/// Long enough for any live frame here; what must not arrive is waited for as long.
const LIVE: Duration = Duration::from_secs(3);

/// Alice and Bob, with a DM between them.
async fn alice_and_bob(app: &TestApp) -> (Client, Client, i64) {
    let (mut alice, mut bob) = (app.client(), app.client().fresh());
    alice.register("alice").await;
    bob.register("bob").await;
    let dm = open_dm(&mut alice, "bob").await;
    (alice, bob, dm)
}

/// Alice, Bob and Carol, in Alice's group "Trip".
async fn alice_bob_and_carol_in_a_group(app: &TestApp) -> (Client, Client, Client, i64) {
    let (mut alice, bob, _dm) = alice_and_bob(app).await;
    let mut carol = app.client().fresh();
    carol.register("carol").await;
    let group = conversation_id(&alice.post("/groups", &[("name", "Trip"), ("members", "bob, carol")]).await);
    (alice, bob, carol, group)
}

/// Starts a call (video or not) in `conversation`: the page it opens.
async fn start(client: &mut Client, conversation: i64, video: bool) {
    let started = client.post(&format!("/c/{conversation}/call"), &[("video", if video { "true" } else { "false" })]).await;
    started.assert_redirect(&format!("/c/{conversation}/call?join=1"));
}

/// Joins the call in `conversation` as `client` (a str0m client's offer): the
/// response's status, and the client talking when it is 200.
async fn joined(client: &mut Client, conversation: i64) -> (StatusCode, Option<Talking>) {
    let offering = Offering::new();
    let response = client.post_raw(&format!("/c/{conversation}/call/rtc"), offering.json.clone().into_bytes(), "application/json").await;
    let talking = (response.status == StatusCode::OK).then(|| offering.answered(&response.body));
    (response.status, talking)
}

/// Joins, and lets go of the client: the response's status.
async fn join(client: &mut Client, conversation: i64) -> StatusCode {
    joined(client, conversation).await.0
}

/// Joins and stays: the client, which sends audio and counts what it hears.
async fn talk(client: &mut Client, conversation: i64) -> Talking {
    let (status, talking) = joined(client, conversation).await;
    talking.unwrap_or_else(|| panic!("joining the call: {status}"))
}

/// The call's id, from the banner's Decline form on `page`.
fn banner_call(page: &str) -> i64 {
    let at = page.find("name=\"call\" value=\"").unwrap_or_else(|| panic!("a ringing call's banner:\n{page}"));
    page[at + 19..].split('"').next().expect("id").parse().expect("numeric id")
}

/// What a live frame says when `user`'s banner for `call` goes (theirs only: a
/// group's frames carry everyone's).
async fn unrung(app: &TestApp, call: i64, user: &str) -> String {
    format!("data-remove=\"call-{call}-for-{}\"", crate::moderation::user_id(app, user).await)
}

/// Polls the conversation until `text` shows in it.
async fn until_in_conversation(client: &mut Client, conversation: i64, text: &str) {
    let started = Instant::now();
    loop {
        let page = client.get(&format!("/c/{conversation}")).await.body;
        if page.contains(text) {
            return;
        }
        assert!(started.elapsed() < LIVE, "{text:?} never showed in the conversation:\n{page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn alice_calls_bob_who_answers_and_the_call_leaves_its_length(app: TestApp) {
    let (mut alice, mut bob, dm) = alice_and_bob(&app).await;
    let mut bobs_stream = bob.events("/events", None).await;
    assert!(alice.get(&format!("/c/{dm}")).await.body.contains(">Start voice call</button>"));

    start(&mut alice, dm, false).await;
    let ring = bobs_stream.expect("aria-label=\"Incoming call from alice\"", LIVE).await;
    assert!(ring.data.contains(">Accept</button>") && ring.data.contains(">Decline</button>"), "{}", ring.data);
    // The conversation says a call is on, to both.
    assert!(bob.get(&format!("/c/{dm}")).await.body.contains("Call in progress — <a href=\"/c/"));
    // The caller's own pages do not ring.
    assert!(!alice.get("/").await.body.contains("Incoming call"));

    let alices = talk(&mut alice, dm).await;
    let page = bob.get(&format!("/c/{dm}/call?join=1")).await.body;
    assert!(page.contains("data-autojoin") && page.contains(">Hang up</button>"), "accepting opens a page that joins: {page}");
    let bobs = talk(&mut bob, dm).await;
    let call = banner_call(&ring.data);
    // Answered here: the banner leaves every page of Bob's.
    bobs_stream.expect(&unrung(&app, call, "bob").await, LIVE).await;
    assert!(!bob.get("/").await.body.contains("Incoming call"), "no banner once answered");
    let page = alice.get(&format!("/c/{dm}/call")).await.body;
    assert!(page.contains("aria-label=\"In the call\"") && page.contains(">alice<") && page.contains(">bob<"), "the call lists who is in: {page}");

    // Each hears the other.
    assert!(alices.hears(25, LIVE).await >= 25, "Bob's audio reaches Alice ({} packets)", alices.received());
    assert!(bobs.hears(25, LIVE).await >= 25, "Alice's audio reaches Bob ({} packets)", bobs.received());

    alice.post(&format!("/c/{dm}/call/leave"), &[]).await.assert_redirect(&format!("/c/{dm}"));
    until_in_conversation(&mut bob, dm, "Voice call · 0:0").await;
    until_in_conversation(&mut alice, dm, "Voice call · 0:0").await;
    assert!(alice.get(&format!("/c/{dm}")).await.body.contains(">Start voice call</button>"), "the call is over");
    // Bob, still connected when Alice hung up, is out of the room too, and there is
    // no call to join any more.
    assert!(!bob.get(&format!("/c/{dm}/call")).await.body.contains("data-user-id"), "nobody is left in the room");
    assert_eq!(join(&mut bob, dm).await, StatusCode::UNPROCESSABLE_ENTITY);
    drop((alices, bobs));
}

async fn a_declined_call_is_a_missed_call_and_strangers_see_nothing_of_it(app: TestApp) {
    let (mut alice, mut bob, dm) = alice_and_bob(&app).await;
    let mut stranger = app.client().fresh();
    stranger.register("mallory").await;
    let mut strangers_stream = stranger.events("/events", None).await;
    let mut bobs_stream = bob.events("/events", None).await;

    start(&mut alice, dm, true).await;
    let ring = bobs_stream.expect("Incoming call from alice", LIVE).await;
    assert!(ring.data.contains("is calling (video call)"), "{}", ring.data);
    let call = banner_call(&ring.data);
    assert_eq!(join(&mut alice, dm).await, StatusCode::OK);

    // Mallory cannot tell the call exists: 404 on every call route.
    let call_field = call.to_string();
    assert_eq!(stranger.get(&format!("/c/{dm}/call")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(stranger.post(&format!("/c/{dm}/call"), &[("video", "false")]).await.status, StatusCode::NOT_FOUND);
    assert_eq!(join(&mut stranger, dm).await, StatusCode::NOT_FOUND);
    for action in ["leave", "mute", "deafen", "camera", "screen"] {
        assert_eq!(stranger.post(&format!("/c/{dm}/call/{action}"), &[("on", "true")]).await.status, StatusCode::NOT_FOUND, "{action}");
    }
    assert_eq!(stranger.post(&format!("/c/{dm}/call/decline"), &[("call", &call_field)]).await.status, StatusCode::NOT_FOUND);

    bob.post(&format!("/c/{dm}/call/decline"), &[("call", &call_field)]).await.assert_redirect(&format!("/c/{dm}"));
    bobs_stream.expect(&unrung(&app, call, "bob").await, LIVE).await;
    until_in_conversation(&mut alice, dm, "Missed video call from alice").await;
    assert!(!alice.get(&format!("/c/{dm}/call")).await.body.contains(">Hang up</button>"), "the call ended for the caller too");

    // Nothing of it reached Mallory's stream, waited for as long as Bob's could take.
    let started = Instant::now();
    while let Some(event) = strangers_stream.next(LIVE.saturating_sub(started.elapsed())).await {
        assert!(!event.data.contains("call"), "a stranger's stream carried the call: {}", event.data);
    }
    assert!(started.elapsed() >= LIVE);
}

async fn a_ringing_call_shows_on_every_page_and_declines_without_javascript(app: TestApp) {
    let (mut alice, mut bob, dm) = alice_and_bob(&app).await;
    start(&mut alice, dm, false).await;
    // Loaded with the page (a reload, or no JavaScript): on the home page, the DM, a profile.
    for page in ["/".to_string(), format!("/c/{dm}"), "/u/alice".to_string()] {
        let body = bob.get(&page).await.body;
        assert!(body.contains("<section id=\"call-") && body.contains("alice is calling"), "{page} shows the banner: {body}");
        assert!(body.contains(&format!("<form method=\"post\" action=\"/c/{dm}/call/decline\"")), "{page}: Decline is a plain form");
        assert!(body.contains(&format!("<form method=\"get\" action=\"/c/{dm}/call\"><input type=\"hidden\" name=\"join\" value=\"1\"><button type=\"submit\">Accept</button>")));
    }
    // The call page says what calls need.
    assert!(bob.get(&format!("/c/{dm}/call")).await.body.contains("Calls need JavaScript"));
    let call = banner_call(&bob.get("/").await.body).to_string();
    bob.post(&format!("/c/{dm}/call/decline"), &[("call", &call)]).await.assert_redirect(&format!("/c/{dm}"));
    let page = bob.get(&format!("/c/{dm}")).await.body;
    assert!(!page.contains("is calling"), "declined: no banner any more");
    assert!(page.contains("Missed call from alice"), "{page}");
    // A bad decline is told plainly, never a 500.
    assert_eq!(bob.post(&format!("/c/{dm}/call/decline"), &[("call", "x")]).await.status, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn two_starts_at_once_make_one_call(app: TestApp) {
    let (mut alice, mut bob, dm) = alice_and_bob(&app).await;
    let path = format!("/c/{dm}/call");
    let (a, b) = tokio::join!(alice.post(&path, &[("video", "false")]), bob.post(&path, &[("video", "false")]));
    a.assert_redirect(&format!("/c/{dm}/call?join=1"));
    b.assert_redirect(&format!("/c/{dm}/call?join=1"));
    let sql = "SELECT COUNT(*) FROM calls WHERE conversation_id = $1";
    let calls: i64 = reale::with_db!(app.state.store, pool => sqlx::query_scalar(sql).bind(dm).fetch_one(pool).await).expect("count");
    assert_eq!(calls, 1, "one call, which the second start joins");
    for person in [&mut alice, &mut bob] {
        assert_eq!(join(person, dm).await, StatusCode::OK);
    }
}

async fn a_blocked_person_cannot_call(app: TestApp) {
    let (mut alice, mut bob, dm) = alice_and_bob(&app).await;
    bob.post("/u/alice/block", &[]).await.assert_redirect("/u/alice");
    let refused = alice.post(&format!("/c/{dm}/call"), &[("video", "false")]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("You can&#39;t send messages to this person."), "{}", refused.body);
    assert_eq!(bob.post(&format!("/c/{dm}/call"), &[("video", "false")]).await.status, StatusCode::FORBIDDEN);
    assert!(!bob.get("/").await.body.contains("is calling"));
}

async fn a_member_removed_from_the_group_is_taken_out_of_its_call(app: TestApp) {
    let (mut alice, mut bob, mut carol, group) = alice_bob_and_carol_in_a_group(&app).await;
    let mut carols_stream = carol.events("/events", None).await;
    start(&mut alice, group, false).await;
    let ring = carols_stream.expect("alice is calling in Trip", LIVE).await;
    for person in [&mut alice, &mut bob, &mut carol] {
        assert_eq!(join(person, group).await, StatusCode::OK);
    }
    carols_stream.expect(&unrung(&app, banner_call(&ring.data), "carol").await, LIVE).await;
    let page = format!("/c/{group}/call");
    assert!(alice.get(&page).await.body.contains("data-user-id"), "the call lists who is in");

    let bob_id = crate::moderation::user_id(&app, "bob").await;
    alice.post(&format!("/c/{group}/members/{bob_id}/remove"), &[]).await;
    let started = Instant::now();
    loop {
        let body = alice.get(&page).await.body;
        if !body.contains(&format!("data-user-id=\"{bob_id}\"")) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(1), "a removed member leaves the call within a second");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Alice and Carol talk on: the call goes on until the last one leaves.
    alice.post(&format!("{page}/leave"), &[]).await.assert_redirect(&format!("/c/{group}"));
    assert!(alice.get(&page).await.body.contains(">Hang up</button>"), "Carol is still in the call");
    carol.post(&format!("{page}/leave"), &[]).await.assert_redirect(&format!("/c/{group}"));
    until_in_conversation(&mut carol, group, "Voice call · 0:0").await;
}

async fn a_dm_call_nobody_answers_is_missed(app: TestApp) {
    let (mut alice, mut bob, dm) = alice_and_bob(&app).await;
    let mut bobs_stream = bob.events("/events", None).await;
    start(&mut alice, dm, false).await;
    let ring = bobs_stream.expect("alice is calling", LIVE).await;
    let _alices = talk(&mut alice, dm).await;
    // A second later it stops ringing, ends as missed, and Alice is out of the room.
    bobs_stream.expect(&unrung(&app, banner_call(&ring.data), "bob").await, LIVE).await;
    until_in_conversation(&mut bob, dm, "Missed call from alice").await;
    assert!(!bob.get("/").await.body.contains("is calling"));
    let page = alice.get(&format!("/c/{dm}/call")).await.body;
    assert!(!page.contains("data-user-id") && !page.contains(">Hang up</button>"), "the call is over: {page}");
}

async fn a_group_call_stops_ringing_but_goes_on(app: TestApp) {
    let (mut alice, mut bob, mut carol, group) = alice_bob_and_carol_in_a_group(&app).await;
    let mut carols_stream = carol.events("/events", None).await;
    start(&mut alice, group, false).await;
    let ring = carols_stream.expect("alice is calling in Trip", LIVE).await;
    let (_alices, _bobs) = (talk(&mut alice, group).await, talk(&mut bob, group).await);
    // Carol never answered: after a second her banner goes, and the call goes on.
    carols_stream.expect(&unrung(&app, banner_call(&ring.data), "carol").await, LIVE).await;
    assert!(!carol.get("/").await.body.contains("is calling"));
    let page = carol.get(&format!("/c/{group}")).await.body;
    assert!(page.contains("Call in progress"), "{page}");
    assert!(!page.contains("Missed call"));
}

async fn a_stream_that_connects_after_the_call_started_still_rings(app: TestApp) {
    let (mut alice, mut bob, dm) = alice_and_bob(&app).await;
    start(&mut alice, dm, false).await;
    // Bob's page (re)connects its stream only now: the banner still comes, live.
    let mut bobs_stream = bob.events("/events", None).await;
    bobs_stream.expect("alice is calling", LIVE).await;
}
