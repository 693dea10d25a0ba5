//! Test harness: a fresh Reale per test (its own SQLite file or its own Postgres
//! database), driven in-process through `tower::ServiceExt::oneshot` by a client that
//! keeps cookies like a browser. `serve()` puts the same app on a real socket for the
//! browser tests.
//!
//! Scale mode's harness: `cluster` (a second instance, a private Redis, the server
//! binary as a process, an SSE follower) and `balancer` (one address in front of
//! several instances).

pub mod balancer;
pub mod cluster;
pub mod push_service;
pub mod rtc;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use clap::Parser;
use http_body_util::BodyExt;
use tower::ServiceExt;

use reale::{AppState, Config};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

pub fn postgres_base_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A service the test needs is missing: fail under CI, skip (loudly) elsewhere.
pub fn unavailable(what: &str, why: impl std::fmt::Display) -> Option<TestApp> {
    if in_ci() {
        panic!("{what} is required under CI=true but unavailable: {why}");
    }
    eprintln!("SKIPPED: {what} unavailable ({why})");
    None
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let r: u32 = rand::random();
    format!("{prefix}_{}_{n}_{r:08x}", std::process::id())
}

pub struct TestApp {
    pub state: AppState,
    pub router: Router,
    data_dir: PathBuf,
    pg_database: Option<String>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        Self::spawn_with(backend, &[]).await
    }

    /// `args` are extra command-line flags, exactly as an operator would pass them.
    pub async fn spawn_with(backend: Backend, args: &[&str]) -> Option<TestApp> {
        Self::spawn_full(backend, args, &postgres_base_url()).await
    }

    /// Like `spawn_with`, creating the Postgres database through `pg_base` (a URL whose
    /// database part is replaced by a fresh one).
    pub async fn spawn_full(backend: Backend, args: &[&str], pg_base: &str) -> Option<TestApp> {
        let data_dir = std::env::temp_dir().join(unique_name("reale_test"));
        let (database_url, pg_database) = match backend {
            Backend::Sqlite => (format!("sqlite://{}", data_dir.join("reale.db").display()), None),
            Backend::Postgres => match create_pg_database(pg_base).await {
                Ok((url, name)) => (url, Some(name)),
                Err(why) => return unavailable("PostgreSQL", why),
            },
        };
        let mut argv = vec!["reale", "--data-dir"];
        let dir = data_dir.display().to_string();
        argv.push(&dir);
        argv.extend(["--database-url", &database_url]);
        argv.extend(args);
        let mut config = Config::parse_from(argv);
        if !args.contains(&"--redis-url") {
            // The developer's own REDIS_URL must not leak into tests that did not ask for it.
            config.redis_url = None;
        }
        if !args.contains(&"--public-url") {
            config.public_url = None;
        }
        // Voice media on a free loopback port: many apps run at once, and tests talk
        // only to 127.0.0.0/8.
        if !args.contains(&"--rtc-port") {
            config.rtc_port = 0;
        }
        if !args.contains(&"--rtc-public-ip") {
            config.rtc_public_ip = vec![std::net::IpAddr::from([127, 0, 0, 1])];
        }
        let state = match reale::build_state(config).await {
            Ok(state) => state,
            Err(error) => {
                if args.contains(&"--redis-url") {
                    return unavailable("Redis", error);
                }
                panic!("app failed to start: {error}");
            }
        };
        let router = reale::app(state.clone());
        Some(TestApp { state, router, data_dir, pg_database })
    }

    pub fn client(&self) -> Client {
        Client::new(self.router.clone())
    }

    /// Serves the app on a free loopback port until the test ends.
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

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
        if let Some(name) = self.pg_database.take() {
            // Drop runs inside the test's runtime; a thread of its own may block.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
                if let Ok(runtime) = runtime {
                    runtime.block_on(async {
                        use sqlx::Connection;
                        if let Ok(mut conn) = sqlx::PgConnection::connect(&postgres_base_url()).await {
                            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await;
                        }
                    });
                }
            })
            .join();
        }
    }
}

