//! What templates see of conversations and messages, built from store rows. The
//! message partial is the same bytes for every viewer: per-viewer touches (own
//! messages' buttons, mentions of you) come from the page's viewer style.

use std::collections::{HashMap, HashSet};

use askama::Template;

use crate::error::AppResult;
use crate::store::Store;
use crate::web::time::{Clock, iso};

use super::message_store::{self, MessageRow};
use super::rendered;
use super::store::SidebarRow;
use crate::accounts::presence::{self, PresenceView};
use crate::files::model::AttachmentView;
use crate::accounts::privacy;
use crate::accounts::profile::StatusView;

#[derive(Clone, Default)]
pub struct ReplyView {
    pub id: i64,
    pub author_name: String,
    pub excerpt: String,
    pub deleted: bool,
}

#[derive(Clone)]
pub struct ReactionView {
    pub emoji: String,
    pub count: usize,
    pub names: String,
    pub reactor_ids: String,
}

/// Cloned only to render a live frame again in another time zone.
#[derive(Clone, Default)]
pub struct MessageView {
    pub id: i64,
    pub conversation_id: i64,
    pub author_id: i64,
    pub author_username: String,
    pub author_name: String,
    pub system: bool,
    pub deleted: bool,
    pub pinned: bool,
    /// In groups only admins pin; the class lets the viewer style show the button.
    pub group: bool,
    pub html: String,
    pub text: String,
    pub created_at: i64,
    pub edited_at: Option<i64>,
    pub time_iso: String,
    /// `14:05` in the viewer's zone; the full date and zone in `time_title`.
    pub time_label: String,
    pub time_title: String,
    pub edited: Option<String>,
    /// The day separator shown before this message (its day differs from the one
    /// before it in the viewer's zone).
    pub day: Option<super::timeline::DaySeparator>,
    /// A follow-up in its author's group: its header is there for assistive
    /// technology (it names the article) but not shown.
    pub continued: bool,
    pub reply: Option<ReplyView>,
    pub reactions: Vec<ReactionView>,
    pub mentions_attr: String,
    /// Attached pictures (thumbnail grid) and other files (cards), in upload order.
    pub pictures: Vec<AttachmentView>,
    pub files: Vec<AttachmentView>,
    /// The author's custom status now (empty when none, or hidden from this viewer).
    pub author_status: StatusView,
    pub author_avatar: crate::accounts::profile::AvatarView,
}

/// One message, rendered alone: for htmx responses (and, later, realtime events).
#[derive(Template)]
#[template(path = "conversations/_message.html")]
pub struct MessageFragment<'a> {
    pub m: &'a MessageView,
}

/// Empties the status in the headers of messages by people who blocked the viewer.
pub fn hide_statuses(messages: &mut [MessageView], blockers: &HashSet<i64>) {
    for m in messages.iter_mut().filter(|m| blockers.contains(&m.author_id)) {
        m.author_status = StatusView::hidden(m.author_id);
    }
}

pub fn name_of(row: &MessageRow) -> String {
    crate::accounts::model::shown_name(&row.display_name, &row.username).to_string()
}

