//! The installable app over HTTP (acceptance 5, the parts a browser is not needed for):
//! the manifest, the service worker and the offline page answer without a session, with
//! the right types; every page links the manifest and both theme colours.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use crate::on_both_backends;
use crate::support::TestApp;

on_both_backends!(manifest_names_the_app_and_its_icons, service_worker_precaches_the_shell_from_the_root, offline_page_needs_no_session);

/// Status, content type and bytes of a GET with no cookies.
async fn fetch(app: &TestApp, path: &str) -> (StatusCode, String, Vec<u8>) {
    let request = Request::builder().uri(path).body(Body::empty()).expect("request");
    let response = app.router.clone().oneshot(request).await.expect("infallible");
    let kind = response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body").to_bytes().to_vec();
    (status, kind, bytes)
}

/// A PNG's width and height, from its IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n") && &bytes[12..16] == b"IHDR", "a PNG");
    let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    (word(16), word(20))
}

async fn manifest_names_the_app_and_its_icons(app: TestApp) {
    let (status, kind, body) = fetch(&app, "/manifest.webmanifest").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(kind, "application/manifest+json");
    let manifest: Value = serde_json::from_slice(&body).expect("the manifest is JSON");
    assert_eq!(manifest["name"], "Reale");
    assert!(manifest["short_name"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(manifest["start_url"], "/");
    assert_eq!(manifest["scope"], "/");
    assert_eq!(manifest["display"], "standalone");
    assert!(manifest["theme_color"].as_str().is_some_and(|c| c.starts_with('#')));
    assert!(manifest["background_color"].as_str().is_some_and(|c| c.starts_with('#')));
    let icons = manifest["icons"].as_array().expect("icons");
    let mut seen = Vec::new();
    for icon in icons {
        let src = icon["src"].as_str().expect("src");
        let (status, kind, bytes) = fetch(&app, src).await;
        assert_eq!((status, kind.as_str()), (StatusCode::OK, "image/png"), "{src}");
        let (w, h) = png_size(&bytes);
        assert_eq!(icon["sizes"], format!("{w}x{h}"), "{src} is as large as the manifest says");
        assert_eq!(icon["type"], "image/png");
        seen.push((w, icon["purpose"].as_str().unwrap_or("any").to_string()));
    }
    assert!(seen.iter().any(|(w, _)| *w == 192), "a 192 px icon: {seen:?}");
    assert!(seen.iter().any(|(w, p)| *w == 512 && p == "any"), "a 512 px icon: {seen:?}");
    assert!(seen.iter().any(|(_, p)| p.contains("maskable")), "a maskable icon: {seen:?}");

    // Every page links it, with a theme colour for each colour scheme.
    let (_, _, login) = fetch(&app, "/login").await;
    let login = String::from_utf8(login).expect("utf-8");
    assert!(login.contains(r#"<link rel="manifest" href="/manifest.webmanifest">"#), "{login}");
    assert!(login.contains(r##"<meta name="theme-color" content="#ffffff" media="(prefers-color-scheme: light)">"##));
    assert!(login.contains(r##"<meta name="theme-color" content="#1e2127" media="(prefers-color-scheme: dark)">"##));
}

async fn service_worker_precaches_the_shell_from_the_root(app: TestApp) {
    let (status, kind, body) = fetch(&app, "/sw.js").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(kind, "text/javascript; charset=utf-8");
    let script = String::from_utf8(body).expect("utf-8");
    // The hashed assets the login page uses, and the offline page.
    let (_, _, login) = fetch(&app, "/login").await;
    let login = String::from_utf8(login).expect("utf-8");
    let assets: Vec<&str> = login.split('"').filter(|s| s.starts_with("/assets/")).collect();
    assert!(assets.len() >= 4, "the login page uses CSS, htmx, app.js and the icon: {assets:?}");
    let shell = script.split("const SHELL = ").nth(1).and_then(|s| s.split(";\n").next()).expect("the precache list");
    let shell: Vec<String> = serde_json::from_str(shell).expect("the precache list is a JSON array");
    for asset in assets {
        assert!(shell.iter().any(|s| s == asset), "the worker precaches {asset}: {shell:?}");
    }
    assert!(shell.iter().any(|s| s == "/offline"), "the worker precaches the offline page: {shell:?}");
    // The cache is named after the assets, so a deploy with new ones replaces it.
    let cache = script.split("const CACHE = \"").nth(1).and_then(|s| s.split('"').next()).expect("a cache name");
    assert!(cache.len() > "reale-".len() + 8, "the cache name carries a hash: {cache}");
}

async fn offline_page_needs_no_session(app: TestApp) {
    let (status, kind, body) = fetch(&app, "/offline").await;
    assert_eq!(status, StatusCode::OK);
    assert!(kind.starts_with("text/html"), "{kind}");
    let page = String::from_utf8(body).expect("utf-8");
    assert!(page.contains("Reale can&#x27;t reach the server. It will reload when it is back.") || page.contains("Reale can't reach the server. It will reload when it is back."), "{page}");
}
