//! Turns logged events into deliveries: each event's HTML rendered once, from the
//! same partials the pages use, from the current state of what it points at (so an
//! old event replayed shows today's message, never a stale one).

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;

use crate::conversations::message_store;
use crate::conversations::store as conversation_store;
use crate::conversations::views::{self, MessageFragment, SeenFragment};
use crate::error::AppResult;
use crate::store::Store;

use super::delivery::{Delivery, MessageFacts, frame};
use super::zoned::ZonedFrames;
use crate::web::time::Clock;
use super::swap::{Op, place_into};
use crate::store::log::{Event, Kind};

/// A sidebar entry's texts, as `_sidebar_title.html` and `_preview.html` read them.
struct SidebarText<'a> {
    id: i64,
    title: &'a str,
    preview: &'a str,
}

#[derive(Template)]
#[template(path = "conversations/_preview.html")]
struct PreviewFragment<'a> {
    c: SidebarText<'a>,
}

#[derive(Template)]
#[template(path = "realtime/_conversation_changed.html")]
struct ConversationChanged<'a> {
    conversation_id: i64,
    title: &'a str,
    c: SidebarText<'a>,
    member_count: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct ConversationRow {
    id: i64,
    kind: String,
    name: String,
    last_message_id: i64,
}

crate::direct_row!(ConversationRow { id, kind, name, last_message_id });

async fn conversations(store: &Store, ids: &[i64]) -> Result<HashMap<i64, ConversationRow>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    use crate::conversations::message_store::{ID_LIST, POSTGRES_IDS, SQLITE_IDS, json_ids};
    let sql = format!("SELECT id, kind, name, last_message_id FROM conversations WHERE id IN ({ID_LIST})");
    let rows: Vec<ConversationRow> = match &store.db {
        crate::store::Db::Sqlite(db) => db.select(&sql.replace(ID_LIST, SQLITE_IDS), &[crate::store::Arg::Text(&json_ids(ids))]).await?,
        crate::store::Db::Postgres(pool) => sqlx::query_as(&sql.replace(ID_LIST, POSTGRES_IDS)).bind(ids).fetch_all(pool).await?,
    };
    Ok(rows.into_iter().map(|r| (r.id, r)).collect())
}

