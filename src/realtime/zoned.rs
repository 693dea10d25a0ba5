//! A message frame in each viewer's time zone. The shared frame of a message event is
//! rendered in UTC; a stream whose viewer lives elsewhere asks for its zone's frame,
//! which is rendered the first time any stream asks and then shared by every stream of
//! that zone (most conversations have one or two zones among their members), so a
//! fan-out still renders once per distinct zone, never once per stream.

use std::sync::Mutex;

use askama::Template;
use bytes::Bytes;

use crate::conversations::timeline::Prev;
use crate::conversations::views::{MessageFragment, MessageView};
use crate::error::AppResult;
use crate::web::time::{Clock, Zone};

use super::delivery::frame;
use super::swap::{Op, place_into};

/// Most zones kept per delivery; beyond, frames are rendered per stream.
const MAX_ZONES: usize = 16;

/// What a message frame is made of, to render it again in another zone.
pub struct ZonedFrames {
    event_id: i64,
    conversation_id: i64,
    prev: Option<Prev>,
    /// Placements after the message (sidebar preview, "Seen"): the same in every zone.
    rest: String,
    /// The view (its times rewritten per zone under the lock) and the frames so far.
    state: Mutex<(MessageView, Vec<(String, Bytes)>)>,
}

impl std::fmt::Debug for ZonedFrames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZonedFrames").field("event_id", &self.event_id).finish_non_exhaustive()
    }
}

impl ZonedFrames {
    pub fn new(event_id: i64, view: MessageView, prev: Option<Prev>, rest: String) -> ZonedFrames {
        ZonedFrames { event_id, conversation_id: view.conversation_id, prev, rest, state: Mutex::new((view, Vec::new())) }
    }

    /// The frame as a viewer in `zone` sees it.
    pub fn frame_for(&self, zone: &Zone) -> AppResult<Bytes> {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (view, frames) = &mut *state;
        if let Some((_, bytes)) = frames.iter().find(|(name, _)| name == zone.name()) {
            return Ok(bytes.clone());
        }
        let clock = Clock::at_now(zone);
        view.set_times(&clock);
        // The separator is per zone too: midnight falls elsewhere.
        view.set_day(self.prev, &clock);
        let mut html = String::new();
        let target = format!("#messages[data-conversation-id='{}']", self.conversation_id);
        place_into(&mut html, Op::Into(&target), &MessageFragment { m: view }.render()?)?;
        html.push_str(&self.rest);
        let bytes = frame(Some(self.event_id), &html);
        if frames.len() < MAX_ZONES {
            frames.push((zone.name().to_string(), bytes.clone()));
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-07 01:30 UTC.
    const AT: i64 = 1_796_607_000_000;

    #[test]
    fn each_zone_is_rendered_once_and_its_bytes_shared() {
        let view = MessageView { id: 5, conversation_id: 2, author_id: 1, created_at: AT, ..Default::default() };
        let frames = ZonedFrames::new(9, view, None, String::new());
        let tokyo = Zone::stored("Asia/Tokyo");
        let first = frames.frame_for(&tokyo).expect("render");
        let again = frames.frame_for(&tokyo).expect("render");
        assert_eq!(first.as_ptr(), again.as_ptr(), "a second stream in Tokyo shares the first one's bytes");
        let text = String::from_utf8_lossy(&first);
        assert!(text.starts_with("event: update\nid: 9\n") && text.contains(">10:30</time>"), "{text}");
        let berlin = frames.frame_for(&Zone::stored("Europe/Berlin")).expect("render");
        assert!(String::from_utf8_lossy(&berlin).contains(">02:30</time>"));
    }
}