/// Views for `rows` (times as `clock` shows them), with their reactions and mentions loaded in one query whatever
/// the page size (reply quotes come joined to the rows). Bodies are rendered from
/// their markdown source here, at read time (`rendered`), never taken from stored HTML.
pub async fn build(store: &Store, rows: Vec<MessageRow>, group: bool, clock: &Clock) -> AppResult<Vec<MessageView>> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut reactions: HashMap<i64, Vec<ReactionView>> = HashMap::new();
    let mut mentions: HashMap<i64, (String, Vec<String>)> = HashMap::new();
    for row in message_store::annotations(store, &ids).await? {
        if row.emoji.is_empty() {
            let (attr, names) = mentions.entry(row.message_id).or_insert_with(|| (" ".into(), Vec::new()));
            attr.push_str(&format!("{} ", row.user_id));
            names.push(row.name);
            continue;
        }
        let list = reactions.entry(row.message_id).or_default();
        match list.iter_mut().find(|r| r.emoji == row.emoji) {
            Some(existing) => {
                existing.count += 1;
                existing.names.push_str(", ");
                existing.names.push_str(&row.name);
                existing.reactor_ids.push_str(&format!("{} ", row.user_id));
            }
            None => list.push(ReactionView {
                emoji: row.emoji,
                count: 1,
                names: row.name,
                reactor_ids: format!(" {} ", row.user_id),
            }),
        }
    }
    let mut attachments: HashMap<i64, (Vec<AttachmentView>, Vec<AttachmentView>)> = HashMap::new();
    for row in crate::files::store::for_messages(store, &ids).await? {
        let Some(message_id) = row.message_id else { continue };
        let (pictures, files) = attachments.entry(message_id).or_default();
        let view = AttachmentView::from_row(&row);
        if view.thumb_url.is_some() { pictures.push(view) } else { files.push(view) }
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            let reply = row.reply_to_id.map(|id| match (&row.reply_author, &row.reply_body, row.reply_deleted_at) {
                (Some(author), Some(body), None) => {
                    ReplyView { id, author_name: author.clone(), excerpt: rendered::excerpt(id, body, 120).to_string(), deleted: false }
                }
                _ => ReplyView { id, author_name: String::new(), excerpt: String::new(), deleted: true },
            });
            let (mentions_attr, mentioned) = mentions.remove(&row.id).unwrap_or_default();
            let pictures_files = attachments.remove(&row.id).unwrap_or_default();
            let system = row.kind == "system";
            let deleted = row.deleted_at.is_some();
            let html = if system || deleted {
                String::new()
            } else {
                let names: Vec<&str> = mentioned.iter().map(String::as_str).collect();
                rendered::body_html(row.id, row.edited_at.unwrap_or(row.created_at), &row.body, &names).to_string()
            };
            let mut view = MessageView {
                id: row.id,
                conversation_id: row.conversation_id,
                author_id: row.author_id,
                author_name: name_of(&row),
                author_username: row.username.clone(),
                system,
                deleted,
                pinned: row.pinned_at.is_some(),
                group,
                text: if system { row.body.clone() } else { String::new() },
                html,
                created_at: row.created_at,
                edited_at: row.edited_at,
                time_iso: iso(row.created_at),
                time_label: String::new(),
                time_title: String::new(),
                edited: None,
                day: None,
                continued: false,
                reply,
                reactions: reactions.remove(&row.id).unwrap_or_default(),
                mentions_attr,
                pictures: pictures_files.0,
                files: pictures_files.1,
                author_status: StatusView::current(row.author_id, &row.status_emoji, &row.status_text, row.status_expires_at),
                author_avatar: crate::accounts::profile::AvatarView::new(row.author_id, &name_of(&row), row.avatar_key.as_deref()),
            };
            view.set_times(clock);
            view
        })
        .collect())
}

pub struct SidebarItem {
    pub id: i64,
    pub title: String,
    pub kind: String,
    pub preview: String,
    pub unread: i64,
    pub mentioned: i64,
    pub active: bool,
    /// The other person's presence, in DMs.
    pub presence: Option<PresenceView>,
    /// The other person's face, in DMs.
    pub avatar: Option<crate::accounts::profile::AvatarView>,
    /// The other person's custom status, in DMs.
    pub status: Option<StatusView>,
    /// Muted, or set to notify about nothing: its badge is shown quietly.
    pub muted: bool,
}

/// A sidebar entry's unread and mention counts: per viewer, so streams render them
/// for each subscriber.
#[derive(Template)]
#[template(path = "conversations/_badges.html")]
pub struct Badges {
    pub b: BadgeView,
}

pub struct BadgeView {
    pub id: i64,
    pub unread: i64,
    pub mentioned: i64,
}

impl SidebarItem {
    pub fn badges(&self) -> BadgeView {
        BadgeView { id: self.id, unread: self.unread, mentioned: self.mentioned }
    }
}

#[derive(Template)]
#[template(path = "conversations/_sidebar_item.html")]
pub struct SidebarItemFragment<'a> {
    pub c: &'a SidebarItem,
}

/// The title a viewer sees: a group's name, the other person in a DM, or "Saved messages".
pub fn title(kind: &str, name: &str, other_name: Option<&str>) -> String {
    match kind {
        "dm" => other_name.map(str::to_string).unwrap_or_else(|| "Saved messages".into()),
        _ => name.to_string(),
    }
}

/// What the sidebar says about a conversation's latest message (`message_id`).
pub fn preview(message_id: i64, body: Option<&str>, kind: Option<&str>, deleted: bool, author: Option<&str>) -> String {
    match (body, kind, deleted) {
        (_, _, true) => "Message deleted".to_string(),
        (Some(body), Some("system"), false) => body.to_string(),
        // Text is required unless files come with it: an empty one carried only files.
        (Some(""), Some("text"), false) => format!("{}: 📎 Files", author.unwrap_or("")),
        (Some(body), _, false) => format!("{}: {}", author.unwrap_or(""), rendered::excerpt(message_id, body, 60)),
        _ => "No messages yet".to_string(),
    }
}

