//! `GET /events`: one Server-Sent Events stream per tab. It registers with the hub,
//! replays from the client's cursor (`Last-Event-ID`, or `?since=` for a fresh
//! EventSource) what the log holds, then forwards live deliveries, skipping any it
//! already sent, and adds the viewer's own touches (unread badges, typing summaries,
//! their removal from a conversation).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
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
    heartbeat: tokio::time::Interval,
    done: bool,
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
        heartbeat: tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT),
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
                    stream.handle(&delivery).await?;
                }
            }
        }
        stream.last_id = snapshot;
    } else if cursor.is_some_and(|c| c > snapshot) {
        // A cursor from the future: the database was replaced. Start over.
        stream.queue.push_back(named_frame("resync", None, "reload"));
    }

    let body = futures_util::stream::unfold(stream, |mut stream| async move {
        let next = stream.next().await?;
        Some((Ok::<Bytes, std::convert::Infallible>(next), stream))
    });
    let mut response = Body::from_stream(body).into_response();
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

impl Stream {
    /// The next bytes to write, or None when the stream is over.
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(bytes) = self.queue.pop_front() {
                return Some(bytes);
            }
            if self.done {
                return None;
            }
            tokio::select! {
                delivery = self.rx.recv() => match delivery {
                    Some(delivery) => {
                        if self.handle(&delivery).await.is_err() {
                            // Could not add this viewer's touches: end, and let the
                            // browser resume from its cursor.
                            self.done = true;
                        }
                    }
                    None => self.done = true,
                },
                _ = self.heartbeat.tick() => return Some(Bytes::from_static(b": ping\n\n")),
            }
        }
    }

    /// Queues a delivery's frames: the viewer's own touches first (without an id),
    /// then the shared frame, whose id moves the browser's cursor.
    async fn handle(&mut self, delivery: &Delivery) -> AppResult<()> {
        if delivery.revoke {
            self.queue.push_back(named_frame("resync", None, "signed out"));
            self.done = true;
            return Ok(());
        }
        if let Some(id) = delivery.id() {
            if id <= self.last_id {
                return Ok(());
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
                    let bytes = delivery.badges.get_or(counts, || -> AppResult<Bytes> {
                        let html = Badges { b: BadgeView { id: c, unread: counts.0, mentioned: counts.1 } }.render()?;
                        Ok(frame(None, &place(Op::Replace, &html)?))
                    })?;
                    self.queue.push_back(bytes);
                }
            }
        }
        if let Some(event) = delivery.event.filter(|e| e.user_id == Some(me)) {
            match event.kind {
                Kind::Read => {
                    let read = event.subject_id.unwrap_or(0);
                    let caught_up = self.badges.get(&c).is_some_and(|b| read >= b.last_message_id);
                    let (unread, mentioned) = if caught_up {
                        (0, 0)
                    } else {
                        // Boxed, like every query here: the futures of rare queries would
                        // otherwise make every idle stream's waiting state ≈11 KB.
                        match Box::pin(conversation_store::sidebar_row(&self.store, me, c)).await? {
                            Some(row) => (row.unread, row.mentioned),
                            None => (0, 0),
                        }
                    };
                    if let Some(badge) = self.badges.get_mut(&c) {
                        badge.unread = unread;
                        badge.mentioned = mentioned;
                    }
                    let html = Badges { b: BadgeView { id: c, unread, mentioned } }.render()?;
                    self.queue.push_back(frame(None, &place(Op::Replace, &html)?));
                }
                Kind::Joined => {
                    // One boxed step: the row is never held in the stream's own future.
                    if let Some((badge, html)) = Box::pin(joined(&self.store, &self.realtime, me, c)).await? {
                        self.badges.insert(c, badge);
                        if let Some(html) = html {
                            self.queue.push_back(frame(None, &place(Op::IntoTop("#conversation-list"), &html)?));
                        }
                    }
                }
                Kind::Left => {
                    // The shared frame shows the conversation as it is now (its name,
                    // its member count): the person who left learns nothing more, so
                    // they get the notice alone, carrying the event's id.
                    self.badges.remove(&c);
                    let mut html = place(Op::Remove(&format!("sidebar-{c}")), "")?;
                    place_into(&mut html, Op::Replace, &RemovedFragment { conversation_id: c }.render()?)?;
                    self.queue.push_back(frame(Some(event.id), &html));
                    return Ok(());
                }
                _ => {}
            }
        }
        let shared = match (&self.zone, &delivery.zoned) {
            (Some(zone), Some(zoned)) => zoned.frame_for(zone)?,
            _ => delivery.frame.clone(),
        };
        if !shared.is_empty() {
            self.queue.push_back(shared);
        }
        Ok(())
    }
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
    /// What an idle stream holds while it waits is the `next()` future: it must stay
    /// small (unboxed queries in `handle` made it ≈11 KB per connection).
    #[tokio::test]
    async fn an_idle_stream_holds_little() {
        let store = crate::store::Store::connect("sqlite::memory:").await.expect("db");
        let realtime = std::sync::Arc::new(super::Realtime {
            hub: Default::default(),
            typing: Default::default(),
            bus: None,
            leaving: Default::default(),
            recheck: Default::default(),
        });
        let (_tx, rx) = tokio::sync::mpsc::channel(1);
        let mut stream = super::Stream {
            user_id: 1,
            store,
            realtime,
            stream_id: 1,
            rx,
            queue: Default::default(),
            last_id: 0,
            badges: Default::default(),
            zone: None,
            heartbeat: tokio::time::interval(std::time::Duration::from_secs(1)),
            done: true,
        };
        let waiting = std::mem::size_of_val(&stream.next());
        assert!(waiting < 1024, "the waiting future takes {waiting} bytes");
    }
}
