//! `channel`: one text channel of a big server, heard by thousands of open streams
//! (issue 11: "fan-out of a channel message to 10,000 viewers, including persistence
//! and the VIEW_CHANNEL filter").
//!
//! The server has `--members` members (default 10,000) and `--channels` text channels
//! (default 100). `--users` of them (default 1,000) are registered and join through an
//! invite as a person would; the rest are written straight into `users` and
//! `server_members` (argon2 would make 10,000 registrations minutes of server CPU), and
//! a new category then re-plans every member's channel access, which gives everyone
//! their channel rows exactly as a permission change would. Streams are spread evenly
//! over the registered users; the owner sends to #general.

use super::*;

pub(super) async fn channel(args: &Args) {
    let (members, users, channels) = (args.num("members", 10_000), args.num("users", 1_000), args.num("channels", 100));
    let (sizes, rates, secs) = (args.list("subs", "10000"), args.list("rates", "10,50,100"), args.num("secs", 10));
    assert!(users >= 2 && members >= users && channels >= 2, "--members ≥ --users ≥ 2, --channels ≥ 2");
    let http = http_client();
    let mut server = Server::start(&http, args.num("server-cpu", 0), None, None).await;
    let addr = server.addr;
    let cookies = Arc::new(register_users(&http, addr, users).await);
    let owner = Some(cookies[0].as_str());
    let started = Instant::now();
    let created = expect_redirect("create server", request(&http, addr, "POST", "/servers", owner, "name=Big").await);
    let id: i64 = created.location.trim_start_matches("/s/").parse().expect("server id in Location");
    // A new server has #general and a voice channel; the rest are text channels.
    for n in 1..channels - 1 {
        let form = format!("kind=text&name=channel-{n}&category=none");
        expect_redirect("create channel", request(&http, addr, "POST", &format!("/s/{id}/channels"), owner, &form).await);
    }
    everyone_joins(&http, addr, &cookies, id).await;
    let fillers = members - users;
    let url = format!("sqlite://{}", server.dir.join("reale.db").display());
    let options: sqlx::sqlite::SqliteConnectOptions = url.parse().expect("database url");
    let db = sqlx::SqlitePool::connect_with(options.busy_timeout(Duration::from_secs(30))).await.expect("the server's database");
    for statement in [
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {fillers})
             INSERT INTO users (username, email, password_hash, created_at) SELECT 'filler' || i, 'filler' || i || '@example.org', 'x', 0 FROM n"
        ),
        format!("INSERT INTO server_members (server_id, user_id, joined_at) SELECT {id}, id, 0 FROM users WHERE username LIKE 'filler%'"),
    ] {
        if fillers > 0 {
            sqlx::query(&statement).execute(&db).await.unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
    }
    db.close().await;
    let replan = Instant::now();
    // Minutes on a busy machine: every member × channel row is planned in one transaction.
    let category = request_within(Duration::from_secs(1800), &http, addr, "POST", &format!("/s/{id}/categories"), owner, "name=Extra").await;
    expect_redirect("create category", category);
    println!(
        "server {id}: {members} members ({users} registered), {channels} channels; setup {:.1} s, of which the server-wide re-plan {:.1} s",
        started.elapsed().as_secs_f64(),
        replan.elapsed().as_secs_f64()
    );
    let home = request(&http, addr, "GET", &format!("/s/{id}"), owner, "").await.expect("server page");
    let home = String::from_utf8_lossy(&home.body).into_owned();
    let general: i64 = home.split("href=\"/c/").nth(1).and_then(|s| s.split('"').next()).and_then(|c| c.parse().ok()).expect("#general");
    server.restart(&http).await;

    let ctx = Ctx::new(ATTEMPTS * sizes.len() * rates.iter().sum::<usize>() * secs + 1);
    let run = Run { ctx: ctx.clone(), http: http.clone(), post_to: addr, cookies: cookies.clone(), pids: vec![server.pid], infra_is_other: false, bare: false, pad: "".into() };
    let (mut tasks, mut seq) = (Vec::new(), 0);
    for &size in &sizes {
        let have = ctx.opened.load(Relaxed);
        tasks.extend(open_streams(&ctx, addr, &cookies, |i| i % users, have..size.max(have)).await);
        tokio::time::sleep(Duration::from_secs(2)).await;
        println!("server RSS with {size} streams: {:.1} MiB\n\n{HEADER}", rss_kib(server.pid) as f64 / 1024.0);
        for &rate in &rates {
            let streams = (ctx.opened.load(Relaxed) - ctx.closed.load(Relaxed)) as u64;
            let targets = Arc::new(vec![Target { conv: general, senders: vec![0], streams }]);
            seq = measure(&run, &targets, seq, rate, secs, &format!("#general of {members} members, {streams} streams")).await;
        }
        println!();
    }
    tasks.iter().for_each(JoinHandle::abort);
}
