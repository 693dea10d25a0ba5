//! reale-load: Reale's realtime path measured from outside, as browsers would load it.
//!
//! The release `reale` binary runs as a child process pinned to one core (`--server-cpu`,
//! default 0); this generator pins itself to another (`--gen-cpu`, default 1) and runs
//! on one thread. Clients are raw HTTP/1.1 `GET /events` streams (cheap to hold by the
//! ten thousand, and their bytes are ours to time) plus a pooled hyper client for the
//! form posts (register, groups, sends). Everything talks to 127.0.0.0/8 only, and each
//! step has a deadline; a watchdog ends the run (and its servers) after `--timeout` s.
//!
//! cargo bench --bench reale_load -- idle N [--users 100] [--hold 10] [--restart no]
//! cargo bench --bench reale_load -- fanout [--subs 1000,10000] [--rates 10,100] [--users 500] [--bare PATH [--pad N]]
//! cargo bench --bench reale_load -- rooms [--rooms 1000] [--members 10] [--users 1000] [--rates 2000,10000]
//! cargo bench --bench reale_load -- cross [same as rooms; --rates 5000]
//! cargo bench --bench reale_load -- channel [--members 10000] [--users 1000] [--channels 100] [--subs 10000] [--rates 10,50,100]
//! cargo bench --bench reale_load -- files [--uploads 100] [--mb 10]
//! cargo bench --bench reale_load -- voice [--joins 100] [--sizes 5,10,20,30,40,50,60] [--rooms 5,10,20,40,60]
//! (REALE_LOAD_SERVER=path runs that server binary instead of this build's, for before/after runs)
//! (all: [--secs 10] [--server-cpu 0] [--gen-cpu 1] [--timeout 3600] [--quiet-wait 300]; rooms/cross: [--streams-per-user 1])
//!
//! Users are few (argon2 makes each registration tens of ms of server CPU) and hold
//! several streams each where needed; every stream is independent. After setup the
//! server is restarted on the same data, so what setup left in its heap is not counted.
//! A message's body is the token `lgq<seq>q`. Its latency is from just before its POST
//! is sent to the read that brings the frame holding the token to a stream, counted
//! once per stream (a stream sees the token twice: message and sidebar preview).
//! The machine is shared, so each phase first waits for other processes to go quiet and
//! is repeated (up to 3 times) when they used over 10 % of a core while it ran.
//! `cross` runs two instances on a fresh Postgres database (`reale_bench_<pid>` under
//! TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test) and Redis
//! (TEST_REDIS_URL, default redis://127.0.0.1:6379): posts go to A, streams to B.
//! `fanout --bare PATH` runs the bare broadcaster built from ../shared/bench/bare-sse
//! instead (same pinning, streams and rates; sends are `POST /send` with `body=lgq<seq>q`),
//! so Reale's fan-out can be reported as a ratio of it measured in the same session.

#[path = "support/cpu.rs"]
mod cpu;
#[path = "load/channel.rs"]
mod channel;
#[path = "load/files.rs"]
mod files;
#[path = "load/voice.rs"]
mod voice;
use cpu::{cpu_secs, machine_busy_secs, pin_to};

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use axum::http::{Request, StatusCode, header};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;

const PASSWORD: &str = "correct horse battery staple 42";
/// Streams come from 127.0.0.2..=127.0.0.9 so no single (source, destination) pair
/// runs short of ephemeral ports, whatever N is.
const SOURCES: u8 = 8;
/// Sends in flight at once; beyond it the sender falls behind its schedule (reported
/// as the achieved rate) rather than piling up connections.
const MAX_INFLIGHT: usize = 256;
const BIG: &str = "1000000000";
/// Tries per measurement (a disturbed one is repeated).
const ATTEMPTS: usize = 3;

type Http = Client<HttpConnector, Full<Bytes>>;

/// Longest wait, in seconds, for other processes to go quiet before a phase.
static QUIET_WAIT: AtomicUsize = AtomicUsize::new(300);
/// Child PIDs, so the watchdog can kill them even if the main thread is stuck.
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static TOKEN: LazyLock<memchr::memmem::Finder<'static>> = LazyLock::new(|| memchr::memmem::Finder::new(b"lgq"));

// ---------- command line ----------

struct Args(Vec<String>);

impl Args {
    fn get(&self, name: &str, default: &str) -> String {
        let flag = format!("--{name}");
        self.0.iter().position(|a| *a == flag).and_then(|i| self.0.get(i + 1)).cloned().unwrap_or_else(|| default.into())
    }
    fn num(&self, name: &str, default: usize) -> usize {
        self.get(name, &default.to_string()).parse().expect("a number")
    }
    fn list(&self, name: &str, default: &str) -> Vec<usize> {
        self.get(name, default).split(',').map(|n| n.trim().parse().expect("numbers separated by commas")).collect()
    }
}

fn main() {
    let args = Args(std::env::args().skip(1).filter(|a| a != "--bench").collect());
    let gen_cpu = args.num("gen-cpu", 1);
    pin_to(gen_cpu);
    let fds = raise_nofile();
    let timeout = args.num("timeout", 3600);
    QUIET_WAIT.store(args.num("quiet-wait", 300), Relaxed);
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(timeout as u64));
        eprintln!("reale-load: watchdog: still running after {timeout} s, stopping");
        kill_children();
        std::process::exit(2);
    });
    println!("reale-load: generator on cpu {gen_cpu}, open-file limit {fds}");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        match args.0.first().map(String::as_str) {
            Some("idle") => idle(&args).await,
            Some("fanout") => fanout(&args).await,
            Some("rooms") => rooms(&args, false).await,
            Some("cross") => rooms(&args, true).await,
            Some("channel") => channel::channel(&args).await,
            Some("files") => files::files(&args).await,
            Some("voice") => voice::voice(&args).await,
            _ => eprintln!("usage: cargo bench --bench reale_load -- idle N | fanout | rooms | cross | channel | files | voice  (see the file's top comment)"),
        }
    });
    kill_children();
}

