//! Sessions: every store write succeeds under contention, and with Redis the database
//! keeps the sessions, so a Redis restart signs nobody out.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use fred::prelude::{ClientLike, KeysInterface};
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::SessionStore;

use crate::support::cluster::{Pair, PrivateRedis};
use crate::support::{Backend, Client, PASSWORD, TestApp};

fn record(device: i64) -> Record {
    let mut data = std::collections::HashMap::new();
    data.insert("device".to_string(), serde_json::json!(device));
    Record { id: Id::default(), data, expiry_date: time::OffsetDateTime::now_utc() + time::Duration::days(30) }
}

/// 32 people signing in at once on SQLite, while 32 more sessions are created and
/// saved straight on the store: not one write fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_concurrent_sign_ins_and_saves_on_sqlite_all_succeed() {
    let app = TestApp::spawn(Backend::Sqlite).await.expect("sqlite always works");
    for n in 0..32 {
        // One address each: registration and sign-in are rate limited per address.
        app.client().from_ip([10, 0, 0, n + 1]).register(&format!("user{n}")).await;
    }
    let store = Arc::new(app.state.sessions.clone());
    let mut tasks = Vec::new();
    for n in 0..32i64 {
        let mut client = app.client().from_ip([10, 0, 0, n as u8 + 1]);
        tasks.push(tokio::spawn(async move {
            let mut errors = Vec::new();
            let response = client.login(&format!("user{n}"), PASSWORD).await;
            if response.status != StatusCode::SEE_OTHER || response.location() != Some("/") {
                errors.push(format!("login {n}: {} {}", response.status, response.body.chars().take(200).collect::<String>()));
            }
            for _ in 0..5 {
                let page = client.get("/").await;
                if page.status != StatusCode::OK {
                    errors.push(format!("page {n}: {} {}", page.status, page.body.chars().take(200).collect::<String>()));
                }
            }
            errors
        }));
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut errors = Vec::new();
            for round in 0..20 {
                let mut record = record(n);
                if let Err(error) = store.create(&mut record).await {
                    errors.push(format!("create {n}/{round}: {error}"));
                    continue;
                }
                record.expiry_date += time::Duration::seconds(1);
                if let Err(error) = store.save(&record).await {
                    errors.push(format!("save {n}/{round}: {error}"));
                }
                match store.load(&record.id).await {
                    Ok(Some(loaded)) if loaded.data == record.data => {}
                    other => errors.push(format!("load {n}/{round}: {other:?}")),
                }
            }
            errors
        }));
    }
    let mut errors = Vec::new();
    for task in tasks {
        errors.extend(task.await.expect("task"));
    }
    assert!(errors.is_empty(), "{} session writes failed: {:?}", errors.len(), &errors[..errors.len().min(10)]);
}

/// The same id is never handed out twice, and the
/// second create does not overwrite the first's data.
async fn a_taken_id_gets_a_new_one(app: TestApp) {
    let store = &app.state.sessions;
    let mut first = record(1);
    store.create(&mut first).await.expect("create");
    let mut second = record(2);
    second.id = first.id;
    store.create(&mut second).await.expect("create with a taken id");
    assert_ne!(second.id, first.id, "a new id for the second session");
    assert_eq!(store.load(&first.id).await.expect("load").map(|r| r.data), Some(first.data));
    assert_eq!(store.load(&second.id).await.expect("load").map(|r| r.data), Some(second.data));
}

/// The hourly sweep removes expired rows and keeps live ones.
async fn the_sweep_removes_only_expired_sessions(app: TestApp) {
    let store = &app.state.sessions;
    let mut live = record(1);
    store.create(&mut live).await.expect("create");
    let mut expired = record(2);
    expired.expiry_date = time::OffsetDateTime::now_utc() - time::Duration::minutes(1);
    store.create(&mut expired).await.expect("create");
    assert_eq!((has_row(&app, &live.id).await, has_row(&app, &expired.id).await), (true, true));
    assert!(store.load(&expired.id).await.expect("load").is_none(), "an expired session signs nobody in, swept or not");
    store.delete_expired().await.expect("sweep");
    assert!(!has_row(&app, &expired.id).await, "the sweep removes the expired row");
    assert!(has_row(&app, &live.id).await, "the sweep keeps the live row");
    assert_eq!(store.load(&live.id).await.expect("load").map(|r| r.data), Some(live.data));
}

async fn has_row(app: &TestApp, id: &Id) -> bool {
    let id = id.to_string();
    let count: i64 = match &app.state.store.db {
        reale::store::Db::Sqlite(pool) => {
            sqlx::query_scalar("SELECT COUNT(*) FROM tower_sessions WHERE id = ?").bind(id).fetch_one(pool).await
        }
        reale::store::Db::Postgres(pool) => {
            sqlx::query_scalar("SELECT COUNT(*) FROM tower_sessions.session WHERE id = $1").bind(id).fetch_one(pool).await
        }
    }
    .expect("count sessions");
    count == 1
}

crate::on_both_backends!(a_taken_id_gets_a_new_one, the_sweep_removes_only_expired_sessions);

/// One person's turn: `sender` sends `body` and `reader` sees it on the conversation
/// page, neither sent to the login page.
async fn turn(sender: &mut Client, reader: &mut Client, dm: i64, body: &str) {
    let client_id = format!("t{}", rand::random::<u64>());
    let sent = sender.post(&format!("/c/{dm}/messages"), &[("body", body), ("client_id", &client_id)]).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "sending {body:?}: {}", sent.body.chars().take(300).collect::<String>());
    assert!(sent.location().is_some_and(|l| l.contains("#message-")), "sending {body:?} led to {:?}", sent.location());
    for client in [reader, sender] {
        let page = client.get(&format!("/c/{dm}")).await;
        assert_eq!(page.status, StatusCode::OK, "conversation page after {body:?}: {:?}", page.location());
        assert!(page.body.contains(body), "the page shows {body:?}");
    }
}

/// Two instances on Postgres and a private Redis, Alice on A and Bob on B. Redis goes
/// down (requests work from the database), comes back empty (nobody is signed out,
/// and the cache is filled again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_signs_nobody_out() {
    let Some(mut redis) = PrivateRedis::start().await else { return };
    let url = redis.url();
    let Some(Pair { a, b, mut alice, mut bob, dm }) = Pair::start(&url).await else { return };
    // Each on the other instance too, as behind a load balancer.
    let mut alice_on_b = b.client();
    alice_on_b.cookies = alice.cookies.clone();
    let mut bob_on_a = a.client();
    bob_on_a.cookies = bob.cookies.clone();
    turn(&mut alice, &mut bob, dm, "before anything happens").await;

    redis.kill();
    turn(&mut alice, &mut bob, dm, "while Redis is down, from A").await;
    turn(&mut bob_on_a, &mut alice_on_b, dm, "while Redis is down, from B").await;

    redis.restart().await;
    // Give the clients their reconnect (every 500 ms) so the cache is in use again.
    let redis_pool = a.state.redis.clone().expect("scale mode");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !redis_pool.is_connected() {
        assert!(tokio::time::Instant::now() < deadline, "A did not reconnect to Redis");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    turn(&mut alice, &mut bob, dm, "after the restart, from A").await;
    turn(&mut bob, &mut alice_on_b, dm, "after the restart, from B").await;

    // The empty Redis got Alice's session back from the database.
    let session_id = alice.cookies.get("reale_session").expect("session cookie").clone();
    let cached: i64 = redis_pool.exists(session_id).await.expect("EXISTS");
    assert_eq!(cached, 1, "the restarted Redis caches Alice's session again");
}
