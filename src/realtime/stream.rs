//! `GET /events`: one Server-Sent Events stream per tab. It registers with the hub,
//! replays from the client's cursor (`Last-Event-ID`, or `?since=` for a fresh
//! EventSource) what the log holds, then forwards live deliveries, skipping any it
//! already sent, and adds the viewer's own touches (unread badges, typing summaries,
//! their removal from a conversation).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use askama::Template;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper::body::Frame;
use serde::Deserialize;

use crate::accounts::MaybeUser;
use crate::conversations::store as conversation_store;
use crate::conversations::views::{self, Badges, BadgeView, SidebarItemFragment};
use crate::error::AppResult;
use crate::state::AppState;
use crate::store::Store;

use super::delivery::{Delivery, frame, named_frame};
use super::hub::{Refused, StreamRx};
use crate::store::log::{self, Kind};
use super::swap::{Op, place, place_into};
use super::typing;
use super::{Realtime, render};

/// A comment line every so often keeps proxies from closing an idle stream and lets
/// the server notice a browser that went away.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// Most events a reconnecting stream replays; further behind, the page reloads.
const MAX_REPLAY: i64 = 5_000;

#[derive(Deserialize)]
pub struct EventsQuery {
    since: Option<i64>,
}

struct Badge {
    unread: i64,
    mentioned: i64,
    last_message_id: i64,
}

/// One tab's stream, and the response body it writes: hyper polls it directly, so a
/// frame costs no future built, nor the stream's state moved into one (as a stream
/// adapter such as `unfold` would do for every item), nor a second boxed body.
struct Stream {
    user_id: i64,
    store: Store,
    realtime: Arc<Realtime>,
    stream_id: u64,
    rx: StreamRx,
    queue: VecDeque<Bytes>,
    last_id: i64,
    badges: HashMap<i64, Badge>,
    /// The viewer's time zone when not UTC (UTC viewers take the shared frame as is).
    zone: Option<crate::web::time::Zone>,
    heartbeat: Pin<Box<tokio::time::Sleep>>,
    /// A delivery whose handling waits for the database (rare: a read that did not
    /// catch up, a conversation joined), boxed so an idle stream stays small; nothing
    /// else is taken from `rx` until it is done, so order holds.
    lookup: Option<PendingLookup>,
    done: bool,
}

/// A delivery waiting on its lookup; the delivery comes back with what was found.
type PendingLookup = Pin<Box<dyn Future<Output = AppResult<(Arc<Delivery>, Found)>> + Send>>;

/// What a delivery about the viewer themselves needs from the database first.
enum Lookup {
    /// Their read position moved, but not to the end: their counts are read again.
    Read,
    /// They joined: their badge, and the sidebar entry as they see it.
    Joined,
}

enum Found {
    Read { unread: i64, mentioned: i64 },
    Joined(Option<(Badge, Option<String>)>),
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.realtime.stream_closed(&self.store, self.user_id, self.stream_id);
    }
}

pub async fn events(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    headers: HeaderMap,
    Query(query): Query<EventsQuery>,
) -> AppResult<Response> {
    let Some(user) = user else {
        return Ok((StatusCode::UNAUTHORIZED, "Sign in to receive live updates.").into_response());
    };
    let last_event_id = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<i64>().ok());
    let cursor = last_event_id.max(query.since);
    let realtime = state.realtime.clone();

    // Membership and the log's end read together, then registered, unless the hub has
    // meanwhile delivered newer events (whose membership changes the read would miss).
    let mut attempt = 0;
    let (snapshot, registered) = loop {
        let (snapshot, conversations) = log::memberships_at(&state.store, user.id).await?;
        let max_streams = state.config.stream_limit as usize;
        match realtime.hub.register(user.id, user.device_id, snapshot, &conversations, max_streams) {
            Ok(registered) => break (snapshot, registered),
            Err(Refused::Full) => {
                // Each open tab holds one stream; this many is a script, or a leak.
                tracing::info!(user_id = user.id, max_streams, "refused an event stream over the per-user cap");
                return Ok(too_many_streams());
            }
            Err(Refused::Stale) => {}
        }
        attempt += 1;
        if attempt >= 50 {
            return Err(crate::error::AppError::Unavailable);
        }
        tokio::task::yield_now().await;
    };
    let first = registered.first;
    let mut stream = Stream {
        user_id: user.id,
        store: state.store.clone(),
        realtime: realtime.clone(),
        stream_id: registered.stream_id,
        rx: registered.rx,
        queue: VecDeque::new(),
        last_id: snapshot,
        badges: HashMap::new(),
        zone: Some(user.zone.clone()).filter(|zone| !zone.is_utc()),
        heartbeat: Box::pin(tokio::time::sleep(HEARTBEAT)),
        lookup: None,
        done: false,
    };
    if first {
        realtime.stream_opened(&state.store, user.id);
    }
    stream.queue.push_back(Bytes::from_static(b"retry: 2000\n\n"));
    for row in conversation_store::badge_rows(&state.store, user.id).await? {
        stream.badges.insert(row.id, Badge { unread: row.unread, mentioned: row.mentioned, last_message_id: row.last_message_id });
    }
    if let Some(cursor) = cursor.filter(|&c| c < snapshot) {
        let oldest = log::oldest(&state.store).await?.unwrap_or(snapshot + 1);
        let missed = if cursor + 1 < oldest {
            None
        } else {
            let events = log::for_user(&state.store, user.id, cursor, snapshot, MAX_REPLAY + 1).await?;
            (events.len() as i64 <= MAX_REPLAY).then_some(events)
        };
        match missed {
            None => stream.queue.push_back(named_frame("resync", None, "reload")),
            Some(events) => {
                stream.last_id = cursor;
                for delivery in render::render(&state.store, &events).await? {
                    stream.replay(delivery).await?;
                }
            }
        }
        stream.last_id = snapshot;
    } else if cursor.is_some_and(|c| c > snapshot) {
        // A cursor from the future: the database was replaced. Start over.
        stream.queue.push_back(named_frame("resync", None, "reload"));
    }

    let mut response = Body::new(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// 429 with a reason; EventSource gives up on it (no reconnect loop), and the page
/// still works without live updates.
fn too_many_streams() -> Response {
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        "Too many live-update streams are open for this account. Close some tabs and reload.",
    )
        .into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
    response.extensions_mut().insert(crate::web::shell::Verbatim);
    response
}

