//! Static assets embedded in the binary, served under a content-hashed name with
//! `Cache-Control: immutable`, so a new release never meets a stale cache.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::error::AppError;

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset { name: "app.css", content_type: "text/css; charset=utf-8", bytes: include_bytes!("../../assets/app.css") },
    Asset { name: "app.js", content_type: "text/javascript; charset=utf-8", bytes: include_bytes!("../../assets/app.js") },
    // Only voice pages load it (WebRTC).
    Asset { name: "voice.js", content_type: "text/javascript; charset=utf-8", bytes: include_bytes!("../../assets/voice.js") },
    // Only call pages load it (after voice.js): join on arrival, hang up when the call ends.
    Asset { name: "call.js", content_type: "text/javascript; charset=utf-8", bytes: include_bytes!("../../assets/call.js") },
    Asset { name: "htmx.js", content_type: "text/javascript; charset=utf-8", bytes: include_bytes!("../../assets/vendor/htmx-2.0.11.min.js") },
    Asset { name: "sse.js", content_type: "text/javascript; charset=utf-8", bytes: include_bytes!("../../assets/vendor/htmx-ext-sse-2.2.4.min.js") },
    Asset { name: "icon.svg", content_type: "image/svg+xml", bytes: include_bytes!("../../assets/icon.svg") },
    // Drawn by assets/make-icons.py; the web app manifest lists them.
    Asset { name: "icon-192.png", content_type: "image/png", bytes: include_bytes!("../../assets/icon-192.png") },
    Asset { name: "icon-512.png", content_type: "image/png", bytes: include_bytes!("../../assets/icon-512.png") },
    Asset { name: "icon-maskable-512.png", content_type: "image/png", bytes: include_bytes!("../../assets/icon-maskable-512.png") },
];

/// FNV-1a: stable across builds and Rust versions, which `DefaultHasher` is not.
fn fingerprint(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf29ce484222325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    format!("{:012x}", hash & 0xffff_ffff_ffff)
}

/// `name` → `/assets/HASH/name`.
static URLS: LazyLock<Vec<(&'static str, String)>> = LazyLock::new(|| {
    ASSETS.iter().map(|asset| (asset.name, format!("/assets/{}/{}", fingerprint(asset.bytes), asset.name))).collect()
});

/// The hashed URL of an embedded asset; panics on a name that is not embedded, which
/// only a typo in this crate can cause (and every page test would catch).
pub fn url(name: &str) -> &'static str {
    URLS.iter()
        .find(|(n, _)| *n == name)
        .map(|(_, url)| url.as_str())
        .expect("asset names are fixed at compile time")
}

/// Every embedded asset's hashed URL (what the service worker precaches).
pub fn urls() -> impl Iterator<Item = &'static str> {
    URLS.iter().map(|(_, url)| url.as_str())
}

/// One hash over every asset's: changes whenever any asset does, so a deploy with new
/// assets gets a new service-worker cache.
pub fn version() -> String {
    fingerprint(URLS.iter().map(|(_, url)| url.as_str()).collect::<Vec<_>>().join("\n").as_bytes())
}

pub async fn serve(Path((hash, name)): Path<(String, String)>) -> Result<Response, AppError> {
    let asset = ASSETS.iter().find(|a| a.name == name).ok_or(AppError::NotFound)?;
    if fingerprint(asset.bytes) != hash {
        return Err(AppError::NotFound);
    }
    let mut response = asset.bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    Ok(response)
}
