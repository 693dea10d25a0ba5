//! The response shell every request passes through: a fresh CSP nonce per response,
//! the security headers, friendly error pages (or htmx fragments), and redirects that
//! htmx can follow.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use askama::Template;

use crate::error::ErrorInfo;
use crate::state::AppState;
use crate::web::layout::Page;

tokio::task_local! {
    static NONCE: String;
}

/// The CSP nonce of the response being built (empty outside a request).
pub fn nonce() -> String {
    NONCE.try_with(|n| n.clone()).unwrap_or_default()
}

fn fresh_nonce() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// True for requests htmx made that want a fragment (boosted navigations want pages).
pub fn wants_fragment(headers: &HeaderMap) -> bool {
    headers.contains_key("hx-request") && !headers.contains_key("hx-boosted")
}

#[derive(Template)]
#[template(path = "errors/page.html")]
struct ErrorPage<'a> {
    page: Page,
    info: &'a ErrorInfo,
    status: u16,
}

#[derive(Template)]
#[template(path = "errors/fragment.html")]
struct ErrorFragment<'a> {
    info: &'a ErrorInfo,
}

pub async fn layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let nonce = fresh_nonce();
    let is_htmx = request.headers().contains_key("hx-request");
    let fragment = wants_fragment(request.headers());
    // The reads a request makes through sqlx share one SQLite connection (`store::sqlite`).
    let mut response = NONCE.scope(nonce.clone(), crate::store::sqlite::reading(next.run(request))).await;

    if let Some(info) = error_info(&response) {
        response = NONCE.sync_scope(nonce.clone(), || render_error(response, &info, fragment));
    }
    if is_htmx && response.status().is_redirection() {
        // fetch() would follow the redirect and swap the next page into a fragment
        // target; a full navigation is what the user means.
        if let Some(location) = response.headers().get(header::LOCATION).cloned() {
            let mut redirect = StatusCode::OK.into_response();
            redirect.headers_mut().insert("hx-redirect", location);
            for cookie in response.headers().get_all(header::SET_COOKIE) {
                redirect.headers_mut().append(header::SET_COOKIE, cookie.clone());
            }
            response = redirect;
        }
    }
    security_headers(response.headers_mut(), &nonce, state.config.is_https());
    response
}

/// Marks a response whose error status and body are meant for machines (e.g.
/// `/readyz`), so the shell leaves them as they are.
#[derive(Clone, Copy)]
pub struct Verbatim;

/// Error responses from our handlers carry `ErrorInfo`; those made elsewhere (axum's
/// rejections, tower layers) get one from their status so users never see a bare code.
fn error_info(response: &Response) -> Option<ErrorInfo> {
    if let Some(info) = response.extensions().get::<ErrorInfo>() {
        return Some(info.clone());
    }
    if response.extensions().get::<Verbatim>().is_some() {
        return None;
    }
    let status = response.status();
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if (status.is_client_error() || status.is_server_error()) && !is_html {
        let error = match status {
            StatusCode::NOT_FOUND => crate::error::AppError::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => crate::error::AppError::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => crate::error::AppError::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => crate::error::AppError::UnsupportedMediaType,
            StatusCode::SERVICE_UNAVAILABLE => crate::error::AppError::Unavailable,
            s if s.is_client_error() => crate::error::AppError::Unprocessable("The request could not be understood.".into()),
            _ => crate::error::AppError::Internal(format!("status {status}")),
        };
        return error.into_response().extensions().get::<ErrorInfo>().cloned();
    }
    None
}

fn render_error(response: Response, info: &ErrorInfo, fragment: bool) -> Response {
    let (mut parts, _) = response.into_parts();
    let body = if fragment {
        ErrorFragment { info }.render()
    } else {
        ErrorPage { page: Page::anonymous(info.title), info, status: parts.status.as_u16() }.render()
    };
    let body = body.unwrap_or_else(|_| "Something went wrong.".to_string());
    if fragment {
        // Errors of inline actions show in the page's alert region, not in the target.
        parts.headers.insert("hx-retarget", HeaderValue::from_static("#flash"));
        parts.headers.insert("hx-reswap", HeaderValue::from_static("innerHTML"));
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    let mut response = (parts.status, Html(body)).into_response();
    for (name, value) in parts.headers.iter() {
        response.headers_mut().append(name, value.clone());
    }
    response
}

fn security_headers(headers: &mut HeaderMap, nonce: &str, https: bool) {
    let csp = format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'nonce-{nonce}'; \
         img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    );
    // A response that set its own (file downloads: a sandbox) keeps it.
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY)
        && let Ok(value) = HeaderValue::from_str(&csp)
    {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    if https {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=63072000; includeSubDomains"));
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        // Pages hold private data: never let a shared cache or the back button show them to the next user.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}
