//! Cross-site request forgery guard: unsafe methods must come from our own origin.
//!
//! Browsers tell us where a request comes from (`Sec-Fetch-Site`, `Origin`), so pages
//! need no per-request token and stay byte-identical, which keeps them cacheable.
//! Requests without either header (curl, old browsers) pass: SameSite=Lax cookies
//! already keep a cross-site form from carrying the session.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::AppError;
use crate::state::AppState;

pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let safe = matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe && is_cross_site(request.headers(), &state.config.public_origin()) {
        tracing::warn!(path = %request.uri().path(), "refused a cross-site request");
        return AppError::Forbidden("This request came from another site and was refused.").into_response();
    }
    next.run(request).await
}

fn is_cross_site(headers: &HeaderMap, public_origin: &str) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return !matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return false;
    };
    if origin == public_origin {
        return false;
    }
    // Reached by another name than the public URL (e.g. localhost vs 127.0.0.1):
    // same-origin means the Origin's host matches the Host header.
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let origin_host = origin.split_once("://").map(|(_, rest)| rest).unwrap_or("");
    host.is_empty() || origin_host != host
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn origin_rules() {
        let me = "http://127.0.0.1:8080";
        assert!(!is_cross_site(&headers(&[]), me));
        assert!(!is_cross_site(&headers(&[("sec-fetch-site", "same-origin")]), me));
        assert!(is_cross_site(&headers(&[("sec-fetch-site", "cross-site")]), me));
        assert!(is_cross_site(&headers(&[("sec-fetch-site", "same-site")]), me));
        assert!(!is_cross_site(&headers(&[("origin", "http://127.0.0.1:8080")]), me));
        assert!(is_cross_site(&headers(&[("origin", "http://evil.example")]), me));
        assert!(is_cross_site(&headers(&[("origin", "null")]), me));
        assert!(!is_cross_site(&headers(&[("origin", "http://localhost:9000"), ("host", "localhost:9000")]), me));
        assert!(is_cross_site(&headers(&[("origin", "http://evil.example"), ("host", "localhost:9000")]), me));
    }
}