// ---------- process plumbing ----------

/// Soft open-file limit up to the hard one; children inherit it.
fn raise_nofile() -> u64 {
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        lim.rlim_cur
    }
}

fn kill_children() {
    for pid in CHILDREN.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
        // SAFETY: signalling a child we spawned.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
}

/// VmRSS of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0)
}

/// Kernel slab memory (socket structures live there), in KiB.
fn slab_kib() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines().find_map(|l| l.strip_prefix("Slab:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0)
}

struct Server {
    child: Child,
    pid: u32,
    addr: SocketAddr,
    dir: PathBuf,
    args: Vec<String>,
    cpu: usize,
    /// The bare broadcaster's binary instead of `reale` (it takes its address from `ADDR`).
    bare: Option<PathBuf>,
}

impl Server {
    async fn start(http: &Http, cpu: usize, database: Option<&str>, redis: Option<&str>) -> Server {
        Self::start_full(http, cpu, database, redis, &[]).await
    }

    /// On SQLite, with `extra` arguments.
    async fn start_with(http: &Http, cpu: usize, extra: &[&str]) -> Server {
        Self::start_full(http, cpu, None, None, extra).await
    }

    async fn start_full(http: &Http, cpu: usize, database: Option<&str>, redis: Option<&str>, extra: &[&str]) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let dir = std::env::temp_dir().join(format!("reale_load_{}_{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("data dir");
        let mut args: Vec<String> = ["--addr", &addr.to_string(), "--data-dir", &dir.display().to_string()].map(String::from).into();
        for limit in [
            "--send-limit",
            "--register-limit",
            "--login-limit",
            "--login-ip-limit",
            "--write-limit",
            "--create-limit",
            "--search-limit",
            "--stream-limit",
        ] {
            args.extend([limit.to_string(), BIG.to_string()]);
        }
        for (flag, url) in [("--database-url", database), ("--redis-url", redis)] {
            if let Some(url) = url {
                args.extend([flag.to_string(), url.to_string()]);
            }
        }
        args.extend(extra.iter().map(|a| a.to_string()));
        let child = Self::spawn(&args, &dir, cpu, None);
        let mut server = Server { pid: child.id(), child, addr, dir, args, cpu, bare: None };
        server.wait_healthy(http).await;
        server
    }

    /// The bare broadcaster at `bin`, pinned like `reale`, on a free loopback port.
    async fn start_bare(http: &Http, cpu: usize, bin: &str) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let dir = std::env::temp_dir().join(format!("reale_load_{}_{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("data dir");
        let bare = Some(PathBuf::from(bin));
        let args = vec![addr.to_string()];
        let child = Self::spawn(&args, &dir, cpu, bare.as_deref());
        let mut server = Server { pid: child.id(), child, addr, dir, args, cpu, bare };
        server.wait_healthy(http).await;
        server
    }

    fn spawn(args: &[String], dir: &std::path::Path, cpu: usize, bare: Option<&std::path::Path>) -> Child {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("server.log")).expect("log file");
        let mut cmd = match bare {
            // bare-sse takes no arguments; `args` holds its address.
            Some(bin) => {
                let mut cmd = Command::new(bin);
                cmd.env_clear().env("ADDR", &args[0]);
                cmd
            }
            None => {
                // REALE_LOAD_SERVER runs another build (say, the commit before) for a before/after.
                let server = std::env::var("REALE_LOAD_SERVER").unwrap_or_else(|_| env!("CARGO_BIN_EXE_reale").into());
                let mut cmd = Command::new(server);
                // A clean environment (no stray DATABASE_URL/REDIS_URL); per-request INFO logs
                // would cost the server a write per request, so warnings only.
                cmd.args(args).env_clear().env("RUST_LOG", "warn");
                cmd
            }
        };
        // The server logs to stdout.
        cmd.stdin(Stdio::null()).stdout(log.try_clone().expect("log")).stderr(log);
        // SAFETY: only async-signal-safe syscalls between fork and exec.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(move || {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu, &mut set);
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
                // The server dies with the generator, however the generator ends.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("start the reale binary");
        CHILDREN.lock().unwrap().push(child.id());
        child
    }

    async fn wait_healthy(&mut self, http: &Http) {
        let started = Instant::now();
        while !request(http, self.addr, "GET", "/healthz", None, "").await.is_ok_and(|r| r.status == StatusCode::OK) {
            if started.elapsed() > Duration::from_secs(60) {
                let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
                panic!("server on {} not healthy after 60 s; its log:\n{log}", self.addr);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (pid, addr, cpu) = (self.pid, self.addr, self.cpu);
        println!("server pid {pid} on {addr} (cpu {cpu}), healthy after {:.2} s, RSS {} KiB", started.elapsed().as_secs_f64(), rss_kib(pid));
    }

    /// Restarts the process on the same data: setup (argon2 for every registration)
    /// leaves the allocator holding hundreds of MiB, which would hide what streams cost.
    async fn restart(&mut self, http: &Http) {
        println!("server RSS after setup: {:.1} MiB; restarting it for a clean baseline", rss_kib(self.pid) as f64 / 1024.0);
        self.stop();
        self.child = Self::spawn(&self.args, &self.dir, self.cpu, self.bare.as_deref());
        self.pid = self.child.id();
        self.wait_healthy(http).await;
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        CHILDREN.lock().unwrap_or_else(|p| p.into_inner()).retain(|p| *p != self.pid);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("reale-load: kept the server's data and log in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

// ---------- control-plane HTTP (hyper) ----------

struct Resp {
    status: StatusCode,
    location: String,
    cookie: String,
    body: Bytes,
}

fn http_client() -> Http {
    Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build_http()
}

async fn request(http: &Http, addr: SocketAddr, method: &str, path: &str, cookie: Option<&str>, form: &str) -> Result<Resp, String> {
    request_within(Duration::from_secs(60), http, addr, method, path, cookie, form).await
}

async fn request_within(limit: Duration, http: &Http, addr: SocketAddr, method: &str, path: &str, cookie: Option<&str>, form: &str) -> Result<Resp, String> {
    let mut builder = Request::builder().method(method).uri(format!("http://{addr}{path}"));
    if let Some(cookie) = cookie {
        builder = builder.header(header::COOKIE, cookie);
    }
    if method == "POST" {
        builder = builder.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    }
    let req = builder.body(Full::new(Bytes::from(form.to_string()))).map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(limit, http.request(req)).await.map_err(|_| "timed out".to_string())?.map_err(|e| e.to_string())?;
    let (parts, body) = response.into_parts();
    let text = |v: Option<&header::HeaderValue>| v.and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let cookie = parts.headers.get_all(header::SET_COOKIE).iter().filter_map(|v| v.to_str().ok()?.split(';').next()).collect::<Vec<_>>().join("; ");
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Resp { status: parts.status, location: text(parts.headers.get(header::LOCATION)), cookie, body })
}

fn expect_redirect(what: &str, r: Result<Resp, String>) -> Resp {
    match r {
        Ok(r) if r.status == StatusCode::SEE_OTHER => r,
        Ok(r) => panic!("{what}: HTTP {} {}", r.status, String::from_utf8_lossy(&r.body[..r.body.len().min(400)])),
        Err(e) => panic!("{what}: {e}"),
    }
}

/// Runs `f(0..n)` with `concurrency` at a time; results in index order.
async fn par<T: Send + 'static, F: Future<Output = T> + Send + 'static>(n: usize, concurrency: usize, f: impl Fn(usize) -> F) -> Vec<T> {
    let mut set = tokio::task::JoinSet::new();
    let mut out: Vec<Option<T>> = (0..n).map(|_| None).collect();
    for i in 0..n {
        if set.len() >= concurrency {
            let (j, t) = set.join_next().await.expect("a task").expect("task ran");
            out[j] = Some(t);
        }
        let fut = f(i);
        set.spawn(async move { (i, fut.await) });
    }
    while let Some(done) = set.join_next().await {
        let (j, t) = done.expect("task ran");
        out[j] = Some(t);
    }
    out.into_iter().map(|t| t.expect("every index")).collect()
}

/// Registers `u0`..`u{n-1}` and returns their session cookies. Argon2 makes each one
/// tens of milliseconds of server CPU, hence users hold several streams each.
async fn register_users(http: &Http, addr: SocketAddr, n: usize) -> Vec<String> {
    let started = Instant::now();
    let cookies = par(n, 4, |i| {
        let http = http.clone();
        async move {
            let name = format!("u{i}");
            let form = serde_urlencoded::to_string([("username", name.as_str()), ("email", &format!("{name}@example.org")), ("password", PASSWORD), ("display_name", "")]).expect("form");
            let r = expect_redirect(&format!("register {name}"), request(&http, addr, "POST", "/register", None, &form).await);
            assert!(!r.cookie.is_empty(), "registration gave no session cookie");
            r.cookie
        }
    })
    .await;
    println!("registered {n} users in {:.1} s", started.elapsed().as_secs_f64());
    cookies
}

/// Every user but the first (the owner of server `id`) joins it by an invite link.
async fn everyone_joins(http: &Http, addr: SocketAddr, cookies: &Arc<Vec<String>>, id: i64) {
    let owner = Some(cookies[0].as_str());
    expect_redirect("create invite", request(http, addr, "POST", &format!("/s/{id}/invites"), owner, "expires=0&max_uses=0").await);
    let invites = request(http, addr, "GET", &format!("/s/{id}/invites"), owner, "").await.expect("invites page");
    let invites = String::from_utf8_lossy(&invites.body).into_owned();
    let code = invites.split("class=\"invite-link\">/i/").nth(1).and_then(|s| s.split('<').next()).expect("an invite code").to_string();
    par(cookies.len() - 1, 4, |i| {
        let (http, cookies, code) = (http.clone(), cookies.clone(), code.clone());
        async move { expect_redirect("join by invite", request(&http, addr, "POST", &format!("/i/{code}"), Some(&cookies[i + 1]), "").await) }
    })
    .await;
}

/// Creates a group owned by user `owner` with `members` (user indexes, owner excluded),
/// adding them 200 at a time (the most one form accepts). Returns the conversation id.
async fn create_group(http: &Http, addr: SocketAddr, cookies: &[String], owner: usize, name: &str, members: &[usize]) -> i64 {
    let names = |part: &[usize]| part.iter().map(|m| format!("u{m}")).collect::<Vec<_>>().join(",");
    let first = &members[..members.len().min(200)];
    let form = serde_urlencoded::to_string([("name", name), ("members", &names(first))]).expect("form");
    let r = expect_redirect("create group", request(http, addr, "POST", "/groups", Some(&cookies[owner]), &form).await);
    let id: i64 = r.location.trim_start_matches("/c/").parse().expect("conversation id in Location");
    for part in members[first.len()..].chunks(200) {
        let form = serde_urlencoded::to_string([("username", names(part))]).expect("form");
        expect_redirect("add members", request(http, addr, "POST", &format!("/c/{id}/members"), Some(&cookies[owner]), &form).await);
    }
    id
}

// ---------- measurements shared by every stream ----------

/// Log-linear latency histogram in microseconds: exact below 1,024 µs, then 512
/// buckets per power of two (0.2 % resolution). Atomic so every task records into it.
struct Hist(Vec<AtomicU64>);

impl Hist {
    fn new() -> Hist {
        Hist((0..1024 + 40 * 512).map(|_| AtomicU64::new(0)).collect())
    }
    fn index(us: u64) -> usize {
        if us < 1024 {
            return us as usize;
        }
        let e = 63 - us.leading_zeros() as usize - 9;
        (1024 + (e - 1) * 512 + ((us >> e) as usize - 512)).min(1024 + 40 * 512 - 1)
    }
    fn value(i: usize) -> u64 {
        if i < 1024 {
            return i as u64;
        }
        let e = (i - 1024) / 512 + 1;
        (((i - 1024) % 512 + 512) as u64) << e
    }
    fn record(&self, d: Duration) {
        self.0[Self::index(d.as_micros() as u64)].fetch_add(1, Relaxed);
    }
    fn reset(&self) {
        self.0.iter().for_each(|b| b.store(0, Relaxed));
    }
    fn count(&self) -> u64 {
        self.0.iter().map(|b| b.load(Relaxed)).sum()
    }
    /// The q-quantile in milliseconds.
    fn ms(&self, q: f64) -> f64 {
        let total = self.count();
        let rank = ((total as f64 * q).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, b) in self.0.iter().enumerate() {
            seen += b.load(Relaxed);
            if seen >= rank {
                return Self::value(i) as f64 / 1000.0;
            }
        }
        f64::NAN
    }
}

struct Ctx {
    epoch: Instant,
    /// Per message sequence number: when its POST was about to be sent (ns after epoch, +1).
    sent: Vec<AtomicU64>,
    latency: Hist,
    post_latency: Hist,
    delivered: AtomicU64,
    expected: AtomicU64,
    post_errors: AtomicU64,
    bytes: AtomicU64,
    opened: AtomicUsize,
    failed: AtomicUsize,
    closed: AtomicUsize,
    first_error: Mutex<Option<String>>,
}

impl Ctx {
    fn new(messages: usize) -> Arc<Ctx> {
        Arc::new(Ctx {
            epoch: Instant::now(),
            sent: (0..messages).map(|_| AtomicU64::new(0)).collect(),
            latency: Hist::new(),
            post_latency: Hist::new(),
            delivered: AtomicU64::new(0),
            expected: AtomicU64::new(0),
            post_errors: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            opened: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            closed: AtomicUsize::new(0),
            first_error: Mutex::new(None),
        })
    }
    fn error(&self, e: String) {
        self.first_error.lock().unwrap().get_or_insert(e);
    }
}

// ---------- SSE streams (raw HTTP/1.1) ----------

async fn open_stream(server: SocketAddr, source: Ipv4Addr, cookie: &str) -> Result<(TcpStream, Vec<u8>, bool), String> {
    let e = |e: std::io::Error| e.to_string();
    let socket = TcpSocket::new_v4().map_err(e)?;
    socket.bind(SocketAddr::from((source, 0))).map_err(e)?;
    let mut s = socket.connect(server).await.map_err(e)?;
    s.set_nodelay(true).map_err(e)?;
    let req = format!("GET /events HTTP/1.1\r\nHost: {server}\r\nAccept: text/event-stream\r\nCookie: {cookie}\r\n\r\n");
    s.write_all(req.as_bytes()).await.map_err(e)?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let n = s.read(&mut buf).await.map_err(e)?;
        if n == 0 {
            return Err("closed before the response headers".into());
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = memchr::memmem::find(&head, b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&head[..end]).to_ascii_lowercase();
            if !text.starts_with("http/1.1 200") || !text.contains("text/event-stream") {
                return Err(format!("not an event stream: {}", text.lines().next().unwrap_or("")));
            }
            let chunked = text.contains("transfer-encoding: chunked");
            return Ok((s, head[end + 4..].to_vec(), chunked));
        }
        if head.len() > 16 * 1024 {
            return Err("response headers too long".into());
        }
    }
}

/// Incremental `Transfer-Encoding: chunked` decoder (hyper streams bodies that way).
enum Chunked {
    Size(usize),
    Extension(usize),
    SizeLf(usize),
    Data(usize),
    DataCr,
    DataLf,
    Done,
}

impl Chunked {
    /// Appends the payload in `input` to `out`; false once the final chunk arrived.
    fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> bool {
        while let Some(&b) = input.first() {
            if let Chunked::Data(left) = *self {
                let n = left.min(input.len());
                out.extend_from_slice(&input[..n]);
                input = &input[n..];
                *self = if n == left { Chunked::DataCr } else { Chunked::Data(left - n) };
                continue;
            }
            *self = match *self {
                Chunked::Size(n) => match (b as char).to_digit(16) {
                    Some(d) => Chunked::Size(n * 16 + d as usize),
                    None if b == b'\r' => Chunked::SizeLf(n),
                    None if b == b'\n' => after_size(n),
                    None => Chunked::Extension(n),
                },
                Chunked::Extension(n) if b == b'\n' => after_size(n),
                Chunked::Extension(n) => Chunked::Extension(n),
                Chunked::SizeLf(n) => after_size(n),
                Chunked::DataCr => Chunked::DataLf,
                Chunked::DataLf => Chunked::Size(0),
                Chunked::Data(_) => unreachable!("handled above"),
                Chunked::Done => return false,
            };
            input = &input[1..];
        }
        !matches!(self, Chunked::Done)
    }
}

fn after_size(n: usize) -> Chunked {
    if n == 0 { Chunked::Done } else { Chunked::Data(n) }
}

/// One stream's parser: de-chunks, finds `lgq<seq>q` tokens, records first sightings.
struct Scan {
    chunked: Option<Chunked>,
    payload: Vec<u8>,
    seen: Vec<u64>,
}

impl Scan {
    fn feed(&mut self, input: &[u8], now: Instant, ctx: &Ctx) -> bool {
        ctx.bytes.fetch_add(input.len() as u64, Relaxed);
        let alive = match &mut self.chunked {
            Some(c) => c.feed(input, &mut self.payload),
            None => {
                self.payload.extend_from_slice(input);
                true
            }
        };
        for at in TOKEN.find_iter(&self.payload) {
            let digits = &self.payload[at + 3..];
            let Some(len) = digits.iter().position(|b| !b.is_ascii_digit()) else { break };
            if len == 0 || digits[len] != b'q' {
                continue;
            }
            let seq: usize = std::str::from_utf8(&digits[..len]).ok().and_then(|s| s.parse().ok()).unwrap_or(usize::MAX);
            let (word, bit) = (seq / 64, 1u64 << (seq % 64));
            if seq < ctx.sent.len() && self.seen[word] & bit == 0 {
                self.seen[word] |= bit;
                let sent = ctx.sent[seq].load(Relaxed);
                if sent > 0 {
                    let at = now.duration_since(ctx.epoch).as_nanos() as u64;
                    ctx.latency.record(Duration::from_nanos(at.saturating_sub(sent - 1)));
                    ctx.delivered.fetch_add(1, Relaxed);
                }
            }
        }
        // Keep a tail (a token is at most 24 bytes) in case one is cut by the end of
        // this read; a whole token rescanned from it is skipped by `seen`.
        let cut = self.payload.len().saturating_sub(24);
        self.payload.drain(..cut);
        alive
    }
}

/// Opens `count` streams for users chosen by `user_of(i)`, holding each in a task
/// that reads until the server ends it. Waits until all are open (or failed).
async fn open_streams(ctx: &Arc<Ctx>, server: SocketAddr, cookies: &Arc<Vec<String>>, user_of: impl Fn(usize) -> usize, range: std::ops::Range<usize>) -> Vec<JoinHandle<()>> {
    let started = Instant::now();
    let target = ctx.opened.load(Relaxed) + ctx.failed.load(Relaxed) + range.len();
    let gate = Arc::new(tokio::sync::Semaphore::new(256));
    let words = ctx.sent.len() / 64 + 1;
    let mut tasks = Vec::with_capacity(range.len());
    for i in range.clone() {
        let (ctx, cookies, gate, user) = (ctx.clone(), cookies.clone(), gate.clone(), user_of(i));
        let source = Ipv4Addr::new(127, 0, 0, 2 + (i % SOURCES as usize) as u8);
        tasks.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await.expect("gate");
            let opened = tokio::time::timeout(Duration::from_secs(60), open_stream(server, source, &cookies[user])).await;
            drop(permit);
            let (mut s, first, chunked) = match opened.unwrap_or_else(|_| Err("open timed out".into())) {
                Ok(opened) => opened,
                Err(e) => {
                    ctx.error(e);
                    ctx.failed.fetch_add(1, Relaxed);
                    return;
                }
            };
            ctx.opened.fetch_add(1, Relaxed);
            let mut scan = Scan { chunked: chunked.then_some(Chunked::Size(0)), payload: Vec::with_capacity(256), seen: vec![0; words] };
            let mut alive = scan.feed(&first, Instant::now(), &ctx);
            let mut buf = vec![0u8; 8192];
            while alive {
                alive = match s.read(&mut buf).await {
                    Ok(0) | Err(_) => false,
                    Ok(n) => scan.feed(&buf[..n], Instant::now(), &ctx),
                };
            }
            ctx.closed.fetch_add(1, Relaxed);
        }));
    }
    while ctx.opened.load(Relaxed) + ctx.failed.load(Relaxed) < target && started.elapsed() < Duration::from_secs(180) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "streams: {} more opened in {secs:.2} s ({:.0}/s); {} open, {} failed{}",
        range.len(),
        range.len() as f64 / secs,
        ctx.opened.load(Relaxed) - ctx.closed.load(Relaxed),
        ctx.failed.load(Relaxed),
        ctx.first_error.lock().unwrap().as_deref().map(|e| format!(" (first error: {e})")).unwrap_or_default()
    );
    tasks
}

// ---------- sending and measuring ----------

/// What every phase of one run shares.
struct Run {
    ctx: Arc<Ctx>,
    http: Http,
    post_to: SocketAddr,
    cookies: Arc<Vec<String>>,
    /// Server processes, whose CPU is counted as the server's.
    pids: Vec<u32>,
    /// Postgres and Redis are part of the system under test but show as "other CPU".
    infra_is_other: bool,
    /// Sends go to the bare broadcaster's `POST /send` (answered 204) instead of a conversation.
    bare: bool,
    /// Filler appended to the bare broadcaster's message body (`fanout --pad N`), so it
    /// can be measured at Reale's bytes per delivery too.
    pad: Arc<str>,
}

/// A conversation messages go to: who may send there, and how many streams hear it.
struct Target {
    conv: i64,
    senders: Vec<usize>,
    streams: u64,
}

/// This machine is shared (builds, tests): waits (up to `--quiet-wait` s, default 5 min)
/// for a second in which processes other than this one and `pids` used under 10 % of a
/// core, so they don't skew the numbers.
async fn wait_quiet(pids: &[u32]) {
    let server_cpu = || pids.iter().map(|p| cpu_secs(*p)).sum::<f64>();
    let waited = Instant::now();
    for _ in 0..QUIET_WAIT.load(Relaxed) {
        let (s0, g0, a0) = (server_cpu(), cpu_secs(std::process::id()), machine_busy_secs());
        tokio::time::sleep(Duration::from_secs(1)).await;
        if (machine_busy_secs() - a0) - (server_cpu() - s0) - (cpu_secs(std::process::id()) - g0) < 0.1 {
            break;
        }
    }
    if waited.elapsed() > Duration::from_secs(2) {
        println!("  (waited {:.0} s for other processes to quieten)", waited.elapsed().as_secs_f64());
    }
}

/// Sends `rate` messages/s for `secs` seconds on a fixed schedule (open loop), spread
/// round-robin over `targets`, then waits for deliveries to stop; prints one table row.
/// Returns whether other processes disturbed it (the caller then tries again).
async fn run_phase(run: &Run, targets: &Arc<Vec<Target>>, first_seq: usize, rate: usize, secs: usize, label: &str) -> bool {
    let Run { ctx, http, post_to, cookies, pids, bare, .. } = run;
    let bare = *bare;
    let post_to = *post_to;
    for h in [&ctx.latency, &ctx.post_latency] {
        h.reset();
    }
    for c in [&ctx.delivered, &ctx.expected, &ctx.post_errors, &ctx.bytes] {
        c.store(0, Relaxed);
    }
    let closed_before = ctx.closed.load(Relaxed);
    let total = rate * secs;
    let server_cpu = || pids.iter().map(|p| cpu_secs(*p)).sum::<f64>();
    wait_quiet(pids).await;
    let (server0, gen0, all0) = (server_cpu(), cpu_secs(std::process::id()), machine_busy_secs());
    let gate = Arc::new(tokio::sync::Semaphore::new(MAX_INFLIGHT));
    let start = Instant::now();
    let mut i = 0;
    while i < total {
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as usize + 1).min(total);
        while i < due {
            let permit = gate.clone().acquire_owned().await.expect("gate");
            let seq = first_seq + i;
            let target = &targets[i % targets.len()];
            let sender = target.senders[(i / targets.len()) % target.senders.len()];
            let (conv, streams) = (target.conv, target.streams);
            let (ctx, http, cookies, pad) = (ctx.clone(), http.clone(), cookies.clone(), run.pad.clone());
            tokio::spawn(async move {
                let (form, path, ok) = if bare {
                    (format!("body=lgq{seq}q{pad}"), "/send".to_string(), StatusCode::NO_CONTENT)
                } else {
                    (format!("body=lgq{seq}q&client_id=lg{seq}"), format!("/c/{conv}/messages"), StatusCode::SEE_OTHER)
                };
                let cookie = (!bare).then(|| cookies[sender].as_str());
                let t0 = Instant::now();
                ctx.sent[seq].store(t0.duration_since(ctx.epoch).as_nanos() as u64 + 1, Relaxed);
                match request(&http, post_to, "POST", &path, cookie, &form).await {
                    Ok(r) if r.status == ok => {
                        ctx.post_latency.record(t0.elapsed());
                        ctx.expected.fetch_add(streams, Relaxed);
                    }
                    other => {
                        ctx.post_errors.fetch_add(1, Relaxed);
                        ctx.error(match other {
                            Ok(r) => format!("send: HTTP {} {}", r.status, String::from_utf8_lossy(&r.body[..r.body.len().min(200)])),
                            Err(e) => format!("send: {e}"),
                        });
                    }
                }
                drop(permit);
            });
            i += 1;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let _all_sent = gate.acquire_many(MAX_INFLIGHT as u32).await.expect("gate");
    let send_secs = start.elapsed().as_secs_f64();
    // Deliveries are done when all expected arrived, or nothing arrived for 5 s.
    let (mut last, mut last_at) = (ctx.delivered.load(Relaxed), Instant::now());
    let mut done_at = start.elapsed();
    while ctx.delivered.load(Relaxed) < ctx.expected.load(Relaxed) && last_at.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let now = ctx.delivered.load(Relaxed);
        if now != last {
            (last, last_at, done_at) = (now, Instant::now(), start.elapsed());
        }
    }
    let wall = done_at.as_secs_f64().max(send_secs);
    let (server1, gen1, all1) = (server_cpu(), cpu_secs(std::process::id()), machine_busy_secs());
    let (delivered, expected) = (ctx.delivered.load(Relaxed), ctx.expected.load(Relaxed));
    let sent_ok = total as u64 - ctx.post_errors.load(Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let other = ((all1 - all0) - (server1 - server0) - (gen1 - gen0)).max(0.0) / elapsed * 100.0;
    println!(
        "| {label} | {rate} | {:.0} | {:.0} | {delivered} / {expected} | {:.1} | {:.1} | {:.1} | {:.1} / {:.1} | {:.0} % | {:.0} % | {:.0} % | {} |",
        sent_ok as f64 / send_secs.max(secs as f64),
        delivered as f64 / wall,
        ctx.latency.ms(0.5),
        ctx.latency.ms(0.99),
        ctx.latency.ms(1.0),
        ctx.post_latency.ms(0.5),
        ctx.post_latency.ms(0.99),
        (server1 - server0) / elapsed * 100.0,
        (gen1 - gen0) / elapsed * 100.0,
        other,
        ctx.closed.load(Relaxed) - closed_before,
    );
    if other > 10.0 && run.infra_is_other {
        println!("  (other CPU includes Postgres and Redis)");
    } else if other > 10.0 {
        println!("  DISTURBED: other processes used {other:.0} % of a core during this phase");
    }
    if let Some(per) = ctx.bytes.load(Relaxed).checked_div(delivered) {
        println!("  ({per} bytes of stream per delivery; {} send errors)", ctx.post_errors.load(Relaxed));
    }
    if let Some(e) = ctx.first_error.lock().unwrap().take() {
        println!("  first error: {e}");
    }
    if expected > 0 && delivered == 0 {
        println!("  NOT MEASURABLE: no message reached any stream within 5 s of the last send");
    }
    other > 10.0 && !run.infra_is_other
}

/// Tries a phase up to three times while other processes disturb it; returns the next
/// free sequence number.
async fn measure(run: &Run, targets: &Arc<Vec<Target>>, mut seq: usize, rate: usize, secs: usize, label: &str) -> usize {
    for _ in 0..ATTEMPTS {
        let disturbed = run_phase(run, targets, seq, rate, secs, label).await;
        seq += rate * secs;
        tokio::time::sleep(Duration::from_secs(2)).await;
        if !disturbed {
            break;
        }
    }
    seq
}

const HEADER: &str = "| case | target msg/s | sent msg/s | deliveries/s | delivered / expected | p50 ms | p99 ms | max ms | POST p50 / p99 ms | server CPU | generator CPU | other CPU | streams dropped |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|";

// ---------- commands ----------

async fn idle(args: &Args) {
    let n: usize = args.0.get(1).and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let users = args.num("users", 100);
    let http = http_client();
    let mut server = Server::start(&http, args.num("server-cpu", 0), None, None).await;
    let cookies = Arc::new(register_users(&http, server.addr, users).await);
    if args.get("restart", "yes") == "yes" {
        server.restart(&http).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let me = std::process::id();
    let (rss0, kernel0, gen0) = (rss_kib(server.pid), slab_kib(), rss_kib(me));
    let ctx = Ctx::new(1);
    let started = Instant::now();
    let tasks = open_streams(&ctx, server.addr, &cookies, |i| i % users, 0..n).await;
    let open_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let open = ctx.opened.load(Relaxed) - ctx.closed.load(Relaxed);
    let (rss1, kernel1, gen1) = (rss_kib(server.pid), slab_kib(), rss_kib(me));
    tokio::time::sleep(Duration::from_secs(args.num("hold", 10) as u64)).await;
    let still = ctx.opened.load(Relaxed) - ctx.closed.load(Relaxed);
    let per = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / open.max(1) as f64;
    println!("| streams asked | open | failed | open time s | server RSS before → after | server RSS per stream | kernel slab per connection (both ends) | generator RSS per stream | still open after hold |");
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {n} | {open} | {} | {open_secs:.2} | {:.1} → {:.1} MiB | {:.1} KiB | {:.1} KiB | {:.1} KiB | {still} |",
        ctx.failed.load(Relaxed),
        rss0 as f64 / 1024.0,
        rss1 as f64 / 1024.0,
        per(rss0, rss1),
        per(kernel0, kernel1),
        per(gen0, gen1),
    );
    if let Some(e) = ctx.first_error.lock().unwrap().as_deref() {
        println!("  first error: {e}");
    }
    tasks.iter().for_each(JoinHandle::abort);
    tokio::time::sleep(Duration::from_secs(3)).await;
    println!("after closing every stream: server RSS {:.1} MiB", rss_kib(server.pid) as f64 / 1024.0);
}

async fn fanout(args: &Args) {
    let (sizes, rates) = (args.list("subs", "1000,10000"), args.list("rates", "10,100"));
    let (users, secs) = (args.num("users", 500), args.num("secs", 10));
    let http = http_client();
    let bare = args.get("bare", "");
    let (server, cookies, conv) = if bare.is_empty() {
        let mut server = Server::start(&http, args.num("server-cpu", 0), None, None).await;
        let cookies = Arc::new(register_users(&http, server.addr, users).await);
        let members: Vec<usize> = (1..users).collect();
        let conv = create_group(&http, server.addr, &cookies, 0, "fanout", &members).await;
        server.restart(&http).await;
        println!("group {conv} with {users} members; streams are spread evenly over them");
        (server, cookies, conv)
    } else {
        // The bare broadcaster has no users: every stream hears every send.
        let server = Server::start_bare(&http, args.num("server-cpu", 0), &bare).await;
        println!("bare broadcaster {bare}; one channel, no users");
        (server, Arc::new(vec![String::new(); users]), 0)
    };
    let label_of = |streams: usize| if bare.is_empty() { format!("1 group, {streams} streams") } else { format!("bare-sse, {streams} streams") };
    let ctx = Ctx::new(ATTEMPTS * sizes.len() * rates.iter().sum::<usize>() * secs + 1);
    let run =
        Run { ctx: ctx.clone(), http: http.clone(), post_to: server.addr, cookies: cookies.clone(), pids: vec![server.pid], infra_is_other: false, bare: !bare.is_empty(), pad: "x".repeat(args.num("pad", 0)).into() };
    let (mut tasks, mut seq) = (Vec::new(), 0);
    for &size in &sizes {
        let have = ctx.opened.load(Relaxed);
        tasks.extend(open_streams(&ctx, server.addr, &cookies, |i| i % users, have..size.max(have)).await);
        tokio::time::sleep(Duration::from_secs(2)).await;
        println!("server RSS with {size} streams: {:.1} MiB\n\n{HEADER}", rss_kib(server.pid) as f64 / 1024.0);
        for &rate in &rates {
            let streams = (ctx.opened.load(Relaxed) - ctx.closed.load(Relaxed)) as u64;
            let targets = Arc::new(vec![Target { conv, senders: vec![0], streams }]);
            let label = label_of(streams as usize);
            seq = measure(&run, &targets, seq, rate, secs, &label).await;
        }
        println!();
    }
    tasks.iter().for_each(JoinHandle::abort);
}

/// `rooms` (one SQLite instance) and `cross` (two instances on Postgres + Redis: posts
/// to A, streams on B). Member k of room r is user (r + k·users/members) mod users, so
/// every user is in rooms·members/users rooms and every room has distinct members.
async fn rooms(args: &Args, cross: bool) {
    let (room_count, members, users) = (args.num("rooms", 1000), args.num("members", 10), args.num("users", 1000));
    let (per_user, secs) = (args.num("streams-per-user", 1), args.num("secs", 10));
    let rates = args.list("rates", if cross { "5000" } else { "2000,10000" });
    assert!(users >= members, "need at least as many users as members per room");
    let http = http_client();
    let cpu = args.num("server-cpu", 0);
    let mut pg = None;
    let (mut a, mut b) = if cross {
        let base = std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let redis = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let name = format!("reale_bench_{}", std::process::id());
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&base).await.expect("Postgres reachable (TEST_DATABASE_URL)");
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.expect("create database");
        let url = format!("{}/{name}", base.rsplit_once('/').expect("database URL").0);
        pg = Some((base, name));
        let a = Server::start(&http, cpu, Some(&url), Some(&redis)).await;
        let b = Server::start(&http, cpu, Some(&url), Some(&redis)).await;
        (a, Some(b))
    } else {
        (Server::start(&http, cpu, None, None).await, None)
    };
    let cookies = Arc::new(register_users(&http, a.addr, users).await);
    let step = users / members;
    let member_lists: Vec<Vec<usize>> = (0..room_count).map(|r| (0..members).map(|k| (r + k * step) % users).collect()).collect();
    let started = Instant::now();
    let convs = par(room_count, 8, |r| {
        let (http, cookies, list, addr) = (http.clone(), cookies.clone(), member_lists[r].clone(), a.addr);
        async move { create_group(&http, addr, &cookies, list[0], &format!("room {r}"), &list[1..]).await }
    })
    .await;
    println!("created {room_count} groups of {members} in {:.1} s; each user is in {} rooms", started.elapsed().as_secs_f64(), room_count * members / users);
    a.restart(&http).await;
    if let Some(b) = b.as_mut() {
        b.restart(&http).await;
    }
    let stream_server = b.as_ref().unwrap_or(&a);
    let targets: Arc<Vec<Target>> =
        Arc::new(convs.iter().zip(&member_lists).map(|(&conv, list)| Target { conv, senders: list.clone(), streams: (members * per_user) as u64 }).collect());
    let ctx = Ctx::new(ATTEMPTS * rates.iter().sum::<usize>() * secs + 1);
    let tasks = open_streams(&ctx, stream_server.addr, &cookies, |i| i % users, 0..users * per_user).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pids: Vec<u32> = [Some(a.pid), b.as_ref().map(|b| b.pid)].into_iter().flatten().collect();
    let run = Run { ctx: ctx.clone(), http: http.clone(), post_to: a.addr, cookies: cookies.clone(), pids, infra_is_other: cross, bare: false, pad: "".into() };
    let where_ = if cross { "A → B" } else { "1 instance" };
    println!("\n{HEADER}");
    let mut seq = 0;
    for &rate in &rates {
        let label = format!("{room_count} rooms × {members}, {where_}");
        seq = measure(&run, &targets, seq, rate, secs, &label).await;
    }
    tasks.iter().for_each(JoinHandle::abort);
    drop((a, b));
    if let Some((base, name)) = pg {
        use sqlx::Connection;
        if let Ok(mut conn) = sqlx::PgConnection::connect(&base).await {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await;
        }
    }
}
