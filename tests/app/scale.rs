//! Scale mode (acceptance 3): several instances on one Postgres, joined by Redis.
//!
//! - In process: two instances on one fresh database and the shared Redis. Everything
//!   Alice does on A reaches Bob's stream on B; presence counts her streams on both;
//!   signing out elsewhere on A ends her stream on B.
//! - Two deployments (databases) on one Redis: their equal ids never cross over.
//! - In process, Redis gone: Alice still sends (sessions are in the database) and her
//!   messages on A still reach B (the poll); Redis back (empty): pub/sub and presence
//!   recover without showing anyone offline.
//! - Real processes (harness in `support::cluster`): the server binary twice plus a private redis-server, a burst of
//!   messages alternating between them while instance A is killed (-9) and restarted
//!   and Redis is restarted; Bob's streams must get every message exactly once, in order,
//!   and nobody is signed out.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};

use crate::conversations::{open_dm, send};
use crate::support::cluster::{Browser, Pair, Peer, PrivateRedis, Received, Server, follow, temp_dir};
use crate::support::{Backend, Client, EventStream, PASSWORD, SseEvent, TestApp, redis_url};

const SOON: Duration = Duration::from_secs(3);

async fn user_id(app: &TestApp, username: &str) -> i64 {
    reale::conversations::store::user_by_username(&app.state.store, username).await.expect("query").expect("user").id
}

/// A presence frame about `user` in state `state`.
fn is_presence(event: &SseEvent, user: i64, state: &str) -> bool {
    event.data.contains(&format!("data-each=\".presence-{user}\"")) && event.data.contains(&format!("data-state=\"{state}\""))
}

async fn expect_presence(stream: &mut EventStream, user: i64, state: &str, wait: Duration) -> SseEvent {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match stream.next(left).await {
            Some(event) if is_presence(&event, user, state) => return event,
            Some(_) => continue,
            None => panic!("no presence {state} for user {user} within {wait:?}"),
        }
    }
}

