//! Avatars: Settings → Profile takes a picture (a plain multipart form), which goes
//! through the files pipeline's decoder (`files::picture::square`: orientation applied,
//! metadata gone, centre square at 256 px, PNG) and is stored under a new random key,
//! so a key names one picture forever and may be cached as immutable. Anyone signed in
//! may fetch a current avatar: it is shown wherever the person's name is, and names are
//! not secret between users (blocking hides presence and status, not faces).

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use bytes::BytesMut;
use futures_util::TryStreamExt;

use crate::error::{AppError, AppResult};
use crate::files::picture::{self, Raster};
use crate::files::upload::refuse_declared_length;
use crate::state::AppState;
use crate::store::Store;
use crate::with_db;

use super::CurrentUser;

/// Room for the multipart framing around the picture itself.
const FORM_OVERHEAD: u64 = 16 * 1024;
const NOT_A_PICTURE: &str = "That file is not a picture we can use. Choose a JPEG, PNG, GIF or WebP image.";

/// The URL an avatar (or server icon) with `key` is served at.
pub fn url(key: &str) -> String {
    format!("/{key}")
}

pub async fn upload(State(state): State<AppState>, user: CurrentUser, request: Request) -> AppResult<Response> {
    let stored = match read_picture(&state, request).await {
        Ok(picture) => store_square(&state, picture).await,
        Err(error) => Err(error),
    };
    let key = match stored {
        Ok(key) => key,
        // The settings page again, with why beside the file input.
        Err(AppError::Unprocessable(why)) => return super::profile_settings::refused_avatar(&state, &user, why).await,
        Err(other) => return Err(other),
    };
    let old = set(&state.store, user.id, Some(&key)).await?;
    forget(&state, old).await;
    // Watchers' open pages swap in the new face with the presence announcement.
    state.realtime.announce_presence(&state.store, user.id, true).await;
    Ok(Redirect::to("/settings/profile?saved=avatar").into_response())
}

pub async fn remove(State(state): State<AppState>, user: CurrentUser) -> AppResult<Response> {
    let old = set(&state.store, user.id, None).await?;
    forget(&state, old).await;
    state.realtime.announce_presence(&state.store, user.id, true).await;
    Ok(Redirect::to("/settings/profile?saved=avatar").into_response())
}

/// The one picture of a form (field name free), read under the picture cap and
/// sniffed from its bytes. Shared with server icons.
pub async fn read_picture(state: &AppState, request: Request) -> AppResult<(bytes::Bytes, Raster)> {
    let cap = state.config.max_image_bytes;
    refuse_declared_length(request.headers(), cap + FORM_OVERHEAD)?;
    let limit = usize::try_from(cap + FORM_OVERHEAD).unwrap_or(usize::MAX);
    let request = request.map(|body| Body::new(http_body_util::Limited::new(body, limit)));
    let mut multipart = Multipart::from_request(request, &())
        .await
        .map_err(|_| AppError::Unprocessable("This form could not be read. Please try again.".into()))?;
    let too_large = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE { AppError::PayloadTooLarge } else { AppError::Unprocessable("The upload was cut short. Please try again.".into()) }
    };
    while let Some(mut field) = multipart.next_field().await.map_err(too_large)? {
        if field.file_name().is_none() {
            continue;
        }
        let mut bytes = BytesMut::new();
        while let Some(chunk) = field.chunk().await.map_err(too_large)? {
            if (bytes.len() + chunk.len()) as u64 > cap {
                return Err(AppError::PayloadTooLarge);
            }
            bytes.extend_from_slice(&chunk);
        }
        if bytes.is_empty() {
            return Err(AppError::Unprocessable("Choose a picture first.".into()));
        }
        let sniffed = infer::get(&bytes).map(|t| t.mime_type()).unwrap_or("");
        let raster = Raster::from_mime(sniffed).ok_or_else(|| AppError::Unprocessable(NOT_A_PICTURE.into()))?;
        return Ok((bytes.freeze(), raster));
    }
    Err(AppError::Unprocessable("Choose a picture first.".into()))
}

/// Squares and stores a picture; its new key.
pub async fn store_square(state: &AppState, (bytes, raster): (bytes::Bytes, Raster)) -> AppResult<String> {
    let square = picture::square(bytes, raster).await.map_err(|why| {
        tracing::info!(%why, "an avatar did not decode");
        AppError::Unprocessable(NOT_A_PICTURE.into())
    })?;
    let hex: String = rand::random::<[u8; 16]>().iter().map(|b| format!("{b:02x}")).collect();
    let key = format!("avatars/{hex}");
    state.files.put(&key, square).await.map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(key)
}

/// Removes a replaced picture's object (best effort: a leftover object is unreachable,
/// since only current keys are served).
pub async fn forget(state: &AppState, old: Option<String>) {
    if let Some(old) = old
        && let Err(error) = state.files.delete(&old).await
    {
        tracing::warn!(%error, key = old, "could not remove a replaced avatar");
    }
}

/// Sets a user's avatar; the key it replaced.
async fn set(store: &Store, user_id: i64, key: Option<&str>) -> Result<Option<String>, sqlx::Error> {
    let old: Option<Option<String>> = with_db!(store, pool => sqlx::query_scalar("SELECT avatar_key FROM users WHERE id = $1").bind(user_id).fetch_optional(pool).await)?;
    with_db!(store, pool => sqlx::query("UPDATE users SET avatar_key = $1 WHERE id = $2").bind(key).bind(user_id).execute(pool).await.map(|_| ()))?;
    Ok(old.flatten())
}

async fn is_current(store: &Store, key: &str) -> Result<bool, sqlx::Error> {
    let sql = "SELECT 1 FROM users WHERE avatar_key = $1 UNION ALL SELECT 1 FROM servers WHERE icon_key = $1";
    let found: Option<i32> = with_db!(store, pool => sqlx::query_scalar(sql).bind(key).fetch_optional(pool).await)?;
    Ok(found.is_some())
}

/// `GET /avatars/{hex}`: a current avatar or server icon, to anyone signed in.
pub async fn serve(State(state): State<AppState>, _user: CurrentUser, headers: HeaderMap, Path(hex): Path<String>) -> AppResult<Response> {
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AppError::NotFound);
    }
    let key = format!("avatars/{hex}");
    if !is_current(&state.store, &key).await? {
        return Err(AppError::NotFound);
    }
    let etag = format!("\"{hex}\"");
    let mut base = HeaderMap::new();
    base.insert(header::ETAG, HeaderValue::from_str(&etag).map_err(|e| AppError::Internal(e.to_string()))?);
    // The key changes with every upload, so the bytes under it never do.
    base.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=31536000, immutable"));
    base.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox; default-src 'none'"));
    base.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    base.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    let matches = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if matches {
        return Ok((StatusCode::NOT_MODIFIED, base).into_response());
    }
    // Replaced between the check and here: gone, not a failure.
    let object = state.files.get(&key, None).await.map_err(|e| match e {
        crate::files::storage::StorageError::Store(object_store::Error::NotFound { .. }) => AppError::NotFound,
        other => AppError::Internal(other.to_string()),
    })?;
    base.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    base.insert(header::CONTENT_LENGTH, HeaderValue::from(object.meta.size));
    let body = Body::from_stream(object.into_stream().map_err(std::io::Error::other));
    Ok((StatusCode::OK, base, body).into_response())
}
