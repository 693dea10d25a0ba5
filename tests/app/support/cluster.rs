//! Harness for scale mode: a second in-process instance (`Peer`), a private
//! redis-server to kill and restart (`PrivateRedis`), the server binary as a real
//! process (`Server`), a cookie-keeping client on real sockets (`Browser`), and an SSE
//! follower that reconnects across instances like EventSource (`follow`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
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

use super::{Client, PASSWORD, TestApp, in_ci};

pub fn temp_dir(prefix: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{prefix}_{}_{:08x}", std::process::id(), rand::random::<u32>()))
}

// ---------------------------------------------------------------------------------
// A second in-process instance on the first one's database.

pub struct Peer {
    pub state: reale::AppState,
    pub router: Router,
    pub data_dir: PathBuf,
}

impl Peer {
    /// Another instance of `first`'s deployment: same database, the given Redis.
    pub async fn start(first: &TestApp, redis: &str) -> Peer {
        Peer::start_with(first, Some(redis), &["--send-limit", "100000", "--write-limit", "100000", "--create-limit", "100000"]).await
    }

    /// Like `start`, with these limit flags instead of lifted limits, and Redis only
    /// when given.
    pub async fn start_with(first: &TestApp, redis: Option<&str>, limits: &[&str]) -> Peer {
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
        // Voice media as on the first instance: a free loopback port.
        config.rtc_port = 0;
        config.rtc_public_ip = vec![std::net::IpAddr::from([127, 0, 0, 1])];
        let state = reale::build_state(config).await.expect("the second instance starts");
        let router = reale::app(state.clone());
        Peer { state, router, data_dir }
    }

    pub fn client(&self) -> Client {
        Client::new(self.router.clone())
    }

