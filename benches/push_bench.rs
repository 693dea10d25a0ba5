//! push-bench: Web Pushes sent per second to a push service on loopback, and the CPU
//! time Reale spends per push (encrypting, signing, sending, and working out who gets
//! one), for BENCHMARKS.md.
//!
//! cargo bench --bench push_bench [-- MESSAGES RECIPIENTS]   (default 500 × 20)
//!
//! Alice writes MESSAGES messages in a group that mention all RECIPIENTS members, each
//! with one subscription at the loopback service, so MESSAGES × RECIPIENTS pushes go out
//! through the real sender (queue, fan-out queries, aes128gcm, VAPID, reqwest). The
//! push service runs on a thread of its own; its CPU time is measured apart and left
//! out of Reale's. Wall time is noisy on a shared machine; CPU time per push is not.

#[path = "support/cpu.rs"]
mod cpu;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, header};
use base64ct::{Base64UrlUnpadded, Encoding};
use clap::Parser;
use tower::ServiceExt;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// CPU seconds of one thread of this process.
fn thread_cpu_secs(tid: i64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks: f64 = fields.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0) + fields.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// A push service that counts and answers 201, on its own thread and runtime.
fn start_service(count: Arc<AtomicU64>) -> (std::net::SocketAddr, i64) {
    let (ready, started) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() } as i64;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            ready.send((listener.local_addr().expect("addr"), tid)).expect("main thread waits");
            while let Ok((tcp, _)) = listener.accept().await {
                let count = count.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                        let count = count.clone();
                        async move {
                            use http_body_util::BodyExt;
                            let _ = request.into_body().collect().await;
                            count.fetch_add(1, Ordering::Relaxed);
                            let response = hyper::Response::builder().status(201).body(http_body_util::Empty::<bytes::Bytes>::new()).expect("response");
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(tcp), service).await;
                });
            }
        });
    });
    started.recv().expect("service started")
}

async fn post(router: &axum::Router, path: &str, form: &str, cookie: &str) -> axum::http::Response<Body> {
    let request = Request::builder()
        .method("POST")
        .uri(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, cookie)
        .extension(axum::extract::ConnectInfo(std::net::SocketAddr::from(([127, 0, 0, 1], 4000))))
        .body(Body::from(form.to_string()))
        .expect("request");
    router.clone().oneshot(request).await.expect("infallible")
}

fn session_cookie(response: &axum::http::Response<Body>) -> String {
    response.headers().get_all(header::SET_COOKIE).iter().filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_string)).collect::<Vec<_>>().join("; ")
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let messages = args.first().copied().unwrap_or(500);
    let recipients = args.get(1).copied().unwrap_or(20);

    let dir = std::env::temp_dir().join(format!("reale_push_bench_{}", rand::random::<u32>()));
    let url = format!("sqlite://{}", dir.join("reale.db").display());
    let mut config = reale::Config::parse_from(["reale", "--data-dir", &dir.display().to_string(), "--database-url", &url, "--push-allow-loopback"]);
    config.redis_url = None;
    config.register_limit = u32::MAX;
    config.create_limit = u32::MAX;
    let state = reale::build_state(config).await.expect("app starts");
    let router = reale::app(state.clone());

    let mut names = Vec::new();
    let mut alice = String::new();
    for n in 0..=recipients {
        let name = if n == 0 { "alice".to_string() } else { format!("user{n}") };
        let form = format!("username={name}&email={name}%40example.org&password=correct+horse+battery+staple&display_name=");
        let response = post(&router, "/register", &form, "").await;
        assert_eq!(response.status(), 303, "register {name}");
        if n == 0 {
            alice = session_cookie(&response);
        } else {
            names.push(name);
        }
    }
    let response = post(&router, "/groups", &format!("name=Bench&members={}", names.join("%2C+")), &alice).await;
    let location = response.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).expect("group created").to_string();
    let group: i64 = location.trim_start_matches("/c/").split(['/', '#', '?']).next().and_then(|s| s.parse().ok()).expect("group id");

    let count = Arc::new(AtomicU64::new(0));
    let (addr, service_tid) = start_service(count.clone());
    let devices: Vec<(i64, i64)> = reale::with_db!(state.store, pool => sqlx::query_as("SELECT d.id, d.user_id FROM devices d JOIN users u ON u.id = d.user_id WHERE u.username <> 'alice'").fetch_all(pool).await).expect("devices");
    let alice_id: i64 = reale::with_db!(state.store, pool => sqlx::query_scalar("SELECT id FROM users WHERE username = 'alice'").fetch_one(pool).await).expect("alice");
    for (device, user) in &devices {
        // Each "browser" has its own key pair and secret, as real ones do.
        let secret = p256::SecretKey::random(&mut aes_gcm::aead::OsRng);
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let p256dh = Base64UrlUnpadded::encode_string(secret.public_key().to_encoded_point(false).as_bytes());
        let auth = Base64UrlUnpadded::encode_string(&rand::random::<[u8; 16]>());
        let endpoint = format!("http://{addr}/push/{device}");
        reale::push::store::save(&state.store, *user, *device, &endpoint, &p256dh, &auth).await.expect("subscription");
    }
    let mentions: Vec<i64> = devices.iter().map(|(_, user)| *user).collect();
    let expected = (messages * mentions.len()) as u64;

    let pid = std::process::id();
    let (cpu_before, service_before, machine_before) = (cpu::cpu_secs(pid), thread_cpu_secs(service_tid), cpu::machine_busy_secs());
    let started = Instant::now();
    for n in 0..messages {
        state.push.message_sent(reale::push::Sent {
            conversation_id: group,
            message_id: n as i64 + 1,
            author_id: alice_id,
            mentions: mentions.clone(),
            reply_to_id: None,
            body: format!("@everyone message {n}: lunch at noon? Bring the **menu** and a sense of adventure."),
        });
    }
    let deadline = started + Duration::from_secs(300);
    while count.load(Ordering::Relaxed) < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let wall = started.elapsed().as_secs_f64();
    let sent = count.load(Ordering::Relaxed);
    let service_cpu = thread_cpu_secs(service_tid) - service_before;
    let reale_cpu = cpu::cpu_secs(pid) - cpu_before - service_cpu;
    let machine = cpu::machine_busy_secs() - machine_before;
    println!("pushes: {sent} of {expected} ({messages} messages x {} recipients)", mentions.len());
    println!("wall: {wall:.2} s -> {:.0} pushes/s", sent as f64 / wall);
    println!("Reale CPU: {reale_cpu:.2} s -> {:.1} us per push ({:.0} pushes per CPU-second)", reale_cpu * 1e6 / sent.max(1) as f64, sent as f64 / reale_cpu.max(1e-9));
    println!("push service CPU (left out): {service_cpu:.2} s; whole machine busy: {machine:.2} CPU-s over {wall:.2} s");
    let _ = std::fs::remove_dir_all(&dir);
}
