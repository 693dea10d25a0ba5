//! What the hub hands to streams: an event already framed as SSE bytes (rendered once
//! for every subscriber, or once per time zone among them), plus the few facts a stream needs to add its viewer's own
//! touches (unread badges, "you were removed", who else is typing).

use bytes::Bytes;

use crate::store::log::{Event, Kind};

/// Facts about a new message that change each viewer's unread badges differently.
#[derive(Debug, Default)]
pub struct MessageFacts {
    pub author_id: i64,
    /// Counts towards unread (a text message, not a system line).
    pub counts: bool,
    pub mentions: Vec<i64>,
}

#[derive(Debug)]
pub struct Delivery {
    /// The logged event, if this is one (typing and presence are not logged).
    pub event: Option<Event>,
    pub conversation_id: i64,
    pub message: Option<MessageFacts>,
    /// Everyone typing in the conversation now, with their names.
    pub typing: Option<Vec<(i64, String)>>,
    /// The shared frame, the same bytes for every subscriber (may be empty).
    pub frame: Bytes,
    /// Ends the stream after telling the page to reload (signed out).
    pub revoke: bool,
    /// Viewers' badge frames for this delivery, rendered once per distinct count.
    pub badges: BadgeFrames,
    /// A message's frame in other time zones than UTC (`frame`'s), once per zone.
    pub zoned: Option<Box<super::zoned::ZonedFrames>>,
}

/// Most badges distinct counts kept per delivery; beyond, frames are rendered per stream.
const MAX_BADGE_FRAMES: usize = 32;

/// Unread badges differ per viewer, but in a group most viewers' counts are the same:
/// each distinct (unread, mentioned) pair is rendered once per delivery and its bytes
/// shared, instead of a template render and three allocations for every stream. Keyed
/// also by whether the frame is the badge alone or the badge joined to the shared frame.
#[derive(Debug, Default)]
pub struct BadgeFrames(std::sync::Mutex<Vec<(BadgeKey, Bytes)>>);

/// (unread, mentioned), and whether the shared frame follows in the same bytes.
pub type BadgeKey = ((i64, i64), bool);

impl BadgeFrames {
    pub fn get_or<E>(&self, counts: BadgeKey, render: impl FnOnce() -> Result<Bytes, E>) -> Result<Bytes, E> {
        let mut frames = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((_, bytes)) = frames.iter().find(|(key, _)| *key == counts) {
            return Ok(bytes.clone());
        }
        let bytes = render()?;
        if frames.len() < MAX_BADGE_FRAMES {
            frames.push((counts, bytes.clone()));
        }
        Ok(bytes)
    }
}

impl Delivery {
    pub fn ephemeral(conversation_id: i64, frame: Bytes) -> Delivery {
        Delivery { event: None, conversation_id, message: None, typing: None, frame, revoke: false, badges: BadgeFrames::default(), zoned: None }
    }

    pub fn id(&self) -> Option<i64> {
        self.event.map(|e| e.id)
    }

    pub fn joined(&self) -> Option<i64> {
        self.event.filter(|e| e.kind == Kind::Joined).and_then(|e| e.user_id)
    }

    pub fn left(&self) -> Option<i64> {
        self.event.filter(|e| e.kind == Kind::Left).and_then(|e| e.user_id)
    }
}

/// One SSE event named `update`: `id:` when it is logged (the browser then resumes
/// after it), and the HTML split into `data:` lines.
pub fn frame(id: Option<i64>, html: &str) -> Bytes {
    named_frame("update", id, html)
}

pub fn named_frame(name: &str, id: Option<i64>, html: &str) -> Bytes {
    let mut out = String::with_capacity(html.len() + 48);
    out.push_str("event: ");
    out.push_str(name);
    out.push('\n');
    if let Some(id) = id {
        out.push_str("id: ");
        out.push_str(&id.to_string());
        out.push('\n');
    }
    for line in html.split('\n') {
        out.push_str("data: ");
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_lines_and_carry_ids() {
        let f = frame(Some(7), "<p>a\nb</p>");
        assert_eq!(&f[..], b"event: update\nid: 7\ndata: <p>a\ndata: b</p>\n\n");
        let f = frame(None, "x\r\ny");
        assert_eq!(&f[..], b"event: update\ndata: x\ndata: y\n\n");
    }
}
