//! Receiving a message form with files (`multipart/form-data`): text fields are kept,
//! each file is streamed to storage as it arrives (never held whole, except pictures,
//! which are capped lower and decoded), its type sniffed from its first bytes and its
//! size capped by kind. Whatever was stored for a form that then fails is removed.

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request};
use axum::extract::multipart::{Field, MultipartError};
use axum::http::{HeaderMap, StatusCode, header};
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::error::{AppError, AppResult};
use crate::state::AppState;

use super::picture::{self, Raster};
use super::store::{self, NewAttachment};

/// Most files one message carries.
pub const MAX_FILES: usize = 10;
/// Largest text field of the form (the message body is at most 4,000 characters).
const MAX_FIELD_BYTES: usize = 64 * 1024;
/// Bytes read before the type is sniffed: enough for every signature `infer` knows.
const SNIFF_BYTES: usize = 8 * 1024;

/// What a multipart message form held.
#[derive(Default)]
pub struct Received {
    /// The text fields, by name, in form order.
    pub fields: Vec<(String, String)>,
    /// Stored uploads, unattached until the message is written.
    pub attachments: Vec<i64>,
    /// Why the files were not taken (status and reason), with the text fields kept.
    pub refused: Option<(StatusCode, String)>,
}

impl Received {
    pub fn field(&self, name: &str) -> String {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap_or_default()
    }
}

pub fn is_multipart(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("multipart/form-data"))
}

/// 413 when the request says up front that it is larger than `max`: answered before a
/// byte of the body is read (and without `100 Continue`, so a client waits for nothing).
pub fn refuse_declared_length(headers: &HeaderMap, max: u64) -> AppResult<()> {
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > max => Err(AppError::PayloadTooLarge),
        _ => Ok(()),
    }
}

/// Reads the form, storing files for `uploader_id` in `conversation_id`. `may_attach`
/// false (a channel without ATTACH_FILES) refuses the first file and stops reading.
pub async fn receive(state: &AppState, uploader_id: i64, conversation_id: i64, may_attach: bool, request: Request) -> AppResult<Received> {
    refuse_declared_length(request.headers(), state.config.max_upload_bytes)?;
    // A chunked body has no length to check: it is cut off at the cap instead.
    let cap = usize::try_from(state.config.max_upload_bytes).unwrap_or(usize::MAX);
    let request = request.map(|body| {
        let limited = Body::new(http_body_util::Limited::new(body, cap));
        Body::from_stream(OneChunkAtATime { inner: limited.into_data_stream(), paused: false })
    });
    let mut multipart = Multipart::from_request(request, &())
        .await
        .map_err(|_| AppError::Unprocessable("This form could not be read. Please go back and try again.".into()))?;
    let mut received = Received::default();
    match read_parts(state, uploader_id, conversation_id, may_attach, &mut multipart, &mut received).await {
        Ok(()) => Ok(received),
        Err(error) => {
            discard(state, uploader_id, &received.attachments).await;
            Err(error)
        }
    }
}

async fn read_parts(
    state: &AppState,
    uploader_id: i64,
    conversation_id: i64,
    may_attach: bool,
    multipart: &mut Multipart,
    received: &mut Received,
) -> AppResult<()> {
    while let Some(mut field) = multipart.next_field().await.map_err(refused_body)? {
        let name = field.name().unwrap_or_default().to_string();
        if name != "files" {
            let mut text = Vec::new();
            while let Some(chunk) = field.chunk().await.map_err(refused_body)? {
                if text.len() + chunk.len() > MAX_FIELD_BYTES {
                    return Err(AppError::PayloadTooLarge);
                }
                text.extend_from_slice(&chunk);
            }
            received.fields.push((name, String::from_utf8_lossy(&text).into_owned()));
            continue;
        }
        let file_name = clean_name(field.file_name().unwrap_or_default());
        let head = read_head(&mut field).await?;
        if head.is_empty() && field.file_name().is_none_or(str::is_empty) {
            // The part a browser sends for "no file chosen".
            continue;
        }
        if !may_attach {
            received.refused = Some((StatusCode::FORBIDDEN, "You do not have permission to attach files in this channel.".into()));
            return Ok(());
        }
        if received.attachments.len() == MAX_FILES {
            received.refused = Some((StatusCode::UNPROCESSABLE_ENTITY, format!("A message takes at most {MAX_FILES} files.")));
            return Ok(());
        }
        let sniffed = infer::get(&head).map(|t| t.mime_type()).unwrap_or("application/octet-stream");
        let id = match Raster::from_mime(sniffed) {
            Some(raster) => store_picture(state, uploader_id, conversation_id, &file_name, raster, head, &mut field).await?,
            None => store_file(state, uploader_id, conversation_id, &file_name, sniffed, head, &mut field).await?,
        };
        received.attachments.push(id);
    }
    Ok(())
}

