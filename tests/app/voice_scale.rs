//! Voice across instances (issue 13, acceptance 5): two instances on one Postgres and
//! Redis, Alice joining a voice channel through one and Bob through the other. Each
//! room lives on one instance, so Bob's offer is answered by Alice's instance's SFU,
//! both hear each other, and both instances show the same roster, live. When the
//! room's instance dies, the others clear its roster and the next join takes the room
//! to a live instance. The str0m clients of `support::rtc` play the browsers.

use std::time::{Duration, Instant};

use axum::http::StatusCode;

use crate::servers::{create_server, invite};
use crate::support::cluster::{Browser, Pair, Server, temp_dir};
use crate::support::rtc::{Offering, answer_port};
use crate::support::{Backend, Client, EventStream, TestApp, redis_url};
use crate::voice::{roster, voice_channel};

/// Alice's server with Bob joined (each on their own instance); its voice channel.
async fn voice_club(alice: &mut Client, bob: &mut Client) -> i64 {
    voice_server(alice, bob).await.1
}

/// Alice's server with Bob joined, and its voice channel.
async fn voice_server(alice: &mut Client, bob: &mut Client) -> (i64, i64) {
    let server = create_server(alice, "Voice club").await;
    let code = invite(alice, server, "0", "0").await;
    bob.post(&format!("/i/{code}"), &[]).await.assert_redirect(&format!("/s/{server}"));
    (server, voice_channel(&alice.get(&format!("/s/{server}")).await.body, "General"))
}

/// Waits for a live roster of `room` whose names satisfy `done`; those names.
async fn roster_frame(stream: &mut EventStream, room: i64, wait: Duration, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut last = None;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(event) = stream.next(left).await else { panic!("no roster of {room} as expected within {wait:?}; the last one read {last:?}") };
        if !event.data.contains(&format!("voice-roster voice-{room}\"")) {
            continue;
        }
        let names = roster(&event.data, room);
        if done(&names) {
            return names;
        }
        last = Some(names);
    }
}

async fn joined(client: &mut Client, room: i64) -> (String, Offering) {
    let offering = Offering::new();
    let reply = client.post_raw(&format!("/v/{room}/rtc"), offering.json.clone().into_bytes(), "application/json").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    (reply.body, offering)
}

#[tokio::test]
async fn alice_on_one_instance_and_bob_on_another_hear_each_other() {
    let Some(Pair { a: _a, b, mut alice, mut bob, .. }) = Pair::start(&redis_url()).await else { return };
    let room = voice_club(&mut alice, &mut bob).await;
    let mut alice_stream = alice.events("/events", None).await;
    let mut bob_stream = bob.events("/events", None).await;

    let (alice_reply, alice_client) = joined(&mut alice, room).await;
    let (bob_reply, bob_client) = joined(&mut bob, room).await;
    // Bob's offer went to B and was answered by the SFU of A, which holds the room.
    assert_eq!(answer_port(&bob_reply), answer_port(&alice_reply), "both answers name the room's SFU");
    let (alice_client, bob_client) = (alice_client.answered(&alice_reply), bob_client.answered(&bob_reply));
    let (heard_by_alice, heard_by_bob) = (alice_client.hears(25, Duration::from_secs(10)).await, bob_client.hears(25, Duration::from_secs(10)).await);
    assert!(heard_by_alice >= 25 && heard_by_bob >= 25, "Alice heard {heard_by_alice} packets of Bob's, Bob {heard_by_bob} of Alice's");

    // The roster is the same everywhere: live on B's stream, and on B's pages.
    let both = |names: &[String]| names == ["alice", "bob"];
    roster_frame(&mut bob_stream, room, Duration::from_secs(3), both).await;
    assert_eq!(roster(&bob.get(&format!("/v/{room}")).await.body, room), ["alice", "bob"]);
    roster_frame(&mut alice_stream, room, Duration::from_secs(3), both).await;

    // Bob turns his camera on, mutes and leaves through B; A's viewers see it.
    bob.post(&format!("/v/{room}/camera"), &[("on", "true")]).await.assert_redirect(&format!("/v/{room}"));
    bob.post(&format!("/v/{room}/mute"), &[("on", "true")]).await.assert_redirect(&format!("/v/{room}"));
    let page = alice.get(&format!("/v/{room}")).await.body;
    assert!(page.contains("bob<span class=\"visually-hidden\">, muted</span><span class=\"visually-hidden\">, camera on</span>"), "Bob's camera and mute on B reached A's roster: {page}");
    bob.post(&format!("/v/{room}/leave"), &[]).await.assert_redirect(&format!("/v/{room}"));
    roster_frame(&mut alice_stream, room, Duration::from_secs(3), |names| names == ["alice"]).await;
    assert_eq!(roster(&alice.get(&format!("/v/{room}")).await.body, room), ["alice"]);
    assert_eq!(roster(&bob.get(&format!("/v/{room}")).await.body, room), ["alice"]);
    drop((alice_client, bob_client, b));
}