async fn create_pg_database(base: &str) -> Result<(String, String), String> {
    use sqlx::Connection;
    let connect = sqlx::PgConnection::connect(base);
    let mut conn = tokio::time::timeout(std::time::Duration::from_secs(5), connect)
        .await
        .map_err(|_| "connection timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let name = unique_name("reale_t");
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.map_err(|e| e.to_string())?;
    let (prefix, _) = base.rsplit_once('/').ok_or("TEST_DATABASE_URL has no database name")?;
    Ok((format!("{prefix}/{name}"), name))
}

/// A browser-like client: keeps cookies, sends same-origin fetch metadata on unsafe
/// requests (as browsers do), and comes from a fixed client address.
#[derive(Clone)]
pub struct Client {
    router: Router,
    pub cookies: BTreeMap<String, String>,
    pub ip: IpAddr,
    pub user_agent: String,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn location(&self) -> Option<&str> {
        self.headers.get(header::LOCATION).and_then(|v| v.to_str().ok())
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    #[track_caller]
    pub fn assert_redirect(&self, to: &str) {
        assert_eq!(self.status, StatusCode::SEE_OTHER, "expected a redirect to {to}; body: {}", self.body);
        assert_eq!(self.location(), Some(to));
    }
}

impl Client {
    pub fn new(router: Router) -> Client {
        Client {
            router,
            cookies: BTreeMap::new(),
            ip: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
            user_agent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36".into(),
        }
    }

    pub fn from_ip(mut self, ip: [u8; 4]) -> Client {
        self.ip = IpAddr::V4(Ipv4Addr::from(ip));
        self
    }

    /// The same browser (cookies and all) talking to another instance.
    pub fn on(&self, router: Router) -> Client {
        Client { router, ..self.clone() }
    }

    /// A second browser: same app, no cookies.
    pub fn fresh(&self) -> Client {
        let mut other = self.clone();
        other.cookies.clear();
        other
    }

    pub async fn get(&mut self, path: &str) -> Resp {
        let request = Request::builder().method(Method::GET).uri(path).body(Body::empty()).expect("valid request");
        self.send(request).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Resp {
        let body = serde_urlencoded::to_string(form).expect("form encodes");
        self.post_raw(path, body.into_bytes(), "application/x-www-form-urlencoded").await
    }

    pub async fn post_raw(&mut self, path: &str, body: Vec<u8>, content_type: &str) -> Resp {
        let request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::CONTENT_TYPE, content_type)
            .header("sec-fetch-site", "same-origin")
            .body(Body::from(body))
            .expect("valid request");
        self.send(request).await
    }

    pub async fn send(&mut self, mut request: Request<Body>) -> Resp {
        if !self.cookies.is_empty() {
            let cookie = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
            request.headers_mut().insert(header::COOKIE, HeaderValue::from_str(&cookie).expect("cookie header"));
        }
        request.headers_mut().insert(header::USER_AGENT, HeaderValue::from_str(&self.user_agent).expect("ua"));
        request.extensions_mut().insert(ConnectInfo(SocketAddr::new(self.ip, 40000)));
        let response = self.router.clone().oneshot(request).await.expect("router is infallible");
        let (parts, body) = response.into_parts();
        for value in parts.headers.get_all(header::SET_COOKIE) {
            let text = value.to_str().expect("ascii cookie");
            let pair = text.split(';').next().unwrap_or("");
            if let Some((name, value)) = pair.split_once('=') {
                let expired = text.contains("Max-Age=0") || text.contains("1970");
                if expired || value.is_empty() {
                    self.cookies.remove(name.trim());
                } else {
                    self.cookies.insert(name.trim().to_string(), value.to_string());
                }
            }
        }
        let bytes = body.collect().await.expect("body").to_bytes();
        Resp { status: parts.status, headers: parts.headers, body: String::from_utf8_lossy(&bytes).into_owned() }
    }

    /// Registers `username` (email `username@example.org`) and stays signed in.
    pub async fn register(&mut self, username: &str) -> Resp {
        let email = format!("{username}@example.org");
        let response = self
            .post("/register", &[("username", username), ("email", &email), ("password", PASSWORD), ("display_name", "")])
            .await;
        assert_eq!(response.status, StatusCode::SEE_OTHER, "registering {username}: {}", response.body);
        response
    }

    pub async fn login(&mut self, login: &str, password: &str) -> Resp {
        self.post("/login", &[("login", login), ("password", password)]).await
    }
}

pub const PASSWORD: &str = "correct horse battery staple";

/// Flags for flow tests: they act faster than a person, so the per-user limits are
/// lifted (the limits' own tests, in `limits.rs`, set them low on purpose).
pub const FLOW_ARGS: &[&str] =
    &["--send-limit", "100000", "--write-limit", "100000", "--create-limit", "100000", "--search-limit", "100000"];

/// Runs each listed `async fn(TestApp)` as two tests, one on SQLite and one on Postgres.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(app) = $crate::support::TestApp::spawn_with($crate::support::Backend::Sqlite, $crate::support::FLOW_ARGS).await {
                        super::$name(app).await;
                    }
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(app) = $crate::support::TestApp::spawn_with($crate::support::Backend::Postgres, $crate::support::FLOW_ARGS).await {
                        super::$name(app).await;
                    }
                }
            )*
        }
    };
}