/// multer reads its stream for as long as data is ready, so a fast sender could pile a
/// whole file into its buffer before we write any of it. Pausing after every chunk
/// (waking at once) makes each read return one network chunk: memory per upload stays
/// at what storage has in flight, and TCP holds back the sender meanwhile.
struct OneChunkAtATime<S> {
    inner: S,
    paused: bool,
}

impl<S: Stream + Unpin> Stream for OneChunkAtATime<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        if self.paused {
            self.paused = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let item = std::task::ready!(Pin::new(&mut self.inner).poll_next(cx));
        self.paused = item.is_some();
        Poll::Ready(item)
    }
}

/// The first bytes of a part (fewer if it is shorter), for sniffing.
async fn read_head(field: &mut Field<'_>) -> AppResult<Bytes> {
    let mut head = BytesMut::new();
    while head.len() < SNIFF_BYTES {
        match field.chunk().await.map_err(refused_body)? {
            Some(chunk) => head.extend_from_slice(&chunk),
            None => break,
        }
    }
    Ok(head.freeze())
}

/// 413 when the body ran past the cap; anything else is an unreadable form.
fn refused_body(error: MultipartError) -> AppError {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::PayloadTooLarge
    } else {
        AppError::Unprocessable("The upload was cut short or could not be read. Please try again.".into())
    }
}

fn new_key() -> String {
    let bytes: [u8; 16] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("attachments/{hex}")
}

/// A plain file: streamed to storage part by part, cut off past the file cap.
async fn store_file(
    state: &AppState,
    uploader_id: i64,
    conversation_id: i64,
    name: &str,
    content_type: &str,
    head: Bytes,
    field: &mut Field<'_>,
) -> AppResult<i64> {
    let cap = state.config.max_file_bytes;
    let key = new_key();
    let mut writer = state.files.writer(&key).await.map_err(internal)?;
    let mut size = head.len() as u64;
    let outcome: AppResult<()> = async {
        if size > cap {
            return Err(AppError::PayloadTooLarge);
        }
        writer.put(head);
        while let Some(chunk) = field.chunk().await.map_err(refused_body)? {
            size += chunk.len() as u64;
            if size > cap {
                return Err(AppError::PayloadTooLarge);
            }
            // At most two parts in flight: memory per upload stays a few parts.
            writer.wait_for_capacity(2).await.map_err(internal)?;
            writer.put(chunk);
        }
        Ok(())
    }
    .await;
    if let Err(error) = outcome {
        let _ = writer.abort().await;
        return Err(error);
    }
    writer.finish().await.map_err(internal)?;
    let new = NewAttachment {
        uploader_id,
        conversation_id,
        name,
        content_type,
        size: size as i64,
        object_key: &key,
        thumb_key: None,
        dimensions: None,
    };
    match store::insert(&state.store, &new).await {
        Ok(id) => Ok(id),
        Err(error) => {
            let _ = state.files.delete(&key).await;
            Err(error.into())
        }
    }
}

