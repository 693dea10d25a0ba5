//! Sessions: every store write succeeds under contention, and with Redis the database
//! keeps the sessions, so a Redis restart signs nobody out.

use std::sync::Arc;

use axum::http::StatusCode;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::SessionStore;

use crate::support::{Backend, PASSWORD, TestApp};

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