impl hyper::body::Body for Stream {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        loop {
            if let Some(bytes) = this.queue.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            if this.done {
                return Poll::Ready(None);
            }
            if let Some(lookup) = this.lookup.as_mut() {
                let result = ready!(lookup.as_mut().poll(cx));
                this.lookup = None;
                match result {
                    Ok((delivery, found)) => this.finish(&delivery, found),
                    // Could not add this viewer's touches: end, and let the browser
                    // resume from its cursor.
                    Err(_) => this.done = true,
                }
                continue;
            }
            match this.rx.poll_recv(cx) {
                Poll::Ready(Some(delivery)) => {
                    if this.take(delivery).is_err() {
                        this.done = true;
                    }
                    continue;
                }
                Poll::Ready(None) => {
                    this.done = true;
                    continue;
                }
                Poll::Pending => {}
            }
            ready!(this.heartbeat.as_mut().poll(cx));
            this.heartbeat.as_mut().reset(tokio::time::Instant::now() + HEARTBEAT);
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b": ping\n\n")))));
        }
    }
}

impl Stream {
    /// A replayed delivery, handled to the end before the stream is returned.
    async fn replay(&mut self, delivery: Arc<Delivery>) -> AppResult<()> {
        if let Some(lookup) = self.handle(&delivery)? {
            let found = look_up(self.store.clone(), self.realtime.clone(), self.user_id, delivery.conversation_id, lookup).await?;
            self.finish(&delivery, found);
        }
        Ok(())
    }

    /// A live delivery: handled now, or after its lookup (boxed, polled by `poll_frame`).
    fn take(&mut self, delivery: Arc<Delivery>) -> AppResult<()> {
        if let Some(lookup) = self.handle(&delivery)? {
            let (store, realtime, me, c) = (self.store.clone(), self.realtime.clone(), self.user_id, delivery.conversation_id);
            self.lookup = Some(Box::pin(async move {
                let found = look_up(store, realtime, me, c, lookup).await?;
                Ok((delivery, found))
            }));
        }
        Ok(())
    }

