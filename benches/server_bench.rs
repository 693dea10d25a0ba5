//! server-bench: what servers cost, for BENCHMARKS.md (issue 11, acceptance 7).
//!
//! cargo bench --bench server_bench -- permissions    one member's permissions in one channel
//! cargo bench --bench server_bench -- channel-page   a channel page in a server of 10,000 members
//!
//! Pinned to one core (CPU 0, or BENCH_CPU), like reale_bench. SQLite.

#[path = "support/cpu.rs"]
mod cpu;
use cpu::{cpu_secs, machine_busy_secs};

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use clap::Parser;
use http_body_util::BodyExt;
use tower::ServiceExt;

use reale::servers::context::{CategoryRow, ChannelRow, MemberFacts, OverrideRow, RoleRow, ServerRow, ServerShape};
use reale::servers::permissions::{DEFAULT_EVERYONE, Permissions};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const MEMBERS: i64 = 10_000;
const CHANNELS: i64 = 100;
const ROLES: i64 = 10;

fn main() {
    let cpu: usize = std::env::var("BENCH_CPU").ok().and_then(|c| c.parse().ok()).unwrap_or(0);
    cpu::pin_to(cpu);
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    match args.first().map(String::as_str) {
        Some("permissions") => permissions(),
        Some("channel-page") => tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime").block_on(channel_page()),
        _ => eprintln!("usage: cargo bench --bench server_bench -- permissions | channel-page"),
    }
}

/// A server's shape as a busy community has it: ten roles, a hundred channels in ten
/// categories, each category with an @everyone and two role overrides, every fifth
/// channel with its own (unsynced) overrides and a member override.
fn shape() -> ServerShape {
    let server = ServerRow { id: 1, name: "Big".into(), description: String::new(), owner_id: 1, created_at: 0, version: 1 };
    let mut roles: Vec<RoleRow> = (1..=ROLES)
        .rev()
        .map(|n| RoleRow {
            id: 100 + n,
            name: format!("role {n}"),
            color: String::new(),
            permissions: if n == ROLES { Permissions::MANAGE_MESSAGES.bits() as i64 } else { 0 },
            position: n,
            hoist: n > 7,
            mentionable: false,
            is_everyone: false,
        })
        .collect();
    roles.push(RoleRow { id: 100, name: "@everyone".into(), color: String::new(), permissions: DEFAULT_EVERYONE.bits() as i64, position: 0, hoist: false, mentionable: false, is_everyone: true });
    let categories: Vec<CategoryRow> = (0..10).map(|n| CategoryRow { id: 1000 + n, name: format!("category {n}"), position: n }).collect();
    let channels: Vec<ChannelRow> = (0..CHANNELS)
        .map(|n| ChannelRow {
            id: 2000 + n,
            kind: "text".into(),
            name: format!("channel-{n}"),
            category_id: Some(1000 + n / 10),
            position: n,
            topic: String::new(),
            slowmode_seconds: 0,
            synced: n % 5 != 0,
            last_message_id: 0,
        })
        .collect();
    let row = |target_kind: &str, target_id: i64, subject_kind: &str, subject_id: i64, allow: Permissions, deny: Permissions| OverrideRow {
        target_kind: target_kind.into(),
        target_id,
        subject_kind: subject_kind.into(),
        subject_id,
        allow_bits: allow.bits() as i64,
        deny_bits: deny.bits() as i64,
    };
    let mut overrides = Vec::new();
    for category in &categories {
        overrides.push(row("category", category.id, "role", 100, Permissions::empty(), Permissions::SEND_MESSAGES));
        overrides.push(row("category", category.id, "role", 103, Permissions::SEND_MESSAGES, Permissions::empty()));
        overrides.push(row("category", category.id, "role", 105, Permissions::ADD_REACTIONS, Permissions::ATTACH_FILES));
    }
    for channel in channels.iter().filter(|c| !c.synced) {
        overrides.push(row("channel", channel.id, "role", 100, Permissions::empty(), Permissions::VIEW_CHANNEL));
        overrides.push(row("channel", channel.id, "role", 103, Permissions::VIEW_CHANNEL, Permissions::empty()));
        overrides.push(row("channel", channel.id, "member", 7, Permissions::MANAGE_MESSAGES, Permissions::empty()));
    }
    ServerShape::new(server, roles, categories, channels, overrides)
}