/// Sidebar entries; `online` says which DM partners hold a live stream, `blockers`
/// who blocked the viewer (their presence and status stay hidden).
pub fn sidebar_items(rows: Vec<SidebarRow>, active: Option<i64>, online: &dyn Fn(i64) -> bool, blockers: &HashSet<i64>) -> Vec<SidebarItem> {
    let now = crate::store::now_ms();
    rows.into_iter()
        .map(|row| SidebarItem {
            muted: {
                let setting = crate::notifications::level::Setting::from_row(row.notify_level.as_deref(), row.muted_until);
                setting.muted_at(now) || setting.level == Some(crate::notifications::level::Level::Nothing)
            },
            id: row.id,
            title: title(&row.kind, &row.name, row.other_name.as_deref()),
            preview: preview(row.last_message_id, row.last_body.as_deref(), row.last_kind.as_deref(), row.last_deleted_at.is_some(), row.last_author.as_deref()),
            avatar: row.other_id.map(|other| {
                crate::accounts::profile::AvatarView::new(other, row.other_name.as_deref().unwrap_or(""), row.other_avatar_key.as_deref())
            }),
            presence: row.other_id.map(|other| {
                // A DM partner shares the conversation: in the circle.
                let shown = privacy::shown(blockers.contains(&other), row.other_last_seen_audience.as_deref().unwrap_or(""), true);
                presence::view(other, row.other_presence.as_deref().unwrap_or("online"), online(other), row.other_last_seen, shown)
            }),
            status: row.other_id.map(|other| match blockers.contains(&other) {
                true => StatusView::hidden(other),
                false => StatusView::current(
                    other,
                    row.other_status_emoji.as_deref().unwrap_or(""),
                    row.other_status_text.as_deref().unwrap_or(""),
                    row.other_status_expires_at,
                ),
            }),
            kind: row.kind,
            // The open conversation shows no badge: its reader is looking at it (the
            // page's read POST moves the position; opening it no longer does).
            unread: if active == Some(row.id) { 0 } else { row.unread },
            mentioned: if active == Some(row.id) { 0 } else { row.mentioned },
            active: active == Some(row.id),
        })
        .collect()
}

/// "Seen" under the latest message, the same for every viewer: in a DM it names no
/// one and only the latest message's author is shown it (viewer style); in a group it
/// lists who besides the author has read it (a count beyond 20).
pub struct SeenView {
    pub conversation_id: i64,
    pub dm: bool,
    pub author_id: i64,
    pub text: String,
}

#[derive(Template)]
#[template(path = "conversations/_seen.html")]
pub struct SeenFragment {
    pub seen: SeenView,
}

pub fn seen(conversation_id: i64, dm: bool, latest: Option<(i64, i64, bool)>, members: &[super::store::MemberRow]) -> SeenView {
    // (id, author, is_system): a system line is nobody's to have seen.
    let Some((latest_id, author_id, _)) = latest.filter(|l| !l.2) else {
        return SeenView { conversation_id, dm, author_id: 0, text: String::new() };
    };
    let readers: Vec<super::store::MemberRow> =
        members.iter().filter(|m| m.user_id != author_id && m.last_read_id >= latest_id).cloned().collect();
    let count = readers.len() as i64;
    seen_by(conversation_id, dm, author_id, &readers, count)
}

/// "Seen" from the readers of the latest message (up to 21 of them) and their number.
pub fn seen_by(conversation_id: i64, dm: bool, author_id: i64, readers: &[super::store::MemberRow], count: i64) -> SeenView {
    let text = match count {
        0 => String::new(),
        _ if dm => "Seen".into(),
        n if n > 20 => format!("Seen by {n} people"),
        _ => format!("Seen by {}", readers.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")),
    };
    SeenView { conversation_id, dm, author_id, text }
}

/// The sidebar as `user_id` sees it, with their DM partners' presence.
/// The shell's left side outside servers: the server rail over the DM and group list.
#[derive(Default)]
pub struct Sidebar {
    pub items: Vec<SidebarItem>,
    pub rail: Vec<crate::servers::nav::RailItem>,
    /// Message requests waiting for the viewer (the "Message requests" link's count).
    pub requests: i64,
}

impl<'a> IntoIterator for &'a Sidebar {
    type Item = &'a SidebarItem;
    type IntoIter = std::slice::Iter<'a, SidebarItem>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

pub async fn sidebar_for(state: &crate::state::AppState, user_id: i64, active: Option<i64>) -> AppResult<Sidebar> {
    let rows = super::store::sidebar(&state.store, user_id).await?;
    let others: Vec<i64> = rows.iter().filter_map(|r| r.other_id).collect();
    let online = state.realtime.online_among(&others).await;
    let blockers = privacy::blockers_of(&state.store, user_id).await?;
    Ok(Sidebar {
        items: sidebar_items(rows, active, &|user| online.contains(&user), &blockers),
        rail: crate::servers::nav::rail(&state.store, user_id, None).await?,
        requests: super::request_store::waiting(&state.store, user_id).await?,
    })
}