/// One Server-Sent Event as a browser's EventSource would see it.
#[derive(Clone, Debug, Default)]
pub struct SseEvent {
    pub name: String,
    pub id: Option<i64>,
    pub data: String,
}

/// An open `/events` stream, read frame by frame.
pub struct EventStream {
    pub status: StatusCode,
    body: Body,
    buffer: String,
    /// The last `id:` seen, as a browser remembers it for `Last-Event-ID`.
    pub last_id: Option<i64>,
    ended: bool,
}

impl Client {
    /// Opens `/events` (with `path`'s query) and, like a reconnecting EventSource, an
    /// optional `Last-Event-ID`.
    pub async fn events(&mut self, path: &str, last_event_id: Option<i64>) -> EventStream {
        let mut request = Request::builder().method(Method::GET).uri(path).header(header::ACCEPT, "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let mut request = request.body(Body::empty()).expect("valid request");
        if !self.cookies.is_empty() {
            let cookie = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
            request.headers_mut().insert(header::COOKIE, HeaderValue::from_str(&cookie).expect("cookie header"));
        }
        request.extensions_mut().insert(ConnectInfo(SocketAddr::new(self.ip, 40000)));
        let response = self.router.clone().oneshot(request).await.expect("router is infallible");
        let status = response.status();
        EventStream { status, body: response.into_body(), buffer: String::new(), last_id: None, ended: false }
    }
}

impl EventStream {
    /// The next event (heartbeats and `retry:` skipped), or None when the stream ended
    /// or nothing came within `wait`.
    pub async fn next(&mut self, wait: std::time::Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent { name: "message".into(), ..SseEvent::default() };
                let mut data: Vec<&str> = Vec::new();
                let mut any = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        event.name = v.to_string();
                        any = true;
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        event.id = v.parse().ok();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push(v);
                        any = true;
                    }
                }
                if !any {
                    continue;
                }
                event.data = data.join("\n");
                if event.id.is_some() {
                    self.last_id = event.id;
                }
                return Some(event);
            }
            if self.ended {
                return None;
            }
            let Some(frame) = tokio::time::timeout_at(deadline, self.body.frame()).await.ok()? else {
                self.ended = true;
                return None;
            };
            let frame = frame.ok()?;
            if let Ok(bytes) = frame.into_data() {
                self.buffer.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    }

    /// Reads events until one's data contains `needle`; panics after `wait`.
    pub async fn expect(&mut self, needle: &str, wait: std::time::Duration) -> SseEvent {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(event) if event.data.contains(needle) => return event,
                Some(_) => continue,
                None => panic!("no event containing {needle:?} within {wait:?}"),
            }
        }
    }

    /// True when the stream ends (the server closed it) within `wait`.
    pub async fn ends_within(&mut self, wait: std::time::Duration) -> bool {
        if self.ended {
            return true;
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.body.frame()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) => {
                    self.ended = true;
                    return true;
                }
                Ok(Some(Ok(frame))) => {
                    if let Ok(bytes) = frame.into_data() {
                        self.buffer.push_str(&String::from_utf8_lossy(&bytes));
                    }
                }
            }
        }
    }
}