    /// Queues a delivery's frames: the viewer's own touches first (without an id),
    /// then the shared frame, whose id moves the browser's cursor. A delivery about
    /// the viewer that needs the database stops short and returns what to look up;
    /// `finish` then completes it.
    fn handle(&mut self, delivery: &Delivery) -> AppResult<Option<Lookup>> {
        if delivery.revoke {
            self.queue.push_back(named_frame("resync", None, "signed out"));
            self.done = true;
            return Ok(None);
        }
        if let Some(id) = delivery.id() {
            if id <= self.last_id {
                return Ok(None);
            }
            self.last_id = id;
        }
        let c = delivery.conversation_id;
        let me = self.user_id;
        if let Some(typers) = &delivery.typing {
            let text = typing::summary(typers, me);
            let html = TypingFragment { t: TypingView { conversation_id: c, text } }.render()?;
            self.queue.push_back(frame(None, &place(Op::Replace, &html)?));
        }
        // The badge's new counts, when they changed: sent with the shared frame.
        let mut badge_counts = None;
        if let (Some(event), Some(facts)) = (delivery.event, &delivery.message) {
            let message_id = event.subject_id.unwrap_or(0);
            if let Some(badge) = self.badges.get_mut(&c)
                && message_id > badge.last_message_id
            {
                badge.last_message_id = message_id;
                let before = (badge.unread, badge.mentioned);
                if facts.author_id == me {
                    // Writing is reading.
                    badge.unread = 0;
                    badge.mentioned = 0;
                } else if facts.counts {
                    badge.unread += 1;
                    badge.mentioned += i64::from(facts.mentions.contains(&me));
                }
                // Most deliveries leave the viewer's badge as it was (their own
                // messages, system lines): no frame for those.
                let counts = (badge.unread, badge.mentioned);
                if counts != before {
                    badge_counts = Some(counts);
                }
            }
        }
        if let Some(event) = delivery.event.filter(|e| e.user_id == Some(me)) {
            match event.kind {
                Kind::Read => {
                    let read = event.subject_id.unwrap_or(0);
                    if self.badges.get(&c).is_none_or(|b| read < b.last_message_id) {
                        return Ok(Some(Lookup::Read));
                    }
                    self.finish(delivery, Found::Read { unread: 0, mentioned: 0 });
                    return Ok(None);
                }
                Kind::Joined => return Ok(Some(Lookup::Joined)),
                Kind::Left => {
                    // The shared frame shows the conversation as it is now (its name,
                    // its member count): the person who left learns nothing more, so
                    // they get the notice alone, carrying the event's id.
                    self.badges.remove(&c);
                    let mut html = place(Op::Remove(&format!("sidebar-{c}")), "")?;
                    place_into(&mut html, Op::Replace, &RemovedFragment { conversation_id: c }.render()?)?;
                    self.queue.push_back(frame(Some(event.id), &html));
                    return Ok(None);
                }
                _ => {}
            }
        }
        self.push_shared(delivery, badge_counts)?;
        Ok(None)
    }

    /// Completes a delivery about the viewer once its lookup is done.
    fn finish(&mut self, delivery: &Delivery, found: Found) {
        let c = delivery.conversation_id;
        let touched = match found {
            Found::Read { unread, mentioned } => {
                if let Some(badge) = self.badges.get_mut(&c) {
                    badge.unread = unread;
                    badge.mentioned = mentioned;
                }
                badge_frame(c, (unread, mentioned)).map(|bytes| self.queue.push_back(bytes))
            }
            Found::Joined(None) => Ok(()),
            Found::Joined(Some((badge, html))) => {
                self.badges.insert(c, badge);
                match html {
                    Some(html) => place(Op::IntoTop("#conversation-list"), &html)
                        .map(|html| self.queue.push_back(frame(None, &html)))
                        .map_err(crate::error::AppError::from),
                    None => Ok(()),
                }
            }
        };
        if touched.and_then(|()| self.push_shared(delivery, None)).is_err() {
            self.done = true;
        }
    }

    /// Queues the shared frame (in the viewer's zone), after the viewer's new badge
    /// counts if they changed. For UTC viewers both go as one chunk, joined once per
    /// distinct counts and shared: one write and one frame per delivery, not two.
    fn push_shared(&mut self, delivery: &Delivery, badge_counts: Option<(i64, i64)>) -> AppResult<()> {
        let c = delivery.conversation_id;
        let shared = match (&self.zone, &delivery.zoned) {
            (Some(zone), Some(zoned)) => Some(zoned.frame_for(zone)?),
            _ => None,
        };
        match (badge_counts, shared) {
            (Some(counts), None) if !delivery.frame.is_empty() => {
                let bytes = delivery.badges.get_or((counts, true), || -> AppResult<Bytes> {
                    // Rendered here, not through the cache: its lock is held.
                    let badge = badge_frame(c, counts)?;
                    let mut joined = bytes::BytesMut::with_capacity(badge.len() + delivery.frame.len());
                    joined.extend_from_slice(&badge);
                    joined.extend_from_slice(&delivery.frame);
                    Ok(joined.freeze())
                })?;
                self.queue.push_back(bytes);
            }
            (counts, shared) => {
                if let Some(counts) = counts {
                    self.queue.push_back(delivery.badges.get_or((counts, false), || badge_frame(c, counts))?);
                }
                let shared = shared.unwrap_or_else(|| delivery.frame.clone());
                if !shared.is_empty() {
                    self.queue.push_back(shared);
                }
            }
        }
        Ok(())
    }
}

/// A conversation's unread badge as a frame.
fn badge_frame(c: i64, (unread, mentioned): (i64, i64)) -> AppResult<Bytes> {
    let html = Badges { b: BadgeView { id: c, unread, mentioned } }.render()?;
    Ok(frame(None, &place(Op::Replace, &html)?))
}