/// Renders `events` (ascending ids) into deliveries, loading what they point at in a
/// few queries per batch.
pub async fn render(store: &Store, events: &[Event]) -> AppResult<Vec<Arc<Delivery>>> {
    let mut conversation_ids: Vec<i64> = events.iter().map(|e| e.conversation_id).collect();
    conversation_ids.sort_unstable();
    conversation_ids.dedup();
    let info = conversations(store, &conversation_ids).await?;

    // Messages, as the page would show them.
    let mut message_ids: Vec<i64> = events
        .iter()
        .filter(|e| matches!(e.kind, Kind::Message | Kind::MessageChanged))
        .filter_map(|e| e.subject_id)
        .collect();
    message_ids.sort_unstable();
    message_ids.dedup();
    let rows = message_store::get_many(store, &message_ids).await?;
    let (group_rows, other_rows): (Vec<_>, Vec<_>) =
        rows.into_iter().partition(|r| info.get(&r.conversation_id).is_some_and(|c| matches!(c.kind.as_str(), "group" | "text")));
    let mut messages = HashMap::new();
    for (rows, group) in [(group_rows, true), (other_rows, false)] {
        // The sidebar preview comes from the row (views keep no body for text messages).
        let mut previews: HashMap<i64, String> = rows
            .iter()
            .map(|r| {
                let author = views::name_of(r);
                (r.id, views::preview(r.id, Some(&r.body), Some(&r.kind), r.deleted_at.is_some(), Some(&author)))
            })
            .collect();
        // Rendered in UTC; streams in other zones get theirs from `ZonedFrames`.
        let clock = Clock::utc();
        let mut built = views::build(store, rows, group, &clock).await?;
        // The frame is the same for every member, so the status of an author who
        // blocked one of them stays out of it (the page shows it to everyone else).
        let authors: Vec<(i64, i64)> =
            built.iter().filter(|v| v.author_status.is_set()).map(|v| (v.author_id, v.conversation_id)).collect();
        let blockers = crate::accounts::privacy::blockers_among_members(store, &authors).await?;
        for view in built.iter_mut().filter(|v| blockers.contains(&(v.author_id, v.conversation_id))) {
            view.author_status = crate::accounts::profile::StatusView::hidden(view.author_id);
        }
        for mut view in built {
            // Grouped and dated as the page shows it: one indexed step back.
            let prev = message_store::previous(store, view.conversation_id, view.id).await?;
            view.set_day(prev, &clock);
            view.set_continued(prev);
            let html = MessageFragment { m: &view }.render()?;
            let preview = previews.remove(&view.id).unwrap_or_default();
            messages.insert(view.id, (view, html, preview, prev));
        }
    }

    // Per conversation, computed once per batch: "Seen" and the member count.
    let mut seen: HashMap<i64, String> = HashMap::new();
    let mut member_counts: HashMap<i64, i64> = HashMap::new();
    for event in events {
        let c = event.conversation_id;
        if event.kind == Kind::Read && !seen.contains_key(&c) {
            // Channels show no receipts: a read there changes only the reader's badge.
            let Some(conversation) = info.get(&c).filter(|c| matches!(c.kind.as_str(), "dm" | "group")) else { continue };
            let dm = conversation.kind == "dm";
            let latest = message_store::get(store, c, conversation.last_message_id).await?;
            let view = match latest.filter(|m| m.kind != "system") {
                Some(latest) => {
                    let (readers, count) = conversation_store::readers(store, c, latest.id, latest.author_id).await?;
                    views::seen_by(c, dm, latest.author_id, &readers, count)
                }
                None => views::seen(c, dm, None, &[]),
            };
            seen.insert(c, SeenFragment { seen: view }.render()?);
        }
        if matches!(event.kind, Kind::Joined | Kind::Left) && !member_counts.contains_key(&c) {
            member_counts.insert(c, conversation_store::member_count(store, c).await?);
        }
    }

    let mut out = Vec::with_capacity(events.len());
    for event in events {
        let c = event.conversation_id;
        let mut html = String::new();
        let mut facts = None;
        let mut zoned = None;
        match event.kind {
            Kind::Message | Kind::MessageChanged => {
                if let Some((view, partial, preview, prev)) = event.subject_id.and_then(|id| messages.get(&id)) {
                    place_into(&mut html, Op::Into(&format!("#messages[data-conversation-id='{c}']")), partial)?;
                    let message_end = html.len();
                    // A channel has no sidebar entry and no receipts: its frame is the
                    // message alone (~160 bytes less for each of thousands of viewers).
                    let channel = info.get(&c).is_some_and(|c| c.kind == "text");
                    if event.kind == Kind::Message && !channel {
                        // Nobody but the author has read a message this new.
                        let dm = info.get(&c).is_some_and(|c| c.kind == "dm");
                        let mut sidebar = PreviewFragment { c: SidebarText { id: c, title: "", preview } }.render()?;
                        SeenFragment { seen: views::seen(c, dm, None, &[]) }.render_into(&mut sidebar)?;
                        place_into(&mut html, Op::Replace, &sidebar)?;
                        place_into(&mut html, Op::Top(&format!("sidebar-{c}")), "")?;
                    }
                    zoned = Some(Box::new(ZonedFrames::new(event.id, view.clone(), *prev, html[message_end..].to_string())));
                    if event.kind == Kind::Message {
                        facts = Some(MessageFacts {
                            author_id: view.author_id,
                            counts: !view.system && !view.deleted,
                            mentions: view.mentions_attr.split_whitespace().filter_map(|id| id.parse().ok()).collect(),
                        });
                    }
                }
            }
            Kind::Read => {
                if let Some(seen) = seen.get(&c) {
                    place_into(&mut html, Op::Replace, seen)?;
                }
            }
            Kind::Conversation | Kind::Joined | Kind::Left => {
                if let Some(conversation) = info.get(&c).filter(|c| c.kind == "group") {
                    let changed = ConversationChanged {
                        conversation_id: c,
                        title: &conversation.name,
                        c: SidebarText { id: c, title: &conversation.name, preview: "" },
                        member_count: member_counts.get(&c).copied(),
                    };
                    place_into(&mut html, Op::Replace, &changed.render()?)?;
                }
            }
        }
        let frame = frame(Some(event.id), &html);
        out.push(Arc::new(Delivery {
            event: Some(*event),
            conversation_id: c,
            message: facts,
            typing: None,
            frame,
            revoke: false,
            badges: Default::default(),
            zoned,
        }));
    }
    Ok(out)
}
