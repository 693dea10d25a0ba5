//! Downloads: every request asks the conversation's access check again (someone who
//! may not see the conversation gets 404, even with the exact URL), and every answer
//! is built so a file can never act as a page of ours: downloaded as an attachment
//! unless it is a picture we encoded ourselves, `nosniff`, and a sandboxing CSP.
//! Objects never change under a key, so the attachment id is a strong ETag; single
//! byte ranges are served for resumed downloads and media seeking.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;

use crate::accounts::CurrentUser;
use crate::conversations::access::require;
use crate::error::{AppError, AppResult};
use crate::state::AppState;

use super::model::{is_inline, served_type, thumb_type};
use super::store;

/// What a file response may do if a browser ever renders it: nothing.
const FILE_CSP: &str = "sandbox; default-src 'none'";

pub async fn file(State(state): State<AppState>, user: CurrentUser, headers: HeaderMap, Path((id, attachment)): Path<(i64, i64)>) -> AppResult<Response> {
    respond(&state, &user, &headers, id, attachment, false).await
}

pub async fn thumbnail(State(state): State<AppState>, user: CurrentUser, headers: HeaderMap, Path((id, attachment)): Path<(i64, i64)>) -> AppResult<Response> {
    respond(&state, &user, &headers, id, attachment, true).await
}

async fn respond(state: &AppState, user: &CurrentUser, headers: &HeaderMap, id: i64, attachment: i64, thumb: bool) -> AppResult<Response> {
    require(&state.store, user.id, id).await?;
    let row = store::shown(&state.store, id, attachment).await?.ok_or(AppError::NotFound)?;
    let (key, content_type, etag) = if thumb {
        let key = row.thumb_key.clone().ok_or(AppError::NotFound)?;
        (key, thumb_type(&row.content_type), format!("\"{}-thumb\"", row.id))
    } else {
        (row.object_key.clone(), served_type(&row.content_type), format!("\"{}\"", row.id))
    };
    let mut base = HeaderMap::new();
    base.insert(header::ETAG, value(&etag));
    base.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    base.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(FILE_CSP));
    base.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    base.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    if not_modified(headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, base).into_response());
    }
    base.insert(header::CONTENT_TYPE, value(content_type));
    let disposition = if thumb || is_inline(&row) { "inline" } else { "attachment" };
    base.insert(header::CONTENT_DISPOSITION, value(&content_disposition(disposition, &row.name)));

    // Ranges on the file itself, whose size the row holds; thumbnails come whole.
    let size = row.size.max(0) as u64;
    let range = if thumb { None } else { headers.get(header::RANGE).and_then(|v| v.to_str().ok()).and_then(|v| parse_range(v, size)) };
    base.insert(header::ACCEPT_RANGES, HeaderValue::from_static(if thumb { "none" } else { "bytes" }));
    let (status, range) = match range {
        Some(Err(Unsatisfiable)) => {
            base.insert(header::CONTENT_RANGE, value(&format!("bytes */{size}")));
            return Ok((StatusCode::RANGE_NOT_SATISFIABLE, base).into_response());
        }
        Some(Ok(range)) => {
            base.insert(header::CONTENT_RANGE, value(&format!("bytes {}-{}/{size}", range.start, range.end - 1)));
            (StatusCode::PARTIAL_CONTENT, Some(range))
        }
        None => (StatusCode::OK, None),
    };
    let object = state.files.get(&key, range.clone()).await.map_err(|e| AppError::Internal(e.to_string()))?;
    let length = match &range {
        Some(range) => range.end - range.start,
        None => object.meta.size,
    };
    base.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    let body = Body::from_stream(object.into_stream().map_err(std::io::Error::other));
    Ok((status, base, body).into_response())
}

fn value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
}

fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').map(|t| t.trim().trim_start_matches("W/")).any(|t| t == etag || t == "*"))
}

#[derive(Debug, PartialEq)]
pub struct Unsatisfiable;

/// One `bytes=` range of an object of `size` bytes, as a half-open range. `None` when
/// the header is not one we serve (several ranges, other units): the whole file then.
pub fn parse_range(header: &str, size: u64) -> Option<Result<std::ops::Range<u64>, Unsatisfiable>> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (start, end) = spec.split_once('-')?;
    let (start, end) = (start.trim(), end.trim());
    let range = if start.is_empty() {
        let suffix: u64 = end.parse().ok()?;
        if suffix == 0 || size == 0 {
            return Some(Err(Unsatisfiable));
        }
        size.saturating_sub(suffix)..size
    } else {
        let start: u64 = start.parse().ok()?;
        let end: u64 = if end.is_empty() { u64::MAX } else { end.parse().ok()? };
        if end < start {
            return None;
        }
        if start >= size {
            return Some(Err(Unsatisfiable));
        }
        start..end.min(size - 1) + 1
    };
    Some(Ok(range))
}

/// `attachment; filename="…"; filename*=UTF-8''…` (RFC 6266): an ASCII fallback and the
/// exact name percent-encoded.
pub fn content_disposition(kind: &str, name: &str) -> String {
    let fallback: String = name.chars().map(|c| if (c.is_ascii_graphic() && c != '"' && c != '\\') || c == ' ' { c } else { '_' }).collect();
    let mut encoded = String::new();
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(Ok(0..10)));
        assert_eq!(parse_range("bytes=90-", 100), Some(Ok(90..100)));
        assert_eq!(parse_range("bytes=-5", 100), Some(Ok(95..100)));
        assert_eq!(parse_range("bytes=50-500", 100), Some(Ok(50..100)));
        assert_eq!(parse_range("bytes=100-", 100), Some(Err(Unsatisfiable)));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
        assert_eq!(parse_range("bytes=9-1", 100), None);
    }

    #[test]
    fn names_are_quoted_safely() {
        assert_eq!(
            content_disposition("attachment", "a \"b\".pdf"),
            "attachment; filename=\"a _b_.pdf\"; filename*=UTF-8''a%20%22b%22.pdf"
        );
        assert_eq!(content_disposition("inline", "é.png"), "inline; filename=\"_.png\"; filename*=UTF-8''%C3%A9.png");
    }
}
