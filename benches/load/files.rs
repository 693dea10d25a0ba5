//! `files`: what uploads cost the server (issue 12, acceptances 4 and 8).
//!
//! 1. `--uploads` (default 100) uploads of `--mb` MB (default 10) at once to one
//!    conversation, each a streamed multipart body in 64 KiB slices as a network would
//!    carry it: wall time, MB/s, the server's CPU seconds per GB and its peak RSS
//!    (sampled every 10 ms on a thread of its own).
//! 2. A 2 GB upload announced by `Content-Length` on a raw connection that then keeps
//!    sending: the status the server answers and its RSS before, during and after.
//!
//! The body is random bytes (sniffed as a plain file, so no image work): this measures
//! the upload path itself. Thumbnail time is `server_bench -- thumbnails`.

use super::*;

use http_body_util::StreamBody;
use http_body_util::combinators::BoxBody;
use hyper::body::Frame;

const BOUNDARY: &str = "reale-load-files";

pub(super) async fn files(args: &Args) {
    let (uploads, mb) = (args.num("uploads", 100), args.num("mb", 10));
    let http = http_client();
    let mut server = Server::start(&http, args.num("server-cpu", 0), None, None).await;
    let addr = server.addr;
    let cookie = register_users(&http, addr, 1).await.remove(0);
    let opened = expect_redirect("open saved messages", request(&http, addr, "POST", "/u/u0/message", Some(&cookie), "").await);
    let conversation: i64 = opened.location.trim_start_matches("/c/").parse().expect("a conversation id");
    server.restart(&http).await;
    wait_quiet(&[server.pid]).await;

    let pid = server.pid;
    let idle = rss_kib(pid);
    let sampler = Sampler::start(pid);
    // Random bytes, so no storage layer or sniffer gets an easy ride; one buffer shared by
    // every request (Bytes are counted references).
    let file = Bytes::from((0..mb * 1024 * 1024).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3]).collect::<Vec<u8>>());
    let client = Client::builder(TokioExecutor::new()).build_http::<BoxBody<Bytes, std::io::Error>>();
    let (cpu_before, busy_before, started) = (cpu_secs(pid), machine_busy_secs(), Instant::now());
    let sends = (0..uploads).map(|n| {
        let (client, file, cookie) = (client.clone(), file.clone(), cookie.clone());
        tokio::spawn(async move {
            let head = format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"client_id\"\r\n\r\nbench{n}\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"f{n}.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            );
            let mut frames = vec![Bytes::from(head)];
            frames.extend((0..file.len()).step_by(64 * 1024).map(|at| file.slice(at..(at + 64 * 1024).min(file.len()))));
            frames.push(Bytes::from(format!("\r\n--{BOUNDARY}--\r\n")));
            let body = StreamBody::new(futures_util::stream::iter(frames.into_iter().map(|b| Ok::<_, std::io::Error>(Frame::data(b)))));
            let request = Request::post(format!("http://{addr}/c/{conversation}/messages"))
                .header(header::CONTENT_TYPE, format!("multipart/form-data; boundary={BOUNDARY}"))
                .header(header::COOKIE, cookie)
                .header("sec-fetch-site", "same-origin")
                .body(BoxBody::new(body))
                .expect("request");
            client.request(request).await.map(|r| r.status()).map_err(|e| e.to_string())
        })
    });
    let statuses: Vec<Result<StatusCode, String>> = futures_util::future::join_all(sends).await.into_iter().map(|r| r.expect("task")).collect();
    let (wall, cpu, busy) = (started.elapsed().as_secs_f64(), cpu_secs(pid) - cpu_before, machine_busy_secs() - busy_before);
    let peak = sampler.stop();
    let stored = statuses.iter().filter(|s| matches!(s, Ok(StatusCode::SEE_OTHER))).count();
    assert_eq!(stored, uploads, "every upload stored: {statuses:?}");
    let total_mb = (uploads * mb) as f64;
    println!(
        "files: {uploads} × {mb} MB at once: {wall:.2} s wall, {:.0} MB/s; server CPU {cpu:.2} s ({:.2} s per GB); machine busy {busy:.2} CPU-s; server RSS {:.1} MiB idle → {:.1} MiB peak",
        total_mb / wall,
        cpu / (total_mb / 1024.0),
        idle as f64 / 1024.0,
        peak as f64 / 1024.0
    );

    // A 2 GB announcement, then bytes anyway: the server must answer without reading them.
    let before = rss_kib(pid);
    let sampler = Sampler::start(pid);
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /c/{conversation}/messages HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nSec-Fetch-Site: same-origin\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n\r\n",
        2u64 * 1024 * 1024 * 1024
    );
    stream.write_all(head.as_bytes()).await.expect("send head");
    let (mut reader, mut writer) = stream.into_split();
    let pusher = tokio::spawn(async move {
        let chunk = vec![0u8; 1024 * 1024];
        let mut sent = 0usize;
        // Up to 256 MB, or until the server stops taking them.
        while sent < 256 * 1024 * 1024 {
            match tokio::time::timeout(Duration::from_secs(2), writer.write_all(&chunk)).await {
                Ok(Ok(())) => sent += chunk.len(),
                _ => break,
            }
        }
        sent
    });
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(30), reader.read(&mut answer)).await.expect("an answer within 30 s").expect("read");
    let status_line = String::from_utf8_lossy(&answer[..n]).lines().next().unwrap_or("").to_string();
    let during = rss_kib(pid);
    let sent = pusher.await.expect("pusher");
    let peak = sampler.stop();
    println!(
        "files: 2 GB Content-Length: answered `{status_line}`; the client got {} MB into the socket before it stopped taking them; server RSS {:.1} MiB before, {:.1} MiB at the answer, {:.1} MiB peak, {:.1} MiB after",
        sent / (1024 * 1024),
        before as f64 / 1024.0,
        during as f64 / 1024.0,
        peak as f64 / 1024.0,
        rss_kib(pid) as f64 / 1024.0
    );
    assert!(status_line.contains("413"), "a 2 GB upload is refused with 413, got {status_line}");
}

/// Peak RSS of a process, sampled every 10 ms on its own thread (the runtime's one thread
/// is busy pushing bytes).
struct Sampler {
    done: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = done.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(Relaxed) {
                peak = peak.max(rss_kib(pid));
                std::thread::sleep(Duration::from_millis(10));
            }
            peak.max(rss_kib(pid))
        });
        Sampler { done, thread }
    }

    fn stop(self) -> u64 {
        self.done.store(true, Relaxed);
        self.thread.join().expect("sampler")
    }
}