/// What `lookup` needs from the database, read off the stream's own future.
async fn look_up(store: Store, realtime: Arc<Realtime>, me: i64, c: i64, lookup: Lookup) -> AppResult<Found> {
    Ok(match lookup {
        Lookup::Read => match conversation_store::sidebar_row(&store, me, c).await? {
            Some(row) => Found::Read { unread: row.unread, mentioned: row.mentioned },
            None => Found::Read { unread: 0, mentioned: 0 },
        },
        Lookup::Joined => Found::Joined(joined(&store, &realtime, me, c).await?),
    })
}

/// The notice that replaces a conversation its viewer no longer belongs to.
#[derive(Template)]
#[template(path = "realtime/_removed.html")]
struct RemovedFragment {
    conversation_id: i64,
}

struct TypingView {
    conversation_id: i64,
    text: String,
}

#[derive(Template)]
#[template(path = "conversations/_typing.html")]
struct TypingFragment {
    t: TypingView,
}

/// A conversation `me` just joined: its badge, and its sidebar entry as they see it
/// (the DM partner's presence and status as they allow; none for a server channel,
/// which is listed in its server).
async fn joined(store: &Store, realtime: &Realtime, me: i64, c: i64) -> AppResult<Option<(Badge, Option<String>)>> {
    let Some(row) = conversation_store::sidebar_row(store, me, c).await? else { return Ok(None) };
    let badge = Badge { unread: row.unread, mentioned: row.mentioned, last_message_id: row.last_message_id };
    if matches!(row.kind.as_str(), "text" | "voice") {
        return Ok(Some((badge, None)));
    }
    let others: Vec<i64> = row.other_id.into_iter().collect();
    let online = realtime.online_among(&others).await;
    let blockers = crate::accounts::privacy::blockers_of(store, me).await?;
    let items = views::sidebar_items(vec![row], None, &|u| online.contains(&u), &blockers);
    let html = items.first().map(|item| SidebarItemFragment { c: item }.render()).transpose()?;
    Ok(Some((badge, html)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn stream_of(user_id: i64, conversation: i64) -> (Stream, tokio::sync::mpsc::Sender<Arc<Delivery>>) {
        let store = crate::store::Store::connect("sqlite::memory:").await.expect("db");
        let realtime = Arc::new(Realtime {
            hub: Default::default(),
            typing: Default::default(),
            bus: None,
            leaving: Default::default(),
            recheck: Default::default(),
        });
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let badges = HashMap::from([(conversation, Badge { unread: 0, mentioned: 0, last_message_id: 0 })]);
        let stream = Stream {
            user_id,
            store,
            realtime,
            stream_id: 1,
            rx,
            queue: Default::default(),
            last_id: 0,
            badges,
            zone: None,
            heartbeat: Box::pin(tokio::time::sleep(HEARTBEAT)),
            lookup: None,
            done: false,
        };
        (stream, tx)
    }

    /// What an idle stream holds is the stream itself (hyper polls it as the body):
    /// rare lookups are boxed so that every waiting connection stays small.
    #[test]
    fn an_idle_stream_holds_little() {
        let size = std::mem::size_of::<Stream>();
        assert!(size < 512, "a stream takes {size} bytes");
    }

    /// A message that changes a viewer's badge reaches them as one chunk (badge, then
    /// the message with its id), and every viewer with the same counts shares its bytes.
    #[tokio::test]
    async fn a_badge_change_and_its_message_are_one_shared_chunk() {
        let event = log::Event { id: 7, conversation_id: 3, user_id: Some(2), kind: Kind::Message, subject_id: Some(40) };
        let delivery = Arc::new(Delivery {
            event: Some(event),
            message: Some(super::super::delivery::MessageFacts { author_id: 2, counts: true, mentions: vec![] }),
            ..Delivery::ephemeral(3, frame(Some(7), "<p>hello</p>"))
        });
        let mut chunks = Vec::new();
        for viewer in [10, 11] {
            let (mut stream, tx) = stream_of(viewer, 3).await;
            tx.send(delivery.clone()).await.expect("sent");
            drop(tx);
            let first = stream.frame().await.expect("a frame").expect("infallible").into_data().expect("data");
            assert!(stream.frame().await.is_none(), "nothing after the one chunk");
            chunks.push(first);
        }
        let text = String::from_utf8_lossy(&chunks[0]);
        let badge = text.find("1 unread").expect("the badge");
        let message = text.find("id: 7\ndata: <p>hello</p>").expect("the message");
        assert!(badge < message, "badge first, then the message: {text}");
        assert_eq!(chunks[0].as_ptr(), chunks[1].as_ptr(), "the second viewer shares the first one's bytes");
    }
}
