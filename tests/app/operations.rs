//! Health, readiness, restarts, and sessions with Redis as their cache.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::support::{Backend, PASSWORD, TestApp, postgres_base_url, redis_url};

#[tokio::test]
async fn health_and_readiness() {
    let app = TestApp::spawn(Backend::Sqlite).await.expect("sqlite");
    let mut probe = app.client();
    assert_eq!(probe.get("/healthz").await.status, StatusCode::OK);
    let ready = probe.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK);
    assert!(ready.body.contains("database: ok"));
}

#[tokio::test]
async fn accounts_and_sessions_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!("reale_restart_{}", rand::random::<u32>()));
    let dir_arg = dir.display().to_string();
    let start = || async {
        use clap::Parser;
        let mut config = reale::Config::parse_from(["reale", "--data-dir", &dir_arg]);
        config.database_url = None;
        config.redis_url = None;
        reale::build_state(config).await.expect("starts")
    };
    let first = start().await;
    let mut alice = crate::support::Client::new(reale::app(first.clone()));
    alice.register("alice").await;
    assert!(dir.join("reale.db").exists(), "the data dir holds the database");
    if let reale::store::Db::Sqlite(pool) = &first.store.db {
        pool.close().await;
    }
    drop(first);

    let second = start().await;
    let mut same_browser = crate::support::Client::new(reale::app(second));
    same_browser.cookies = alice.cookies.clone();
    assert_eq!(same_browser.get("/").await.status, StatusCode::OK, "still signed in after restart");
    same_browser.post("/logout", &[]).await;
    same_browser.login("alice", PASSWORD).await.assert_redirect("/");
    let _ = std::fs::remove_dir_all(&dir);
}

/// With Redis configured, a session is kept in the database and cached in Redis;
/// signing out removes both copies.
#[tokio::test]
async fn sessions_are_kept_in_the_database_and_cached_in_redis() {
    use fred::prelude::KeysInterface;
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = TestApp::spawn_with(backend, &["--redis-url", &redis_url()]).await else {
            return;
        };
        let mut alice = app.client();
        alice.register("alice").await;
        assert_eq!(alice.get("/").await.status, StatusCode::OK);
        let ready = alice.get("/readyz").await;
        assert!(ready.body.contains("redis: ok"), "{}", ready.body);
        let id = alice.cookies.get("reale_session").expect("session cookie").clone();
        let redis = app.state.redis.clone().expect("Redis mode");
        let cached = |id: String| {
            let redis = redis.clone();
            async move { redis.exists::<i64, _>(id).await.expect("EXISTS") }
        };
        assert_eq!(session_rows(&app, &id).await, 1, "{backend:?}: the session is in the database");
        assert_eq!(cached(id.clone()).await, 1, "{backend:?}: and cached in Redis");

        let stolen = alice.clone();
        alice.post("/logout", &[]).await.assert_redirect("/login");
        stolen.clone().get("/").await.assert_redirect("/login");
        assert_eq!(session_rows(&app, &id).await, 0, "{backend:?}: signing out removes the database copy");
        assert_eq!(cached(id).await, 0, "{backend:?}: and the cached one");
    }
}

async fn session_rows(app: &TestApp, id: &str) -> i64 {
    match &app.state.store.db {
        reale::store::Db::Sqlite(pool) => {
            sqlx::query_scalar("SELECT COUNT(*) FROM tower_sessions WHERE id = ?").bind(id).fetch_one(pool).await
        }
        reale::store::Db::Postgres(pool) => {
            sqlx::query_scalar("SELECT COUNT(*) FROM tower_sessions.session WHERE id = $1").bind(id).fetch_one(pool).await
        }
    }
    .expect("count sessions")
}

/// A TCP forwarder standing in for "the database server": stopping it is what the
/// app sees when Postgres goes down, without disturbing other tests' Postgres.
struct Outage {
    listen: std::net::SocketAddr,
    target: String,
    task: Option<JoinHandle<()>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Outage {
    async fn start(target: String) -> Outage {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let listen = listener.local_addr().expect("addr");
        let mut outage = Outage { listen, target, task: None, connections: Arc::default() };
        outage.task = Some(outage.forward(listener));
        outage
    }

    fn forward(&self, listener: TcpListener) -> JoinHandle<()> {
        let (target, connections) = (self.target.clone(), self.connections.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                connections.lock().expect("lock").push(tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                }));
            }
        })
    }

    fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        for connection in self.connections.lock().expect("lock").drain(..) {
            connection.abort();
        }
    }

    async fn restart(&mut self) {
        let listener = TcpListener::bind(self.listen).await.expect("rebind");
        self.task = Some(self.forward(listener));
    }
}

#[tokio::test]
async fn readiness_follows_postgres_going_down_and_coming_back() {
    let Some(direct) = TestApp::spawn(Backend::Postgres).await else {
        return;
    };
    drop(direct);
    let mut proxy = Outage::start("127.0.0.1:5432".into()).await;
    let base = postgres_base_url();
    let via_proxy = base.replace("127.0.0.1:5432", &proxy.listen.to_string()).replace("localhost:5432", &proxy.listen.to_string());
    let app = TestApp::spawn_full(Backend::Postgres, &[], &via_proxy).await.expect("postgres via proxy");
    let mut probe = app.client();
    assert_eq!(probe.get("/readyz").await.status, StatusCode::OK);

    proxy.stop();
    // Pooled connections die with the forwarder's tasks once they are used.
    let mut down = false;
    for _ in 0..20 {
        let response = probe.get("/readyz").await;
        if response.status == StatusCode::SERVICE_UNAVAILABLE {
            assert!(response.body.contains("database: unavailable"));
            down = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(down, "readyz reported 503 while the database was unreachable");
    assert_eq!(probe.get("/healthz").await.status, StatusCode::OK, "the process itself is up");

    proxy.restart().await;
    let mut up = false;
    for _ in 0..50 {
        if probe.get("/readyz").await.status == StatusCode::OK {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(up, "readyz recovered without restarting Reale");
}

/// SIGTERM stops the server within seconds even while a browser holds a live stream:
/// the stream ends (the browser reconnects, to another instance or to this one once it
/// is back) instead of holding the shutdown open forever.
#[tokio::test]
async fn stopping_the_server_ends_live_streams_and_exits() {
    use http_body_util::BodyExt;
    let dir = crate::support::cluster::temp_dir("reale_stop");
    std::fs::create_dir_all(&dir).expect("a directory for the server");
    let mut server = crate::support::cluster::Server::embedded("solo", &dir);
    server.start().await;
    let mut alice = crate::support::cluster::Browser::new("alice");
    alice.register(server.addr).await;
    let mut stream = alice.open_events(server.addr, None, None).await.expect("/events").expect("signed in");
    let first = stream.frame().await.expect("a first frame").expect("readable");
    assert!(first.data_ref().is_some_and(|d| d.starts_with(b"retry:")), "the stream is open");

    // Well inside the 10 s the server grants requests in flight: the streams must end
    // at once, not be cut off by that deadline.
    let status = server.terminate(Duration::from_secs(5)).await;
    assert!(status.is_some_and(|s| s.success()), "the server exits cleanly within 5 s:\n{}", server.log_tail());
    let ended = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(Ok(_)) = stream.frame().await {}
    })
    .await;
    assert!(ended.is_ok(), "the live stream ended");
    let _ = std::fs::remove_dir_all(&dir);
}