#[tokio::test]
async fn two_instances_share_messages_typing_presence_and_revocation() {
    let redis = redis_url();
    let Some(Pair { a, b, mut alice, mut bob, dm }) = Pair::start(&redis).await else { return };
    let alice_id = user_id(&a, "alice").await;
    let mut bob_stream = bob.events("/events", None).await;
    assert_eq!(bob_stream.status, StatusCode::OK);

    // Alice comes online on A: Bob hears it on B.
    let alice_on_a = alice.events("/events", None).await;
    expect_presence(&mut bob_stream, alice_id, "online", SOON).await;
    assert!(b.state.realtime.online_among(&[alice_id]).await.contains(&alice_id), "B counts her stream on A");

    // A message, an edit, a reaction and a pin, all committed on A.
    let id = send(&mut alice, dm, "hello from A").await;
    let event = bob_stream.expect(&format!("<article id=\"message-{id}\""), SOON).await;
    assert!(event.id.is_some() && event.data.contains("hello from A"));
    let edit = alice.post(&format!("/c/{dm}/m/{id}/edit"), &[("body", "edited on A")]).await;
    assert_eq!(edit.status, StatusCode::SEE_OTHER, "{}", edit.body);
    let event = bob_stream.expect("edited on A", SOON).await;
    assert!(event.data.contains("(edited)"));
    alice.post(&format!("/c/{dm}/m/{id}/react"), &[("emoji", "👍")]).await;
    bob_stream.expect("👍", SOON).await;
    alice.post(&format!("/c/{dm}/m/{id}/pin"), &[]).await;
    bob_stream.expect("Unpin message", SOON).await;

    // Read receipts both ways: Bob writes on B, Alice reads on A.
    let reply = send(&mut bob, dm, "reply from B").await;
    let read = alice.post(&format!("/c/{dm}/read"), &[("up_to", &reply.to_string())]).await;
    assert_eq!(read.status, StatusCode::NO_CONTENT);
    bob_stream.expect(">Seen</p>", SOON).await;

    // Typing on A shows on B, and goes as soon as she sends.
    assert_eq!(alice.post(&format!("/c/{dm}/typing"), &[]).await.status, StatusCode::NO_CONTENT);
    bob_stream.expect("alice is typing…", SOON).await;
    send(&mut alice, dm, "done typing").await;
    let cleared = bob_stream.expect(&format!("id=\"typing-{dm}\""), SOON).await;
    assert!(!cleared.data.contains("is typing"), "{}", cleared.data);

    // Presence counts streams on both instances: with one left on B, closing A's
    // stream is not going offline.
    let mut alice_tab = Client::new(b.router.clone());
    alice_tab.cookies = alice.cookies.clone();
    let alice_on_b = alice_tab.events("/events", None).await;
    assert_eq!(alice_on_b.status, StatusCode::OK);
    drop(alice_on_a);
    let quiet_until = tokio::time::Instant::now() + reale::accounts::presence::GRACE + Duration::from_millis(2_000);
    while let Some(event) = bob_stream.next(quiet_until.saturating_duration_since(tokio::time::Instant::now())).await {
        assert!(!is_presence(&event, alice_id, "offline"), "offline while a stream on B is open: {}", event.data);
    }
    assert!(a.state.realtime.online_among(&[alice_id]).await.contains(&alice_id), "A still counts her stream on B");
    drop(alice_on_b);
    let started = Instant::now();
    let offline = expect_presence(&mut bob_stream, alice_id, "offline", Duration::from_secs(12)).await;
    assert!(offline.data.contains("Last seen"), "{}", offline.data);
    eprintln!("scale: alice offline {:?} after her last stream (on B) closed", started.elapsed());

    // Signing out everywhere else on A ends her phone's stream on B within a second.
    let mut phone = b.client();
    phone.login("alice", PASSWORD).await.assert_redirect("/");
    let mut phone_stream = phone.events("/events", None).await;
    assert_eq!(phone_stream.status, StatusCode::OK);
    let mut bob_other_tab = bob.events("/events", None).await;
    alice.post("/settings/sessions/revoke-others", &[]).await.assert_redirect("/settings/sessions");
    let started = Instant::now();
    assert!(phone_stream.ends_within(Duration::from_secs(1)).await, "the revoked device's stream on B ended");
    eprintln!("scale: revoked stream on B ended {:?} after the sign-out on A", started.elapsed());
    let mut last = None;
    while let Some(event) = phone_stream.next(Duration::from_millis(10)).await {
        last = Some(event.name);
    }
    assert_eq!(last.as_deref(), Some("resync"));
    assert!(!bob_other_tab.ends_within(Duration::from_millis(300)).await, "other users' streams stay");
}

/// Two instances on one database and no Redis at all: a sign-out on one reaches a
/// stream on the other through the periodic device check, not a message.
async fn a_sign_out_on_one_instance_ends_the_stream_on_another_without_redis(backend: Backend) {
    let Some(a) = TestApp::spawn_with(backend, crate::support::FLOW_ARGS).await else {
        return;
    };
    let b = Peer::start_with(&a, None, crate::support::FLOW_ARGS).await;
    let mut laptop = a.client();
    laptop.register("alice").await;
    let mut phone = b.client().from_ip([127, 0, 0, 5]);
    phone.login("alice", PASSWORD).await.assert_redirect("/");
    let mut phone_stream = phone.events("/events", None).await;
    assert_eq!(phone_stream.status, StatusCode::OK);

    laptop.post("/settings/sessions/revoke-others", &[]).await.assert_redirect("/settings/sessions");
    let wait = reale::realtime::REVOCATION_CHECK + Duration::from_secs(5);
    assert_eq!(phone_stream.expect("signed out", wait).await.name, "resync");
    assert!(phone_stream.ends_within(Duration::from_secs(2)).await);
}

#[tokio::test]
async fn without_redis_a_sign_out_reaches_the_other_instance_on_sqlite() {
    a_sign_out_on_one_instance_ends_the_stream_on_another_without_redis(Backend::Sqlite).await;
}

#[tokio::test]
async fn without_redis_a_sign_out_reaches_the_other_instance_on_postgres() {
    a_sign_out_on_one_instance_ends_the_stream_on_another_without_redis(Backend::Postgres).await;
}