fn permissions() {
    let shape = shape();
    let member = MemberFacts { user_id: 7, role_ids: vec![103, 105, 108], timeout_until: None };
    // The member's roles looked up once, as the channel list and the re-plan do.
    let roles = shape.held_roles(&member);
    let mut sink = 0u64;
    for channel in &shape.channels {
        sink ^= shape.channel_permissions(channel, &member).bits();
    }
    for round in 0..3 {
        let rounds = 20_000;
        let started = Instant::now();
        for _ in 0..rounds {
            for channel in &shape.channels {
                sink ^= std::hint::black_box(shape.channel_permissions_held(std::hint::black_box(channel), &member, &roles)).bits();
            }
        }
        let each = started.elapsed().as_nanos() as f64 / (rounds as f64 * shape.channels.len() as f64);
        println!("permissions (round {round}): {each:.0} ns per (member, channel), {} overrides, member holds 3 of {ROLES} roles", shape.overrides.len());
    }
    std::hint::black_box(sink);
}

struct App {
    state: reale::AppState,
    router: axum::Router,
    dir: std::path::PathBuf,
}

impl App {
    async fn request(&self, request: Request<Body>) -> (StatusCode, String, String) {
        let response = self.router.clone().oneshot(request).await.expect("response");
        let status = response.status();
        let location = response.headers().get(header::LOCATION).and_then(|l| l.to_str().ok()).unwrap_or("").to_string();
        let body = response.into_body().collect().await.expect("body").to_bytes();
        (status, location, String::from_utf8_lossy(&body).into_owned())
    }

    async fn register(&self, username: &str) -> String {
        let body = format!("username={username}&email={username}%40example.org&password=correct+horse+battery+staple");
        let request = Request::post("/register").header(header::CONTENT_TYPE, "application/x-www-form-urlencoded").body(Body::from(body)).expect("request");
        let response = self.router.clone().oneshot(request).await.expect("response");
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        response.headers().get(header::SET_COOKIE).expect("cookie").to_str().expect("ascii").split(';').next().expect("pair").to_string()
    }

    async fn post(&self, cookie: &str, path: &str, body: &str) -> String {
        let request = Request::post(path)
            .header(header::COOKIE, cookie)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body.to_string()))
            .expect("request");
        self.request(request).await.1
    }

    /// A timed request: the body is read but not decoded (decoding is the bench's cost, not the server's).
    async fn status_of(&self, cookie: &str, path: &str) -> StatusCode {
        let request = Request::get(path).header(header::COOKIE, cookie).body(Body::empty()).expect("request");
        let response = self.router.clone().oneshot(request).await.expect("response");
        let status = response.status();
        std::hint::black_box(response.into_body().collect().await.expect("body").to_bytes());
        status
    }

    async fn get(&self, cookie: &str, path: &str) -> (StatusCode, String) {
        let request = Request::get(path).header(header::COOKIE, cookie).body(Body::empty()).expect("request");
        let (status, _, body) = self.request(request).await;
        (status, body)
    }

    async fn sql(&self, statement: &str) {
        let reale::store::Db::Sqlite(pool) = &self.state.store.db else { unreachable!("SQLite bench") };
        sqlx::query(statement).execute(pool).await.unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
}

