//! How a run of messages reads as a timeline: day separators between messages of
//! different days in the viewer's zone, and follow-ups grouped under one header.
//!
//! Grouping is decided here, on the server, from the message before (known on a page;
//! one indexed lookup for a live message), and does not depend on the viewer: it is
//! the same in every zone, so the shared frame stays the same bytes apart from its
//! times. Where a day separator (a per-zone thing) falls before a follow-up, the
//! stylesheet shows its header again (`.day-separator + .continued`).

use crate::store::Store;
use crate::web::time::Clock;

use super::views::MessageView;

/// Follow-ups within this long of the message before join its group.
pub const GROUP_WITHIN_MS: i64 = 5 * 60 * 1000;

/// What a message needs to know about the one before it.
#[derive(Clone, Copy, Debug)]
pub struct Prev {
    pub author_id: i64,
    pub created_at: i64,
    pub system: bool,
}

/// A day separator: `<time datetime="2026-12-07">Today</time>`.
#[derive(Clone)]
pub struct DaySeparator {
    pub date: String,
    pub label: String,
}

impl MessageView {
    pub fn as_prev(&self) -> Prev {
        Prev { author_id: self.author_id, created_at: self.created_at, system: self.system }
    }

    /// Times as `clock`'s zone shows them: `14:05`, the full date in the title, and the
    /// edit time.
    pub fn set_times(&mut self, clock: &Clock) {
        self.time_label = clock.zone.clock(self.created_at);
        self.time_title = clock.zone.full(self.created_at);
        self.edited = self.edited_at.map(|at| clock.zone.stamp(at, clock.now));
    }

    /// The day separator before this message, if `prev` was on another day (or is
    /// not known: the start of a conversation).
    pub fn set_day(&mut self, prev: Option<Prev>, clock: &Clock) {
        let zone = &clock.zone;
        let new_day = prev.is_none_or(|p| zone.day(p.created_at) != zone.day(self.created_at));
        self.day = match (new_day, zone.day(self.created_at)) {
            (true, Some(date)) => Some(DaySeparator { date: date.to_string(), label: zone.day_label(self.created_at, clock.now) }),
            _ => None,
        };
    }

    /// Whether this message joins the group of `prev`: the same author, soon after,
    /// and neither a system line nor a reply (a reply quotes something else, so it
    /// opens its own header) nor a tombstone.
    pub fn set_continued(&mut self, prev: Option<Prev>) {
        self.continued = prev.is_some_and(|p| {
            !p.system
                && !self.system
                && !self.deleted
                && self.reply.is_none()
                && p.author_id == self.author_id
                && (0..=GROUP_WITHIN_MS).contains(&(self.created_at - p.created_at))
        });
    }
}

/// Lays out `messages` (ascending) after `before`, the message just before them if
/// any: times, day separators, and (with `grouping`) who continues a group.
pub fn arrange(messages: &mut [MessageView], before: Option<Prev>, clock: &Clock, grouping: bool) {
    let mut prev = before;
    for m in messages.iter_mut() {
        m.set_times(clock);
        m.set_day(prev, clock);
        if grouping {
            m.set_continued(prev);
        }
        prev = Some(m.as_prev());
    }
}

/// Lays out a page of messages, continuing from the message before the first one when
/// older ones exist (so "Load older" joins seamlessly): one indexed lookup.
pub async fn arrange_page(store: &Store, conversation_id: i64, messages: &mut [MessageView], has_older: bool, clock: &Clock) -> Result<(), sqlx::Error> {
    let before = match messages.first() {
        Some(first) if has_older => super::message_store::previous(store, conversation_id, first.id).await?,
        _ => None,
    };
    arrange(messages, before, clock, true);
    Ok(())
}