#[tokio::test]
async fn joining_a_room_held_elsewhere_leaves_the_first_and_moderation_reaches_the_rooms_instance() {
    let Some(Pair { a, b: _b, mut alice, mut bob, .. }) = Pair::start(&redis_url()).await else { return };
    let (server, general) = voice_server(&mut alice, &mut bob).await;
    let created = alice.post(&format!("/s/{server}/channels"), &[("kind", "voice"), ("name", "Lounge"), ("category", "none")]).await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let lounge = voice_channel(&alice.get(&format!("/s/{server}")).await.body, "Lounge");

    // General lives on B (Bob joined it there first), Lounge on A (Alice's).
    let (bob_reply, _bob_offer) = joined(&mut bob, general).await;
    let (alice_reply, _alice_offer) = joined(&mut alice, lounge).await;
    assert_ne!(answer_port(&bob_reply), answer_port(&alice_reply), "two rooms, two instances");
    // Alice moves to General through A: B answers, and A takes her out of Lounge.
    let (reply, _offer) = joined(&mut alice, general).await;
    assert_eq!(answer_port(&reply), answer_port(&bob_reply), "General's SFU (B's) answered");
    let page = alice.get(&format!("/s/{server}")).await.body;
    assert!(roster(&page, lounge).is_empty(), "Alice left Lounge");
    assert_eq!(roster(&page, general), ["bob", "alice"]);

    // Back to Lounge (on A). Moving Bob there from General (on B) would need another
    // SFU for his connection: refused, and said why.
    let (reply, _offer) = joined(&mut alice, lounge).await;
    assert_eq!(answer_port(&reply), answer_port(&alice_reply), "Lounge is still A's");
    let bob_id = crate::moderation::user_id(&a, "bob").await;
    let moved = alice.post(&format!("/v/{general}/members/{bob_id}/move"), &[("to", &lounge.to_string())]).await;
    assert_eq!(moved.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(moved.body.contains("bob cannot be moved to Lounge now: it runs on another server instance."), "{}", moved.body);
    assert_eq!(roster(&bob.get(&format!("/v/{general}")).await.body, general), ["bob"]);

    // Alice, on A, disconnects Bob from General, which lives on B.
    alice.post(&format!("/v/{general}/members/{bob_id}/disconnect"), &[]).await.assert_redirect(&format!("/v/{general}"));
    assert!(roster(&alice.get(&format!("/v/{general}")).await.body, general).is_empty());
    assert!(roster(&bob.get(&format!("/v/{general}")).await.body, general).is_empty());
    let rows = reale::servers::audit::list(&a.state.store, server, None, None, None).await.expect("audit");
    assert!(rows.iter().any(|r| r.action == "voice_disconnect" && r.target_name == "bob"), "the audit log says so");

    // Bob is back in General (on B); kicked on A, he is out within a second: the room's
    // instance rechecks its people against the shared database.
    let (_reply, _offer) = joined(&mut bob, general).await;
    assert_eq!(roster(&alice.get(&format!("/v/{general}")).await.body, general), ["bob"]);
    alice.post(&format!("/s/{server}/members/{bob_id}/kick"), &[("reason", "")]).await.assert_redirect(&format!("/s/{server}"));
    let kicked = Instant::now();
    while !roster(&alice.get(&format!("/v/{general}")).await.body, general).is_empty() {
        assert!(kicked.elapsed() < Duration::from_secs(1), "a member kicked on A is still in B's room after a second");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn when_the_rooms_instance_dies_the_room_is_cleared_and_moves_to_a_live_one() {
    let redis = redis_url();
    let lifted = ["--redis-url", redis.as_str(), "--send-limit", "100000", "--write-limit", "100000", "--create-limit", "100000"];
    // B runs in process (and made the database); A is the server binary, to be killed.
    let Some(b) = TestApp::spawn_with(Backend::Postgres, &lifted).await else { return };
    let dir = temp_dir("reale_voice_scale");
    std::fs::create_dir_all(&dir).expect("dir");
    let mut a = Server::new("a", &b.state.config.database_url(), &redis, &dir);
    a.args.extend(["--rtc-port", "0", "--rtc-public-ip", "127.0.0.1"].map(String::from));
    a.start().await;

    let (mut alice, mut bob) = (b.client(), b.client().fresh());
    alice.register("alice").await;
    bob.register("bob").await;
    let room = voice_club(&mut alice, &mut bob).await;
    let mut bob_stream = bob.events("/events", None).await;

    // Alice joins through A: the room lives there.
    let mut alice_on_a = Browser::new("alice");
    alice_on_a.login(a.addr).await.expect("Alice signs in on A");
    let offering = Offering::new();
    let reply = alice_on_a.post_json(a.addr, &format!("/v/{room}/rtc"), &offering.json).await.expect("join on A");
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let port_a = answer_port(&reply.body);
    let alice_client = offering.answered(&reply.body);
    roster_frame(&mut bob_stream, room, Duration::from_secs(3), |names| names == ["alice"]).await;
    assert_eq!(roster(&bob.get(&format!("/v/{room}")).await.body, room), ["alice"], "B's page shows the room A holds");

    a.kill();
    let killed = Instant::now();
    // At once, A's claim still stands: the join is asked of A, which cannot answer.
    let refused = bob.post_raw(&format!("/v/{room}/rtc"), Offering::new().json.into_bytes(), "application/json").await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE, "{}", refused.body);
    assert_eq!(refused.body, "The server holding this voice room did not answer. Try again in a few seconds.");
    // B's viewers are told the room is gone (no instance holds it any more).
    roster_frame(&mut bob_stream, room, Duration::from_secs(6), <[String]>::is_empty).await;
    assert!(roster(&bob.get(&format!("/v/{room}")).await.body, room).is_empty());

    // Bob's join through B lands once A's claim has expired: the room moved to B.
    let (reply, offering) = loop {
        let offering = Offering::new();
        let reply = bob.post_raw(&format!("/v/{room}/rtc"), offering.json.clone().into_bytes(), "application/json").await;
        if reply.status == StatusCode::OK {
            break (reply, offering);
        }
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{}", reply.body);
        assert!(reply.body.contains("did not answer"), "a clear message: {}", reply.body);
        assert!(killed.elapsed() < Duration::from_secs(10), "the room did not move within 10 s of A dying: {}", reply.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_ne!(answer_port(&reply.body), port_a, "answered by B's SFU");
    let bob_client = offering.answered(&reply.body);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !bob_client.connected() {
        assert!(Instant::now() < deadline, "Bob's connection to B's SFU did not come up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    roster_frame(&mut bob_stream, room, Duration::from_secs(3), |names| names == ["bob"]).await;
    drop((alice_client, bob_client));
}