/// Acceptance 5: the limit is one budget in Redis, not one per instance. Alice creates
/// groups round-robin on three instances with a limit of 3 a minute: three pass in
/// all (each instance keeping its own count would let all nine through).
#[tokio::test]
async fn three_instances_behind_one_redis_enforce_one_limit() {
    let redis = redis_url();
    let limits = ["--send-limit", "100000", "--create-limit", "3"];
    let mut args = vec!["--redis-url", redis.as_str()];
    args.extend(limits);
    let Some(a) = TestApp::spawn_with(Backend::Postgres, &args).await else {
        return;
    };
    let b = Peer::start_with(&a, Some(&redis), &limits).await;
    let c = Peer::start_with(&a, Some(&redis), &limits).await;
    let mut on_a = a.client();
    on_a.register("alice").await;
    let mut alice = [on_a.clone(), on_a.on(b.router.clone()), on_a.on(c.router.clone())];
    let mut created = 0;
    let mut slowed = 0;
    for n in 0..9 {
        let name = format!("Group number {n}");
        let response = alice[n % 3].post("/groups", &[("name", &name), ("members", "")]).await;
        match response.status {
            StatusCode::SEE_OTHER => created += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                slowed += 1;
                assert!(response.body.contains(&name), "the group name is kept: {}", response.body);
                assert!(!response.header("retry-after").is_empty());
            }
            other => panic!("unexpected {other}: {}", response.body),
        }
    }
    assert_eq!((created, slowed), (3, 6), "one limit across three instances");
}

/// Two deployments (two databases) on one Redis: their user, conversation and device
/// ids coincide, yet neither hears the other's typing, presence or sign-outs.
#[tokio::test]
async fn deployments_sharing_a_redis_stay_apart() {
    let redis = redis_url();
    let args = ["--redis-url", redis.as_str(), "--send-limit", "100000", "--write-limit", "100000", "--create-limit", "100000"];
    let Some(x) = TestApp::spawn_with(Backend::Postgres, &args).await else { return };
    let Some(y) = TestApp::spawn_with(Backend::Postgres, &args).await else { return };
    let mut people = Vec::new();
    for app in [&x, &y] {
        let mut alice = app.client();
        alice.register("alice").await;
        let mut bob = app.client();
        bob.register("bob").await;
        let dm = open_dm(&mut alice, "bob").await;
        people.push((alice, bob, dm, user_id(app, "alice").await));
    }
    let [(mut x_alice, _, x_dm, x_alice_id), (mut y_alice, mut y_bob, y_dm, y_alice_id)] = people.try_into().ok().expect("two");
    assert_eq!((x_dm, x_alice_id), (y_dm, y_alice_id), "the same ids in both databases");

    let mut y_bob_stream = y_bob.events("/events", None).await;
    let mut y_alice_stream = y_alice.events("/events", None).await;
    expect_presence(&mut y_bob_stream, y_alice_id, "online", SOON).await;
    let y_only = y.state.realtime.online_among(&[y_alice_id]).await;
    drop(y_alice_stream);
    // Y's Alice goes offline (after the grace period) while X's Alice is online.
    let x_alice_stream = x_alice.events("/events", None).await;
    expect_presence(&mut y_bob_stream, y_alice_id, "offline", Duration::from_secs(10)).await;
    assert!(y_only.contains(&y_alice_id));
    assert!(!y.state.realtime.online_among(&[y_alice_id]).await.contains(&y_alice_id), "X's Alice is not Y's");

    // Typing in X's conversation 1 is not typing in Y's.
    x_alice.post(&format!("/c/{x_dm}/typing"), &[]).await;
    while let Some(event) = y_bob_stream.next(Duration::from_millis(700)).await {
        assert!(!event.data.contains("is typing"), "typing leaked across deployments: {}", event.data);
    }

    // Signing out device 1 in X leaves device 1 in Y streaming.
    y_alice_stream = y_alice.events("/events", None).await;
    x_alice.post("/logout", &[]).await.assert_redirect("/login");
    drop(x_alice_stream);
    assert!(!y_alice_stream.ends_within(Duration::from_millis(700)).await, "a sign-out in X ended a stream in Y");
}

