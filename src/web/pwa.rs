//! The installable app: the web app manifest, the service worker (served from the root
//! so its scope is the whole site) and the offline page it falls back to. None of them
//! needs a signed-in user: the browser fetches them on its own, without asking.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::state::AppState;
use crate::web::{assets, layout::Page};

/// The light page background and top bar (`app.css`): what the browser paints around
/// the app before and while it runs. The manifest has one theme colour; the dark one is
/// a `<meta name="theme-color">` in `layouts/base.html`, which wins where supported.
const BACKGROUND_LIGHT: &str = "#f6f7f9";
const THEME_LIGHT: &str = "#ffffff";

/// Where navigations land when the server cannot be reached.
pub const OFFLINE_PATH: &str = "/offline";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/manifest.webmanifest", get(manifest))
        .route("/sw.js", get(service_worker))
        .route(OFFLINE_PATH, get(offline))
}

async fn manifest() -> Response {
    let body = json!({
        "id": "/",
        "name": "Reale",
        "short_name": "Reale",
        "description": "Messages with the people on this Reale server.",
        "start_url": "/",
        "scope": "/",
        "display": "standalone",
        "background_color": BACKGROUND_LIGHT,
        "theme_color": THEME_LIGHT,
        "icons": [
            { "src": assets::url("icon-192.png"), "sizes": "192x192", "type": "image/png", "purpose": "any" },
            { "src": assets::url("icon-512.png"), "sizes": "512x512", "type": "image/png", "purpose": "any" },
            { "src": assets::url("icon-maskable-512.png"), "sizes": "512x512", "type": "image/png", "purpose": "maskable" },
        ],
    });
    revalidated(body.to_string().into_response(), "application/manifest+json")
}

#[derive(Template)]
#[template(path = "pwa/sw.js", escape = "none")]
struct ServiceWorker {
    /// Changes with any asset, so a deploy installs a new worker with a new cache.
    version: String,
    /// The URLs to precache, as a JSON array.
    shell: String,
    offline: &'static str,
    /// The notification icon's URL, as a JSON string.
    icon: String,
}

async fn service_worker() -> Response {
    let mut shell: Vec<&str> = assets::urls().collect();
    shell.push(OFFLINE_PATH);
    let worker = ServiceWorker {
        version: assets::version(),
        shell: serde_json::to_string(&shell).unwrap_or_else(|_| "[]".into()),
        offline: OFFLINE_PATH,
        icon: serde_json::to_string(assets::url("icon-192.png")).unwrap_or_else(|_| "\"\"".into()),
    };
    match worker.render() {
        Ok(body) => revalidated(body.into_response(), "text/javascript; charset=utf-8"),
        Err(error) => crate::error::AppError::Internal(error.to_string()).into_response(),
    }
}

/// Asked again on every use: the manifest and the worker name the hashed assets, so a
/// stale copy would keep a deploy's old assets alive.
fn revalidated(mut response: Response, content_type: &'static str) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[derive(Template, WebTemplate)]
#[template(path = "pwa/offline.html")]
struct OfflinePage {
    page: Page,
}

/// A static page for nobody in particular: the worker caches it at install and shows
/// it, at whatever address was asked for, when the server cannot be reached.
async fn offline() -> impl IntoResponse {
    OfflinePage { page: Page::anonymous("Offline") }
}