/// A server of 10,000 members and 100 text channels (ten roles, overrides as in
/// `shape`): the viewer, a member with two roles, opens #general with 50 messages.
async fn channel_page() {
    let dir = std::env::temp_dir().join(format!("server_bench_{}", rand::random::<u32>()));
    let url = format!("sqlite://{}", dir.join("reale.db").display());
    let mut config = reale::Config::parse_from(["reale", "--data-dir", &dir.display().to_string(), "--database-url", &url]);
    config.redis_url = None;
    for limit in [&mut config.send_limit, &mut config.register_limit, &mut config.write_limit, &mut config.create_limit, &mut config.search_limit] {
        *limit = u32::MAX;
    }
    let state = reale::build_state(config).await.expect("app starts");
    let app = App { router: reale::app(state.clone()), state, dir };

    let owner = app.register("owner").await;
    let viewer = app.register("viewer").await;
    let server: i64 = app.post(&owner, "/servers", "name=Big").await.trim_start_matches("/s/").parse().expect("server id");
    let started = Instant::now();
    for n in 1..CHANNELS - 1 {
        app.post(&owner, &format!("/s/{server}/channels"), &format!("kind=text&name=channel-{n}&category=none")).await;
    }
    // Members, roles and their holders straight into the tables: the fixture, not the
    // thing measured.
    app.sql(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {})
         INSERT INTO users (username, email, password_hash, created_at) SELECT 'm' || i, 'm' || i || '@example.org', 'x', 0 FROM n",
        MEMBERS - 2
    ))
    .await;
    app.sql(&format!("INSERT INTO server_members (server_id, user_id, joined_at) SELECT {server}, id, 0 FROM users WHERE username LIKE 'm%'")).await;
    for n in 1..=ROLES {
        app.sql(&format!("INSERT INTO roles (server_id, name, permissions, position) VALUES ({server}, 'role {n}', 0, {n})")).await;
    }
    app.sql(&format!(
        "INSERT INTO member_roles (server_id, user_id, role_id) SELECT {server}, sm.user_id, r.id FROM server_members sm
         JOIN roles r ON r.server_id = sm.server_id AND NOT r.is_everyone AND (r.position = 1 + sm.user_id % {ROLES} OR r.position = 1 + (sm.user_id / 7) % {ROLES})
         WHERE sm.server_id = {server}"
    ))
    .await;
    app.sql(&format!(
        "INSERT INTO overrides (server_id, target_kind, target_id, subject_kind, subject_id, allow_bits, deny_bits)
         SELECT {server}, 'channel', c.id, 'role', r.id, {}, 0 FROM conversations c JOIN roles r ON r.server_id = c.server_id AND r.position IN (3, 5)
         WHERE c.server_id = {server}",
        Permissions::ADD_REACTIONS.bits()
    ))
    .await;
    // The viewer joins by invite; a new category then re-plans every member's access
    // (the cost of a server-wide permission change), which also gives them their rows.
    app.post(&owner, &format!("/s/{server}/invites"), "expires=0&max_uses=0").await;
    let (_, invites) = app.get(&owner, &format!("/s/{server}/invites")).await;
    let code = invites.split("class=\"invite-link\">/i/").nth(1).and_then(|s| s.split('<').next()).expect("invite code").to_string();
    app.post(&viewer, &format!("/i/{code}"), "").await;
    println!("channel-page: setup (channels, members, roles) {:.1} s", started.elapsed().as_secs_f64());
    let replan = Instant::now();
    app.post(&owner, &format!("/s/{server}/categories"), "name=Extra").await;
    let replan = replan.elapsed();
    let rows: i64 = {
        let reale::store::Db::Sqlite(pool) = &app.state.store.db else { unreachable!() };
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM members m JOIN conversations c ON c.id = m.conversation_id WHERE c.server_id = {server}"))
            .fetch_one(pool)
            .await
            .expect("count")
    };
    println!("channel-page: a server-wide re-plan ({MEMBERS} members × {CHANNELS} channels, {rows} channel rows written) took {:.1} s", replan.as_secs_f64());

    let (_, home) = app.get(&viewer, &format!("/s/{server}")).await;
    let general: i64 = home
        .split("href=\"/c/")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|id| id.parse().ok())
        .expect("the first channel");
    for n in 0..60 {
        let who = if n % 2 == 0 { &owner } else { &viewer };
        app.post(who, &format!("/c/{general}/messages"), &format!("body=Message+{n}+with+**bold**+and+%40viewer&client_id=b{n}")).await;
    }
    let (status, page) = app.get(&viewer, &format!("/c/{general}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page.matches("role=\"listitem\" aria-labelledby=\"message-").count(), 50, "50 messages shown");
    assert!(page.matches("class=\"channel\"").count() >= 99, "the channel list");
    println!("channel-page: page is {} bytes", page.len());
    // The re-plan logged a `joined` event per row; let the dispatcher finish them
    // (this process idle for a second) before timing pages.
    let waited = Instant::now();
    loop {
        let own = cpu_secs(std::process::id());
        tokio::time::sleep(Duration::from_secs(1)).await;
        if cpu_secs(std::process::id()) - own < 0.05 || waited.elapsed() > Duration::from_secs(120) {
            break;
        }
    }
    println!("channel-page: the dispatcher caught up after {:.1} s", waited.elapsed().as_secs_f64());
    let path = format!("/c/{general}");
    for _ in 0..200 {
        app.status_of(&viewer, &path).await;
    }
    for attempt in 1..=3 {
        let (own0, all0) = (cpu_secs(std::process::id()), machine_busy_secs());
        let started = Instant::now();
        let mut latencies = Vec::new();
        while started.elapsed() < Duration::from_secs(5) {
            let t = Instant::now();
            assert_eq!(app.status_of(&viewer, &path).await, StatusCode::OK);
            latencies.push(t.elapsed());
        }
        let elapsed = started.elapsed();
        let own = cpu_secs(std::process::id()) - own0;
        let other = ((machine_busy_secs() - all0) - own) / elapsed.as_secs_f64();
        latencies.sort();
        let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)].as_secs_f64() * 1e3;
        println!(
            "channel-page: {} pages in {:.2} s = {:.0}/s; p50 {:.3} ms, p99 {:.3} ms; CPU {:.3} ms per page (other CPU {:.0} %)",
            latencies.len(),
            elapsed.as_secs_f64(),
            latencies.len() as f64 / elapsed.as_secs_f64(),
            at(0.5),
            at(0.99),
            own * 1e3 / latencies.len() as f64,
            other * 100.0
        );
        if other < 0.1 {
            break;
        }
        println!("  (other processes used {:.0} % of a core: repeating, attempt {attempt} of 3)", other * 100.0);
    }
    let _ = std::fs::remove_dir_all(&app.dir);
}
