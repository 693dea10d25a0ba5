//! Scale mode (acceptance 3): several instances on one Postgres, joined by Redis.
//!
//! - In process: two instances on one fresh database and the shared Redis. Everything
//!   Alice does on A reaches Bob's stream on B; presence counts her streams on both;
//!   signing out elsewhere on A ends her stream on B.
//! - Two deployments (databases) on one Redis: their equal ids never cross over.
//! - In process, Redis gone: events committed on A still reach B (the poll); Redis
//!   back (empty): pub/sub and presence recover without showing anyone offline.
//! - Real processes: the server binary twice plus a private redis-server, a burst of
//!   messages alternating between them while instance A is killed (-9) and restarted
//!   and Redis is restarted; Bob's streams must get every message exactly once, in order.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{Method, Request, StatusCode, header};
use bytes::Bytes;
use clap::Parser;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::conversations::{open_dm, send};
use crate::support::{Backend, Client, EventStream, PASSWORD, SseEvent, TestApp, in_ci, redis_url};

const SOON: Duration = Duration::from_secs(3);

fn temp_dir(prefix: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{prefix}_{}_{:08x}", std::process::id(), rand::random::<u32>()))
}

// ---------------------------------------------------------------------------------
// A second in-process instance on the first one's database.

struct Peer {
    state: reale::AppState,
    router: Router,
    data_dir: PathBuf,
}

impl Peer {
    /// Another instance of `first`'s deployment: same database, the given Redis.
    async fn start(first: &TestApp, redis: &str) -> Peer {
        Peer::start_with(first, Some(redis), &["--send-limit", "100000", "--write-limit", "100000", "--create-limit", "100000"]).await
    }

    /// Like `start`, with these limit flags instead of lifted limits, and Redis only
    /// when given.
    async fn start_with(first: &TestApp, redis: Option<&str>, limits: &[&str]) -> Peer {
        let data_dir = temp_dir("reale_peer");
        let database_url = first.state.config.database_url();
        let dir = data_dir.display().to_string();
        let mut argv = vec!["reale", "--data-dir", &dir, "--database-url", &database_url];
        argv.extend(redis.map(|url| ["--redis-url", url]).into_iter().flatten());
        argv.extend(limits);
        let mut config = reale::Config::parse_from(argv);
        if redis.is_none() {
            config.redis_url = None;
        }
        config.public_url = None;
        let state = reale::build_state(config).await.expect("the second instance starts");
        let router = reale::app(state.clone());
        Peer { state, router, data_dir }
    }