/// With Redis gone, pub/sub wakes nobody: B still delivers A's commits, from the poll.
#[tokio::test]
async fn without_redis_events_committed_on_one_instance_still_reach_the_other() {
    let Some(mut redis) = PrivateRedis::start().await else { return };
    let url = redis.url();
    let Some(Pair { a, b, mut alice, mut bob, dm }) = Pair::start(&url).await else { return };
    let alice_id = user_id(&a, "alice").await;
    let mut bob_stream = bob.events("/events", None).await;
    let _alice_stream = alice.events("/events", None).await;
    expect_presence(&mut bob_stream, alice_id, "online", SOON).await;
    let first = send(&mut alice, dm, "through Redis").await;
    bob_stream.expect(&format!("message-{first}"), SOON).await;

    // Sessions live in the database, so with Redis dead Alice still sends over HTTP.
    redis.kill();
    let mut worst = Duration::ZERO;
    for n in 0..3 {
        let id = send(&mut alice, dm, &format!("no Redis {n}")).await;
        let started = Instant::now();
        bob_stream.expect(&format!("<article id=\"message-{id}\""), Duration::from_secs(3)).await;
        let took = started.elapsed();
        assert!(took <= Duration::from_millis(2_000), "message {n} reached B after {took:?}");
        worst = worst.max(took);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    eprintln!("scale: without Redis, A's commits reached B's stream within {worst:?}");

    // Redis back (empty): B resubscribes, so typing from A shows on B again.
    redis.restart().await;
    let back = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        a.state.realtime.typing_ping(dm, alice_id, "alice").await;
        match bob_stream.next(Duration::from_millis(300)).await {
            Some(event) if event.data.contains("alice is typing…") => break,
            _ => assert!(tokio::time::Instant::now() < deadline, "typing never crossed over after Redis came back"),
        }
    }
    eprintln!("scale: cross-instance typing worked again {:?} after Redis restarted", back.elapsed());

    // A quick restart (nothing queued meanwhile) leaves Redis empty, without Alice's
    // presence: until A writes it again she is missing, not gone. A writes it as soon as
    // it is back, whenever its next refresh is due; Bob never sees her offline.
    tokio::time::sleep(Duration::from_millis(rand::random_range(0..5_000))).await;
    redis.restart().await;
    let restarted = Instant::now();
    while !b.state.realtime.online_among(&[alice_id]).await.contains(&alice_id) {
        assert!(restarted.elapsed() < Duration::from_secs(2), "B counted Alice offline for 2 s after Redis restarted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("scale: after a quick Redis restart, B counted Alice online again within {:?}", restarted.elapsed());
    let watch_until = restarted + Duration::from_secs(11);
    while let Some(event) = bob_stream.next(watch_until.saturating_duration_since(Instant::now())).await {
        assert!(!is_presence(&event, alice_id, "offline"), "Alice shown offline after Redis restarted: {}", event.data);
    }
    assert!(b.state.realtime.online_among(&[alice_id]).await.contains(&alice_id), "B counts her stream on A again");
}

/// Bob's events in `(after, upto]`, as the database has them (what `/events` replays).
async fn bob_events(pool: &sqlx::PgPool, bob: i64, after: i64, upto: i64) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT id FROM events WHERE id > $1 AND id <= $2
           AND (user_id = $3 OR conversation_id IN (SELECT conversation_id FROM members WHERE user_id = $3))
         ORDER BY id",
    )
    .bind(after)
    .bind(upto)
    .bind(bob)
    .fetch_all(pool)
    .await
    .expect("events")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Acceptance 3: two server processes on one Postgres and a private Redis. Alice sends
/// a burst alternating between them while A is killed -9 and restarted and Redis is
/// restarted; each of Bob's devices gets every message once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_an_instance_and_restarting_redis_loses_and_duplicates_nothing() {
    const MESSAGES: usize = 300;
    let Some(mut redis) = PrivateRedis::start().await else { return };
    // The database (created, migrated, dropped at the end) comes from a TestApp.
    let Some(db) = TestApp::spawn(Backend::Postgres).await else { return };
    let reale::store::Db::Postgres(pool) = db.state.store.db.clone() else { unreachable!() };
    let database_url = db.state.config.database_url();
    let dir = temp_dir("reale_scale");
    std::fs::create_dir_all(&dir).expect("dir");
    let mut a = Server::new("a", &database_url, &redis.url(), &dir);
    let mut b = Server::new("b", &database_url, &redis.url(), &dir);
    a.start().await;
    b.start().await;
    let (addr_a, addr_b) = (a.addr, b.addr);

    let run = async {
        let mut alice = Browser::new("alice");
        alice.register(addr_a).await;
        let mut bob = Browser::new("bob");
        bob.register(addr_b).await;
        let no_fields: &[(&str, &str)] = &[];
        let opened = alice.call(addr_a, Method::POST, "/u/bob/message", Some(no_fields)).await.expect("open dm");
        let dm: i64 = opened.location.trim_start_matches("/c/").parse().expect("dm id");
        let bob_id: i64 = sqlx::query_scalar("SELECT id FROM users WHERE username = 'bob'").fetch_one(&pool).await.expect("bob");
        let start: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM events").fetch_one(&pool).await.expect("newest");

        // Bob's phone streams from B; his laptop from A (which will die under it).
        let stop = Arc::new(AtomicBool::new(false));
        let phone = Arc::new(Mutex::new(Received::default()));
        let laptop = Arc::new(Mutex::new(Received::default()));
        let mut bob_laptop = Browser::new("bob");
        bob_laptop.login(addr_a).await.expect("bob signs in on A");
        let followers = [
            tokio::spawn(follow(bob.clone(), [addr_b, addr_a], start, phone.clone(), stop.clone())),
            tokio::spawn(follow(bob_laptop, [addr_a, addr_b], start, laptop.clone(), stop.clone())),
        ];
        let deadline = Instant::now() + Duration::from_secs(5);
        while phone.lock().expect("lock").connections.is_empty() || laptop.lock().expect("lock").connections.is_empty() {
            assert!(Instant::now() < deadline, "Bob's streams did not open");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // The burst, and the chaos alongside it.
        let progress = Arc::new(AtomicUsize::new(0));
        // Set while a send to A is under way, so A can be killed in the middle of one.
        let sending_to_a = Arc::new(AtomicBool::new(false));
        let burst = {
            let (progress, sending_to_a) = (progress.clone(), sending_to_a.clone());
            let mut alice = alice.clone();
            async move {
                let instances = [addr_a, addr_b];
                let mut acked: Vec<(i64, Instant)> = Vec::new();
                let (mut failures, mut relogins, mut retried) = (0, 0, 0);
                let mut stalls: Vec<(usize, Duration)> = Vec::new();
                // The first send that failed on a dead A, and how its attempts went.
                let mut first_hit: Option<(usize, Vec<String>)> = None;
                for n in 0..MESSAGES {
                    let client_id = format!("burst-{n}");
                    let body = format!("burst message {n}");
                    let mut target = n % 2;
                    let began = Instant::now();
                    let mut attempts = 0;
                    let mut tried: Vec<String> = Vec::new();
                    let id = loop {
                        assert!(began.elapsed() < Duration::from_secs(30), "message {n} could not be sent for 30 s");
                        attempts += 1;
                        let form = [("body", body.as_str()), ("client_id", client_id.as_str())];
                        let path = format!("/c/{dm}/messages");
                        sending_to_a.store(target == 0, Ordering::SeqCst);
                        let outcome = alice.call(instances[target], Method::POST, &path, Some(&form)).await;
                        sending_to_a.store(false, Ordering::SeqCst);
                        let instance = if target == 0 { "A" } else { "B" };
                        tried.push(match &outcome {
                            Ok(reply) => format!("{instance}: {} {}", reply.status.as_u16(), reply.location),
                            Err(why) => format!("{instance}: {}", why.chars().take(100).collect::<String>()),
                        });
                        match outcome {
                            Ok(reply) if reply.status == StatusCode::SEE_OTHER && reply.location.contains("#message-") => {
                                break reply.location.rsplit("#message-").next().and_then(|id| id.parse::<i64>().ok()).expect("id");
                            }
                            Ok(reply) if reply.status == StatusCode::SEE_OTHER && reply.location.starts_with("/login") => {
                                // Signed out: a failure, asserted after the burst.
                                relogins += 1;
                                if alice.login(instances[target]).await.is_err() {
                                    target = 1 - target;
                                }
                            }
                            _ => {
                                failures += 1;
                                target = 1 - target;
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                        }
                    };
                    if attempts > 1 {
                        if first_hit.is_none() && tried[0].starts_with("A") {
                            first_hit = Some((n, tried.clone()));
                        }
                        retried += 1;
                        stalls.push((n, began.elapsed()));
                    }
                    acked.push((id, began));
                    progress.store(n + 1, Ordering::SeqCst);
                }
                (acked, failures, relogins, retried, stalls, first_hit)
            }
        };
        let chaos = async {
            let wait_for = |count: usize| {
                let progress = progress.clone();
                async move {
                    while progress.load(Ordering::SeqCst) < count {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            };
            wait_for(MESSAGES / 4).await;
            // In the middle of a send to A: before, during or after its commit.
            let started = Instant::now();
            while !sending_to_a.load(Ordering::SeqCst) && started.elapsed() < Duration::from_secs(2) {
                tokio::task::yield_now().await;
            }
            tokio::time::sleep(Duration::from_micros(rand::random_range(0..6_000))).await;
            let killed_a = Instant::now();
            let killed_a_ms = reale::store::now_ms();
            a.kill();
            let at_kill = progress.load(Ordering::SeqCst);
            wait_for(MESSAGES * 5 / 12).await;
            a.start().await;
            let restarted_a = Instant::now();
            wait_for(MESSAGES * 7 / 12).await;
            let killed_redis = Instant::now();
            redis.kill();
            let at_redis = progress.load(Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(300)).await;
            redis.restart().await;
            let restarted_redis = Instant::now();
            (killed_a, killed_a_ms, at_kill, restarted_a, killed_redis, at_redis, restarted_redis)
        };
        let (
            (acked, failures, relogins, retried, stalls, first_hit),
            (killed_a, killed_a_ms, at_kill, restarted_a, killed_redis, at_redis, restarted_redis),
        ) = tokio::join!(burst, chaos);
        let sent_ids: Vec<i64> = acked.iter().map(|(id, _)| *id).collect();

        // The database: exactly one message per client id, in send order.
        let stored: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, client_id FROM messages WHERE conversation_id = $1 AND kind = 'text' ORDER BY id")
                .bind(dm)
                .fetch_all(&pool)
                .await
                .expect("messages");
        assert_eq!(stored.len(), MESSAGES, "one message per client id, retries included");
        assert_eq!(stored.iter().map(|(id, _)| *id).collect::<Vec<_>>(), sent_ids, "ids ascend in send order");
        for (n, (_, client_id)) in stored.iter().enumerate() {
            assert_eq!(client_id, &format!("burst-{n}"));
        }

        // Wait for Bob's devices to catch up with everything logged for him.
        let end: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM events").fetch_one(&pool).await.expect("newest");
        let expected = bob_events(&pool, bob_id, start, end).await;
        let caught_up = |r: &Arc<Mutex<Received>>| r.lock().expect("lock").last_id.is_some_and(|id| id >= end);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(caught_up(&phone) && caught_up(&laptop)) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let settled = Instant::now();
        stop.store(true, Ordering::SeqCst);
        for follower in followers {
            let _ = tokio::time::timeout(Duration::from_secs(2), follower).await;
        }

        // A fresh stream on the restarted A replays the whole burst from the page's cursor.
        let mut fresh = Browser::new("bob");
        fresh.login(addr_a).await.expect("bob signs in on the restarted A");
        let replayed = Arc::new(Mutex::new(Received::default()));
        let replay_stop = Arc::new(AtomicBool::new(false));
        let replayer = tokio::spawn(follow(fresh, [addr_a, addr_b], start, replayed.clone(), replay_stop.clone()));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !caught_up(&replayed) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        replay_stop.store(true, Ordering::SeqCst);
        let _ = tokio::time::timeout(Duration::from_secs(2), replayer).await;

        // Bob's page shows the newest messages as the database has them.
        let page = bob.page(addr_b, &format!("/c/{dm}")).await;
        assert_eq!(page.status, StatusCode::OK, "Bob's page on B led to {:?}", page.location);
        let on_page: Vec<i64> =
            page.body.split("<article id=\"message-").skip(1).filter_map(|s| s.split('"').next()?.parse().ok()).collect();
        assert!(!on_page.is_empty() && sent_ids.ends_with(&on_page), "Bob's page ends with the sent messages: {on_page:?}");

        eprintln!(
            "scale: {MESSAGES} messages alternating A/B; {retried} needed a retry ({failures} failed requests, {relogins} re-sign-ins)"
        );
        assert_eq!(relogins, 0, "Alice was signed out (sessions must outlive Redis and instances)");
        eprintln!(
            "scale: A killed -9 after message {at_kill}, back after {:?}; Redis killed after message {at_redis}, back after {:?}",
            restarted_a - killed_a,
            restarted_redis - killed_redis
        );
        if let Some((n, tried)) = &first_hit {
            let created_at: i64 = sqlx::query_scalar("SELECT created_at FROM messages WHERE client_id = $1")
                .bind(format!("burst-{n}"))
                .fetch_one(&pool)
                .await
                .expect("message");
            let when = if created_at <= killed_a_ms { "committed by A before it died" } else { "committed by B" };
            eprintln!("scale: message {n} was cut off on A ({when}); attempts: {tried:?}");
        }
        let recovered = |from: Instant| acked.iter().find(|(_, began)| *began >= from).map(|(_, began)| *began - from);
        eprintln!(
            "scale: slowest sends {:?}; first send begun after the kill of A {:?}, after the kill of Redis {:?}",
            { let mut s = stalls.clone(); s.sort_by_key(|(_, d)| std::cmp::Reverse(*d)); s.truncate(3); s },
            recovered(killed_a),
            recovered(killed_redis),
        );
        let sent_at: std::collections::HashMap<i64, Instant> = acked.iter().copied().collect();
        for (device, received) in [("phone (B)", &phone), ("laptop (A, then B)", &laptop), ("fresh stream on restarted A", &replayed)] {
            let received = received.lock().expect("lock");
            let got: Vec<i64> = received.messages.iter().map(|(id, _)| *id).collect();
            let lost = sent_ids.iter().filter(|id| !got.contains(id)).count();
            let mut seen = std::collections::HashSet::new();
            let duplicated = got.iter().filter(|id| !seen.insert(**id)).count();
            let out_of_order = got.windows(2).filter(|w| w[0] >= w[1]).count();
            let mut latencies: Vec<Duration> = received
                .messages
                .iter()
                .filter_map(|(id, at)| Some(at.saturating_duration_since(*sent_at.get(id)?)))
                .collect();
            latencies.sort();
            eprintln!(
                "scale: Bob's {device}: {} messages, {lost} lost, {duplicated} duplicated, {out_of_order} out of order; {} events over {} connection(s) {:?}, reconnect gaps {:?}; since sending p50 {:?} p99 {:?} max {:?}",
                got.len(),
                received.events.len(),
                received.connections.len(),
                received.connections.iter().map(|(addr, cursor)| format!("{}@{cursor:?}", if *addr == addr_a { "A" } else { "B" })).collect::<Vec<_>>(),
                received.outages,
                percentile(&latencies, 0.5),
                percentile(&latencies, 0.99),
                latencies.last().copied().unwrap_or_default(),
            );
            assert!(received.violations.is_empty(), "{device}: the server sent {:?}", received.violations);
            assert_eq!(received.relogins, 0, "{device}: Bob was signed out");
            let events: Vec<i64> = received.events.iter().copied().filter(|&id| id <= end).collect();
            assert_eq!(events, expected, "{device}: every event logged for Bob, once, in order");
            assert_eq!(got, sent_ids, "{device}: every message once, in send order");
        }
        eprintln!("scale: Bob's devices had everything {:?} after the last send", settled - acked.last().map(|(_, at)| *at).unwrap_or(settled));
    };
    if tokio::time::timeout(Duration::from_secs(90), run).await.is_err() {
        panic!("the scale test took over 90 s\n--- a ---\n{}\n--- b ---\n{}", a.log_tail(), b.log_tail());
    }
    drop((a, b));
    let _ = std::fs::remove_dir_all(&dir);
}