/// A picture: read whole (under the picture cap), written anew with a thumbnail.
/// One that does not decode is kept as a plain file, never shown inline.
async fn store_picture(
    state: &AppState,
    uploader_id: i64,
    conversation_id: i64,
    name: &str,
    raster: Raster,
    head: Bytes,
    field: &mut Field<'_>,
) -> AppResult<i64> {
    let cap = state.config.max_image_bytes;
    let mut bytes = BytesMut::from(head);
    while let Some(chunk) = field.chunk().await.map_err(refused_body)? {
        if (bytes.len() + chunk.len()) as u64 > cap {
            return Err(AppError::PayloadTooLarge);
        }
        bytes.extend_from_slice(&chunk);
    }
    if bytes.len() as u64 > cap {
        return Err(AppError::PayloadTooLarge);
    }
    let original = bytes.freeze();
    let size = original.len() as i64;
    let picture = match picture::process(original.clone(), raster).await {
        Ok(picture) => picture,
        Err(why) => {
            tracing::info!(%why, "an upload sniffed as a picture did not decode; kept as a file");
            let key = new_key();
            state.files.put(&key, original).await.map_err(internal)?;
            let new = NewAttachment {
                uploader_id,
                conversation_id,
                name,
                content_type: "application/octet-stream",
                size,
                object_key: &key,
                thumb_key: None,
                dimensions: None,
            };
            return Ok(store::insert(&state.store, &new).await?);
        }
    };
    let key = new_key();
    let thumb_key = format!("{key}-thumb");
    let full_size = picture.full.len() as i64;
    state.files.put(&key, picture.full).await.map_err(internal)?;
    state.files.put(&thumb_key, picture.thumb).await.map_err(internal)?;
    let new = NewAttachment {
        uploader_id,
        conversation_id,
        name,
        content_type: picture.full_type,
        size: full_size,
        object_key: &key,
        thumb_key: Some(&thumb_key),
        dimensions: Some((picture.width, picture.height)),
    };
    Ok(store::insert(&state.store, &new).await?)
}

fn internal(error: impl std::fmt::Display) -> AppError {
    AppError::Internal(error.to_string())
}

/// Removes uploads of a send that did not go through (best effort; the sweep catches
/// what this misses).
pub async fn discard(state: &AppState, uploader_id: i64, ids: &[i64]) {
    let Ok(rows) = store::unattached(&state.store, uploader_id, ids).await else { return };
    for row in rows {
        super::sweep::remove_one(state, &row).await;
    }
}

/// The client's file name, as a name only: no directories, no control characters,
/// at most 200 characters; "file" when nothing is left.
pub fn clean_name(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let name: String = base.chars().filter(|c| !c.is_control()).take(200).collect();
    let name = name.trim();
    if name.is_empty() || name == "." || name == ".." { "file".to_string() } else { name.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_their_directories_and_control_characters() {
        assert_eq!(clean_name("C:\\Users\\me\\report.pdf"), "report.pdf");
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("a\u{0}b\r\n.txt"), "ab.txt");
        assert_eq!(clean_name(".."), "file");
        assert_eq!(clean_name(""), "file");
    }

    #[test]
    fn the_form_reader_gets_one_chunk_per_read() {
        let ready = futures_util::stream::iter([Bytes::from_static(b"a"), Bytes::from_static(b"b")]);
        let mut stream = OneChunkAtATime { inner: ready, paused: false };
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        let mut poll = || Pin::new(&mut stream).poll_next(&mut cx);
        assert_eq!(poll(), Poll::Ready(Some(Bytes::from_static(b"a"))));
        assert_eq!(poll(), Poll::Pending, "a pause, though more is ready");
        assert_eq!(poll(), Poll::Ready(Some(Bytes::from_static(b"b"))));
        assert_eq!(poll(), Poll::Pending);
        assert_eq!(poll(), Poll::Ready(None));
    }

    #[test]
    fn a_declared_length_over_the_cap_is_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, "2147483648".parse().expect("header"));
        assert!(matches!(refuse_declared_length(&headers, 1024), Err(AppError::PayloadTooLarge)));
        headers.insert(header::CONTENT_LENGTH, "1024".parse().expect("header"));
        assert!(refuse_declared_length(&headers, 1024).is_ok());
    }
}