    fn client(&self) -> Client {
        Client::new(self.router.clone())
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

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
    let Some(a) = TestApp::spawn_with(Backend::Postgres, &["--redis-url", &redis, "--send-limit", "100000", "--write-limit", "100000", "--create-limit", "100000"]).await else {
        return;
    };
    let b = Peer::start(&a, &redis).await;
    let mut alice = a.client();
    alice.register("alice").await;
    let mut bob = b.client();
    bob.register("bob").await;
    let dm = open_dm(&mut alice, "bob").await;
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
    let quiet_until = tokio::time::Instant::now() + reale::realtime::presence::GRACE + Duration::from_millis(2_000);
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

/// Two deployments (two databases) on one Redis: their user, conversation and device
/// ids coincide, yet neither hears the other's typing, presence or sign-outs.
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

// ---------------------------------------------------------------------------------
// A private redis-server: tests kill and restart it without disturbing the shared one.

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

struct PrivateRedis {
    port: u16,
    child: Option<Child>,
    dir: PathBuf,
}

impl PrivateRedis {
    /// None (after a loud skip, or a panic under CI) when redis-server is missing.
    async fn start() -> Option<PrivateRedis> {
        if let Err(error) = Command::new("redis-server").arg("--version").stdout(Stdio::null()).status() {
            if in_ci() {
                panic!("redis-server is required under CI=true: {error}");
            }
            eprintln!("SKIPPED: redis-server unavailable ({error})");
            return None;
        }
        let dir = temp_dir("reale_redis");
        std::fs::create_dir_all(&dir).expect("redis dir");
        let mut redis = PrivateRedis { port: free_port(), child: None, dir };
        redis.restart().await;
        Some(redis)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: no goodbye to clients, and (no persistence) every key is gone.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn restart(&mut self) {
        self.kill();
        let port = self.port.to_string();
        let child = Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.ping().await {
                return;
            }
            assert!(Instant::now() < deadline, "redis-server on port {} did not come up", self.port);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn ping(&self) -> bool {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let attempt = async {
            let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.ok()?;
            socket.write_all(b"PING\r\n").await.ok()?;
            let mut reply = [0u8; 7];
            socket.read_exact(&mut reply).await.ok()?;
            (&reply == b"+PONG\r\n").then_some(())
        };
        matches!(tokio::time::timeout(Duration::from_millis(500), attempt).await, Ok(Some(())))
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// With Redis gone, pub/sub wakes nobody: B still delivers A's commits, from the poll.
#[tokio::test]
async fn without_redis_events_committed_on_one_instance_still_reach_the_other() {
    let Some(mut redis) = PrivateRedis::start().await else { return };
    let url = redis.url();
    let Some(a) = TestApp::spawn_with(Backend::Postgres, &["--redis-url", &url, "--send-limit", "100000", "--write-limit", "100000", "--create-limit", "100000"]).await else {
        return;
    };
    let b = Peer::start(&a, &url).await;
    let mut alice = a.client();
    alice.register("alice").await;
    let mut bob = b.client();
    bob.register("bob").await;
    let dm = open_dm(&mut alice, "bob").await;
    let alice_id = user_id(&a, "alice").await;
    let mut bob_stream = bob.events("/events", None).await;
    let _alice_stream = alice.events("/events", None).await;
    expect_presence(&mut bob_stream, alice_id, "online", SOON).await;
    let first = send(&mut alice, dm, "through Redis").await;
    bob_stream.expect(&format!("message-{first}"), SOON).await;

    // Sessions live in Redis too, so with Redis dead no request is signed in: commit
    // on A directly, as its send handler would.
    redis.kill();
    let mut worst = Duration::ZERO;
    for n in 0..3 {
        let message = reale::conversations::writer::NewMessage {
            conversation_id: dm,
            author_id: alice_id,
            kind: "text",
            body: format!("no Redis {n}"),
            html: format!("<p>no Redis {n}</p>"),
            reply_to_id: None,
            client_id: Some(format!("gap-{n}")),
            mentions: Vec::new(),
        };
        let (id, created) = a.state.writer.write(message).await.expect("write on A");
        assert!(created);
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

// ---------------------------------------------------------------------------------
// Real processes over real sockets.

type Http = HyperClient<HttpConnector, Full<Bytes>>;
type StreamBody = UnsyncBoxBody<Bytes, String>;

fn http() -> Http {
    // No pooling: a connection to a killed instance is never reused.
    HyperClient::builder(TokioExecutor::new()).pool_max_idle_per_host(0).build_http()
}

const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

struct Reply {
    status: StatusCode,
    location: String,
    body: String,
}

/// A browser on real sockets: its own cookie jar, same-origin fetch metadata.
#[derive(Clone)]
struct Browser {
    http: Http,
    username: String,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    fn new(username: &str) -> Browser {
        Browser { http: http(), username: username.into(), cookies: BTreeMap::new() }
    }

    fn request(&self, addr: SocketAddr, method: Method, path: &str, form: Option<&[(&str, &str)]>) -> Request<Full<Bytes>> {
        let mut request = Request::builder().method(method).uri(format!("http://{addr}{path}"));
        if !self.cookies.is_empty() {
            let cookie = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
            request = request.header(header::COOKIE, cookie);
        }
        let body = match form {
            Some(form) => {
                request = request
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .header("sec-fetch-site", "same-origin");
                serde_urlencoded::to_string(form).expect("form")
            }
            None => String::new(),
        };
        request.body(Full::new(Bytes::from(body))).expect("request")
    }

    fn keep_cookies(&mut self, headers: &axum::http::HeaderMap) {
        for value in headers.get_all(header::SET_COOKIE) {
            let text = value.to_str().unwrap_or("");
            let pair = text.split(';').next().unwrap_or("");
            if let Some((name, value)) = pair.split_once('=') {
                if text.contains("Max-Age=0") || value.is_empty() {
                    self.cookies.remove(name.trim());
                } else {
                    self.cookies.insert(name.trim().to_string(), value.to_string());
                }
            }
        }
    }

    async fn call(&mut self, addr: SocketAddr, method: Method, path: &str, form: Option<&[(&str, &str)]>) -> Result<Reply, String> {
        let request = self.request(addr, method, path, form);
        let exchange = async {
            let response = self.http.request(request).await.map_err(|e| format!("{e:?}"))?;
            let (parts, body) = response.into_parts();
            let bytes = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
            Ok::<_, String>((parts, bytes))
        };
        let (parts, bytes) = tokio::time::timeout(REQUEST_TIMEOUT, exchange).await.map_err(|_| "timed out".to_string())??;
        self.keep_cookies(&parts.headers);
        let location = parts.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        Ok(Reply { status: parts.status, location, body: String::from_utf8_lossy(&bytes).into_owned() })
    }

    async fn register(&mut self, addr: SocketAddr) {
        let email = format!("{}@example.org", self.username);
        let username = self.username.clone();
        let form = [("username", username.as_str()), ("email", &email), ("password", PASSWORD), ("display_name", "")];
        let reply = self.call(addr, Method::POST, "/register", Some(&form)).await.expect("register");
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "register {}: {}", self.username, reply.body);
    }

    async fn login(&mut self, addr: SocketAddr) -> Result<(), String> {
        self.cookies.clear();
        let username = self.username.clone();
        let reply = self.call(addr, Method::POST, "/login", Some(&[("login", &username), ("password", PASSWORD)])).await?;
        if reply.status == StatusCode::SEE_OTHER && reply.location == "/" {
            Ok(())
        } else {
            Err(format!("login answered {}", reply.status))
        }
    }

    /// A page, signing in again if the session is gone (Redis restarted).
    async fn page(&mut self, addr: SocketAddr, path: &str) -> Reply {
        for _ in 0..3 {
            match self.call(addr, Method::GET, path, None).await {
                Ok(reply) if reply.status == StatusCode::SEE_OTHER && reply.location.starts_with("/login") => {
                    let _ = self.login(addr).await;
                }
                Ok(reply) => return reply,
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        panic!("GET {path} on {addr} failed");
    }

    /// Opens `/events`: Ok(None) when not signed in.
    async fn open_events(&mut self, addr: SocketAddr, last_event_id: Option<i64>, since: Option<i64>) -> Result<Option<StreamBody>, String> {
        let path = match since {
            Some(since) => format!("/events?since={since}"),
            None => "/events".to_string(),
        };
        let mut request = self.request(addr, Method::GET, &path, None);
        request.headers_mut().insert(header::ACCEPT, "text/event-stream".parse().expect("value"));
        if let Some(id) = last_event_id {
            request.headers_mut().insert("last-event-id", id.to_string().parse().expect("value"));
        }
        let response = tokio::time::timeout(REQUEST_TIMEOUT, self.http.request(request))
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| format!("{e:?}"))?;
        match response.status() {
            StatusCode::OK => Ok(Some(response.into_body().map_err(|e| e.to_string()).boxed_unsync())),
            StatusCode::UNAUTHORIZED => Ok(None),
            other => Err(format!("/events answered {other}")),
        }
    }
}

/// The server binary, started (and killed, and started again) on a fixed port.
struct Server {
    name: &'static str,
    addr: SocketAddr,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl Server {
    fn new(name: &'static str, database_url: &str, redis_url: &str, dir: &std::path::Path) -> Server {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let data_dir = dir.join(name);
        let args = vec![
            "--addr".to_string(),
            addr.to_string(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--database-url".into(),
            database_url.into(),
            "--redis-url".into(),
            redis_url.into(),
            "--send-limit".into(),
            "100000".into(),
            "--write-limit".into(),
            "100000".into(),
        ];
        Server { name, addr, args, log: dir.join(format!("{name}.log")), child: None }
    }

    async fn start(&mut self) {
        assert!(self.child.is_none());
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_reale"))
            .args(&self.args)
            .env_clear()
            .env("RUST_LOG", "reale=info,warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn reale");
        self.child = Some(child);
        let probe = http();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("instance {} exited at start ({status}):\n{}", self.name, self.log_tail());
            }
            let request = Request::get(format!("http://{}/healthz", self.addr)).body(Full::new(Bytes::new())).expect("request");
            if let Ok(Ok(response)) = tokio::time::timeout(Duration::from_millis(500), probe.request(request)).await
                && response.status() == StatusCode::OK
            {
                return;
            }
            assert!(Instant::now() < deadline, "instance {} did not come up:\n{}", self.name, self.log_tail());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no graceful shutdown, connections reset mid-request.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What one of Bob's devices received, across reconnections.
#[derive(Default)]
struct Received {
    /// Event ids (`id:` lines), in arrival order.
    events: Vec<i64>,
    /// Message ids from `<article id="message-N"` in logged events, with arrival times.
    messages: Vec<(i64, Instant)>,
    last_id: Option<i64>,
    /// Instance and cursor of each connection.
    connections: Vec<(SocketAddr, Option<i64>)>,
    /// How long each gap between a lost connection and the next one lasted.
    outages: Vec<Duration>,
    /// Anything the server must never do: an id repeated or going backwards, a resync.
    violations: Vec<String>,
}

impl Received {
    fn take(&mut self, name: &str, id: Option<i64>, data: &str) {
        if name == "resync" {
            self.violations.push(format!("resync after {:?}", self.last_id));
        }
        let Some(id) = id else { return };
        if let Some(last) = self.last_id
            && id <= last
        {
            let what = if self.events.contains(&id) { "duplicate" } else { "out of order" };
            self.violations.push(format!("{what}: event {id} after {last} on connection {}", self.connections.len()));
            return;
        }
        self.last_id = Some(id);
        self.events.push(id);
        for piece in data.split("<article id=\"message-").skip(1) {
            if let Some(message) = piece.split('"').next().and_then(|m| m.parse().ok()) {
                self.messages.push((message, Instant::now()));
            }
        }
    }
}

/// Splits complete SSE blocks off `buffer`: (event name, id, data).
fn sse_blocks(buffer: &mut String) -> Vec<(String, Option<i64>, String)> {
    let mut out = Vec::new();
    while let Some(end) = buffer.find("\n\n") {
        let block: String = buffer.drain(..end + 2).collect();
        let (mut name, mut id, mut data, mut any) = ("message".to_string(), None, Vec::new(), false);
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event: ") {
                name = v.to_string();
                any = true;
            } else if let Some(v) = line.strip_prefix("id: ") {
                id = v.trim().parse().ok();
            } else if let Some(v) = line.strip_prefix("data: ") {
                data.push(v);
                any = true;
            }
        }
        if any {
            out.push((name, id, data.join("\n")));
        }
    }
    out
}

/// One of Bob's devices: holds a stream, preferring `instances[0]`; when it ends,
/// reconnects to whichever instance answers, with `Last-Event-ID`, signing in again
/// if its session is gone.
async fn follow(mut bob: Browser, instances: [SocketAddr; 2], since: i64, received: Arc<Mutex<Received>>, stop: Arc<AtomicBool>) {
    let mut lost_at: Option<Instant> = None;
    while !stop.load(Ordering::SeqCst) {
        let last_id = received.lock().expect("lock").last_id;
        // The page's cursor for the first connection, the browser's header afterwards.
        let (header, query) = if last_id.is_some() { (last_id, None) } else { (None, Some(since)) };
        let mut opened = None;
        for addr in instances {
            match bob.open_events(addr, header, query).await {
                Ok(Some(body)) => {
                    opened = Some((addr, body));
                    break;
                }
                Ok(None) => {
                    let _ = bob.login(addr).await;
                    if let Ok(Some(body)) = bob.open_events(addr, header, query).await {
                        opened = Some((addr, body));
                        break;
                    }
                }
                Err(_) => {}
            }
        }
        let Some((addr, mut body)) = opened else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        {
            let mut received = received.lock().expect("lock");
            received.connections.push((addr, header.or(query)));
            if let Some(lost) = lost_at.take() {
                received.outages.push(lost.elapsed());
            }
        }
        let mut buffer = String::new();
        loop {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            // A heartbeat comes every 15 s; poll the stop flag meanwhile.
            match tokio::time::timeout(Duration::from_millis(200), body.frame()).await {
                Err(_) => continue,
                Ok(Some(Ok(frame))) => {
                    if let Ok(bytes) = frame.into_data() {
                        buffer.push_str(&String::from_utf8_lossy(&bytes));
                        let mut received = received.lock().expect("lock");
                        for (name, id, data) in sse_blocks(&mut buffer) {
                            received.take(&name, id, &data);
                        }
                    }
                }
                Ok(None) | Ok(Some(Err(_))) => break,
            }
        }
        lost_at = Some(Instant::now());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
                                // Redis restarted empty: the session is gone.
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
        assert_eq!(page.status, StatusCode::OK);
        let on_page: Vec<i64> =
            page.body.split("<article id=\"message-").skip(1).filter_map(|s| s.split('"').next()?.parse().ok()).collect();
        assert!(!on_page.is_empty() && sent_ids.ends_with(&on_page), "Bob's page ends with the sent messages: {on_page:?}");

        eprintln!(
            "scale: {MESSAGES} messages alternating A/B; {retried} needed a retry ({failures} failed requests, {relogins} re-sign-ins after Redis lost the sessions)"
        );
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