    /// Serves this instance on a free loopback port until the test ends.
    pub async fn serve(&self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a free port");
        let addr = listener.local_addr().expect("bound address");
        let state = self.state.clone();
        tokio::spawn(async move {
            let _ = reale::serve(listener, state, std::future::pending()).await;
        });
        addr
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Two instances of one deployment on Postgres and `redis`, with Alice signed in on
/// A, Bob on B, and their DM open: where most scale tests start.
pub struct Pair {
    pub a: TestApp,
    pub b: Peer,
    pub alice: Client,
    pub bob: Client,
    pub dm: i64,
}

impl Pair {
    /// None when Postgres is missing outside CI (the harness has said so).
    pub async fn start(redis: &str) -> Option<Pair> {
        let lifted = ["--redis-url", redis, "--send-limit", "100000", "--write-limit", "100000", "--create-limit", "100000"];
        let a = TestApp::spawn_with(super::Backend::Postgres, &lifted).await?;
        let b = Peer::start(&a, redis).await;
        let mut alice = a.client();
        alice.register("alice").await;
        let mut bob = b.client();
        bob.register("bob").await;
        let response = alice.post("/u/bob/message", &[]).await;
        let dm = response.location().and_then(|l| l.strip_prefix("/c/")).and_then(|id| id.parse().ok()).expect("the DM");
        Some(Pair { a, b, alice, bob, dm })
    }
}

// ---------------------------------------------------------------------------------
// A private redis-server: tests kill and restart it without disturbing the shared one.

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

pub struct PrivateRedis {
    pub port: u16,
    pub child: Option<Child>,
    pub dir: PathBuf,
}

impl PrivateRedis {
    /// None (after a loud skip, or a panic under CI) when redis-server is missing.
    pub async fn start() -> Option<PrivateRedis> {
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

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: no goodbye to clients, and (no persistence) every key is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub async fn restart(&mut self) {
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

    pub async fn ping(&self) -> bool {
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

// ---------------------------------------------------------------------------------
// Real processes over real sockets.

pub type Http = HyperClient<HttpConnector, Full<Bytes>>;
pub type StreamBody = UnsyncBoxBody<Bytes, String>;

pub fn http() -> Http {
    // No pooling: a connection to a killed instance is never reused.
    HyperClient::builder(TokioExecutor::new()).pool_max_idle_per_host(0).build_http()
}

pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Reply {
    pub status: StatusCode,
    pub location: String,
    pub body: String,
}

/// A browser on real sockets: its own cookie jar, same-origin fetch metadata.
#[derive(Clone)]
pub struct Browser {
    pub http: Http,
    pub username: String,
    pub cookies: BTreeMap<String, String>,
}

impl Browser {
    pub fn new(username: &str) -> Browser {
        Browser { http: http(), username: username.into(), cookies: BTreeMap::new() }
    }

    pub fn request(&self, addr: SocketAddr, method: Method, path: &str, form: Option<&[(&str, &str)]>) -> Request<Full<Bytes>> {
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

    pub fn keep_cookies(&mut self, headers: &axum::http::HeaderMap) {
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

    pub async fn call(&mut self, addr: SocketAddr, method: Method, path: &str, form: Option<&[(&str, &str)]>) -> Result<Reply, String> {
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

    /// POSTs JSON (as voice.js sends its offer).
    pub async fn post_json(&mut self, addr: SocketAddr, path: &str, json: &str) -> Result<Reply, String> {
        let mut request = self.request(addr, Method::POST, path, None);
        request.headers_mut().insert(header::CONTENT_TYPE, "application/json".parse().expect("value"));
        request.headers_mut().insert("sec-fetch-site", "same-origin".parse().expect("value"));
        *request.body_mut() = Full::new(Bytes::from(json.to_string()));
        let response = tokio::time::timeout(REQUEST_TIMEOUT, self.http.request(request)).await.map_err(|_| "timed out".to_string())?.map_err(|e| format!("{e:?}"))?;
        let status = response.status();
        let bytes = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(Reply { status, location: String::new(), body: String::from_utf8_lossy(&bytes).into_owned() })
    }

    pub async fn register(&mut self, addr: SocketAddr) {
        let email = format!("{}@example.org", self.username);
        let username = self.username.clone();
        let form = [("username", username.as_str()), ("email", &email), ("password", PASSWORD), ("display_name", "")];
        let reply = self.call(addr, Method::POST, "/register", Some(&form)).await.expect("register");
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "register {}: {}", self.username, reply.body);
    }

    pub async fn login(&mut self, addr: SocketAddr) -> Result<(), String> {
        self.cookies.clear();
        let username = self.username.clone();
        let reply = self.call(addr, Method::POST, "/login", Some(&[("login", &username), ("password", PASSWORD)])).await?;
        if reply.status == StatusCode::SEE_OTHER && reply.location == "/" {
            Ok(())
        } else {
            Err(format!("login answered {}", reply.status))
        }
    }

    /// A page, retried on a broken connection; a redirect to /login is returned as
    /// is (sessions must survive anything the tests do to instances and Redis).
    pub async fn page(&mut self, addr: SocketAddr, path: &str) -> Reply {
        for _ in 0..3 {
            match self.call(addr, Method::GET, path, None).await {
                Ok(reply) => return reply,
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        panic!("GET {path} on {addr} failed");
    }

    /// Opens `/events`: Ok(None) when not signed in.
    pub async fn open_events(&mut self, addr: SocketAddr, last_event_id: Option<i64>, since: Option<i64>) -> Result<Option<StreamBody>, String> {
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
pub struct Server {
    pub name: &'static str,
    pub addr: SocketAddr,
    pub args: Vec<String>,
    pub log: PathBuf,
    pub child: Option<Child>,
}

impl Server {
    pub fn new(name: &'static str, database_url: &str, redis_url: &str, dir: &std::path::Path) -> Server {
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
            "--create-limit".into(),
            "100000".into(),
        ];
        Server { name, addr, args, log: dir.join(format!("{name}.log")), child: None }
    }

    /// One instance as `cargo run` starts it: SQLite under its data directory, no Redis.
    pub fn embedded(name: &'static str, dir: &std::path::Path) -> Server {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let args = vec!["--addr".to_string(), addr.to_string(), "--data-dir".into(), dir.join(name).display().to_string()];
        Server { name, addr, args, log: dir.join(format!("{name}.log")), child: None }
    }

    /// SIGTERM, as an operator's `systemctl stop` sends; the exit status once it has
    /// exited, or None if it is still running after `wait`.
    pub async fn terminate(&mut self, wait: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        // SAFETY: signalling our own child process by its pid.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    pub async fn start(&mut self) {
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
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log_tail(&self) -> String {
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
pub struct Received {
    /// Event ids (`id:` lines), in arrival order.
    pub events: Vec<i64>,
    /// Message ids from `<article id="message-N"` in logged events, with arrival times.
    pub messages: Vec<(i64, Instant)>,
    pub last_id: Option<i64>,
    /// Instance and cursor of each connection.
    pub connections: Vec<(SocketAddr, Option<i64>)>,
    /// How long each gap between a lost connection and the next one lasted.
    pub outages: Vec<Duration>,
    /// Anything the server must never do: an id repeated or going backwards, a resync.
    pub violations: Vec<String>,
    /// How often the stream was refused for want of a session and signed in again.
    pub relogins: usize,
}

impl Received {
    pub fn take(&mut self, name: &str, id: Option<i64>, data: &str) {
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
pub fn sse_blocks(buffer: &mut String) -> Vec<(String, Option<i64>, String)> {
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
pub async fn follow(mut bob: Browser, instances: [SocketAddr; 2], since: i64, received: Arc<Mutex<Received>>, stop: Arc<AtomicBool>) {
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
                    // Signed out: counted (the tests expect none), then signed in again
                    // so the rest of the run still says what else went wrong.
                    received.lock().expect("lock").relogins += 1;
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
