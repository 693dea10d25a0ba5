//! Reading a conversation: the page at its newest messages, older pages, permalinks
//! in context, single-message fragments and the pinned list.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::accounts::CurrentUser;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::web::layout::Page;
use crate::web::shell::wants_fragment;

use super::access::require;
use super::timeline;
use crate::web::time::Clock;
use super::message_store::{self, Window};
use super::model::{Access, HistoryQuery};
use super::store::{self, MemberRow};
use super::views::{self, MessageFragment, MessageView, ReplyView, SeenView};
use crate::accounts::presence::PresenceView;

pub struct Viewer {
    pub id: i64,
    pub moderator: bool,
}

pub struct Compose {
    pub conversation_id: i64,
    pub client_id: String,
    pub body: String,
    pub error: Option<String>,
    pub reply: Option<ReplyView>,
    pub oob: bool,
}

impl Compose {
    pub fn fresh(conversation_id: i64) -> Compose {
        Compose { conversation_id, client_id: new_client_id(), body: String::new(), error: None, reply: None, oob: false }
    }
}

/// A random id the server puts in every compose form: submitting the same form twice
/// (double click, retry, resubmission with JavaScript off) creates one message.
pub fn new_client_id() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Template)]
#[template(path = "conversations/_compose.html")]
pub struct ComposeFragment {
    pub compose: Compose,
}

#[derive(Template, WebTemplate)]
#[template(path = "conversations/show.html")]
pub struct ConversationPage {
    page: Page,
    viewer: Viewer,
    sidebar: views::Sidebar,
    conversation_id: i64,
    title: String,
    is_group: bool,
    member_count: usize,
    messages: Vec<MessageView>,
    has_older: bool,
    has_newer: bool,
    oldest_id: i64,
    newest_id: i64,
    unread_divider: i64,
    jump_to_unread: Option<i64>,
    seen: SeenView,
    compose: Compose,
    /// The other person in a DM, and whether they are online.
    dm_presence: Option<PresenceView>,
    dm_status: Option<crate::accounts::profile::StatusView>,
    /// In a server channel: the server rail and channel list instead of the DM list.
    server: Option<crate::servers::nav::ServerShell>,
    topic: String,
    /// Why the composer is not offered (no SEND_MESSAGES, timed out).
    send_locked: Option<String>,
    /// "Slowmode is on: one message every 30 seconds."
    slowmode: Option<String>,
    /// The viewer's notification level and mute here.
    notify: crate::notifications::NotifyForm,
    /// Calls happen in DMs and groups: whether to offer them, and the one going on.
    callable: bool,
    call: Option<crate::store::calls::Call>,
}

/// The title the viewer sees for a conversation they are in.
pub fn conversation_title(access: &Access, members: &[MemberRow]) -> String {
    if access.is_channel() {
        return format!("#{}", access.conversation.name);
    }
    let other = members.iter().find(|m| m.user_id != access.user_id).map(MemberRow::name);
    views::title(&access.conversation.kind, &access.conversation.name, other)
}

pub async fn render_page(
    state: &AppState,
    user: &CurrentUser,
    access: &Access,
    window: Window,
    compose: Compose,
) -> AppResult<ConversationPage> {
    let id = access.conversation.id;
    // Read before the page's contents: the stream replays from here, so nothing that
    // commits while the page renders can fall between the two.
    let since = crate::store::log::newest(&state.store).await?;
    let page = message_store::page(&state.store, id, window).await?;
    // Channels show no receipts and no member count: their member list can be a whole
    // community, and nothing on a channel page needs it.
    let members = if access.is_channel() { Vec::new() } else { store::members(&state.store, id).await? };
    let clock = Clock::at_now(&user.zone);
    let mut messages = views::build(&state.store, page.messages, access.moderated(), &clock).await?;
    timeline::arrange_page(&state.store, id, &mut messages, page.has_older, &clock).await?;
    // Who blocked the viewer matters only for statuses shown here (a DM partner's, or
    // authors'): most channel pages have none and skip the query.
    let blockers = if access.is_dm() || messages.iter().any(|m| m.author_status.is_set()) {
        crate::accounts::privacy::blockers_of(&state.store, user.id).await?
    } else {
        Default::default()
    };
    views::hide_statuses(&mut messages, &blockers);

    let mut unread_divider = 0;
    let mut jump_to_unread = None;
    if access.conversation.last_message_id > access.last_read_id {
        if let Some(first) = message_store::first_unread(&state.store, id, user.id, access.last_read_id).await? {
            if messages.iter().any(|m| m.id == first) {
                unread_divider = first;
            } else if matches!(window, Window::Latest) {
                jump_to_unread = Some(first);
            }
        }
    }
    // No mark-read here: a GET never writes (a cross-site link must not mark anything
    // read, and a page view must not take the event-counter lock). app.js posts to
    // `/c/{id}/read` once the page is visible; without JavaScript the page offers a
    // "Mark as read" button, and sending marks read too.
    let sidebar = if access.is_channel() { views::Sidebar::default() } else { views::sidebar_for(state, user.id, Some(id)).await? };
    let title = conversation_title(access, &members);
    let latest = messages.last().filter(|m| m.id == access.conversation.last_message_id).map(|m| (m.id, m.author_id, m.system));
    let seen = views::seen(id, access.is_dm(), latest, &members);
    // The member row already holds the status and "last seen"; only "online" is asked.
    let (dm_presence, dm_status) = match members.iter().find(|m| m.user_id != user.id) {
        Some(other) if access.is_dm() => {
            let online = state.realtime.online_among(&[other.user_id]).await.contains(&other.user_id);
            (Some(other.presence(online, &blockers)), Some(other.status(&blockers)))
        }
        _ => (None, None),
    };
    let mut page_shell = Page::new(title.clone(), Some(user));
    page_shell.live_since = Some(since);
    page_shell.ringing = crate::store::calls::ringing(&state.store, user.id, state.config.call_ring_ms()).await?;
    let call = if access.is_channel() { None } else { crate::store::calls::ongoing(&state.store, id).await? };
    let (server, topic, send_locked, slowmode) = match &access.channel {
        Some(rights) => {
            let shell = crate::servers::nav::shell(state, &rights.server, Some(id)).await?;
            let locked = match rights.timed_out_until {
                Some(until) => Some(format!("You are timed out until {}: you can read this channel but not send.", clock.stamp(until))),
                None if !access.can_send() => Some("You do not have permission to send messages in this channel.".to_string()),
                None => None,
            };
            let slowmode = (rights.slowmode_seconds > 0).then(|| {
                let every = crate::servers::model::wait_label(rights.slowmode_seconds);
                if rights.bypasses_slowmode() { format!("Slowmode is on (one message every {every}); it does not apply to you.") } else { format!("Slowmode is on: one message every {every}.") }
            });
            (Some(shell), rights.topic.clone(), locked, slowmode)
        }
        None => (None, String::new(), None, None),
    };
    let notify = crate::notifications::form_for_conversation(state, access).await?;
    Ok(ConversationPage {
        notify,
        // Not in a channel, nor with nobody else here (saved messages, a request not yet accepted).
        callable: !access.is_channel() && members.iter().any(|m| m.user_id != user.id),
        call,
        page: page_shell,
        dm_presence,
        dm_status,
        server,
        topic,
        send_locked,
        slowmode,
        viewer: Viewer { id: user.id, moderator: access.can_manage() || (access.is_channel() && access.can_pin()) },
        sidebar,
        conversation_id: id,
        is_group: access.is_group(),
        member_count: members.len(),
        seen,
        has_older: page.has_older,
        has_newer: page.has_newer,
        oldest_id: messages.first().map(|m| m.id).unwrap_or(0),
        newest_id: messages.last().map(|m| m.id).unwrap_or(0),
        messages,
        unread_divider,
        jump_to_unread,
        title,
        compose,
    })
}

pub async fn reply_view(state: &AppState, conversation_id: i64, message_id: i64) -> AppResult<Option<ReplyView>> {
    let Some(row) = message_store::get(&state.store, conversation_id, message_id).await? else {
        return Ok(None);
    };
    Ok(Some(ReplyView {
        id: row.id,
        author_name: views::name_of(&row),
        excerpt: super::markdown::excerpt(&row.body, 120),
        deleted: row.deleted_at.is_some(),
    }))
}

pub async fn show(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    Query(query): Query<HistoryQuery>,
) -> AppResult<ConversationPage> {
    let access = require(&state.store, user.id, id).await?;
    let window = match (query.around, query.before) {
        (Some(around), _) => Window::Around(around),
        (None, Some(before)) => Window::Before(before),
        _ => Window::Latest,
    };
    let mut compose = Compose::fresh(id);
    if let Some(reply_to) = query.reply_to {
        compose.reply = reply_view(&state, id, reply_to).await?;
    }
    render_page(&state, &user, &access, window, compose).await
}

#[derive(Deserialize)]
pub struct HistoryParams {
    before: Option<i64>,
    after: Option<i64>,
}

#[derive(Template)]
#[template(path = "conversations/_history.html")]
struct HistoryFragment {
    conversation_id: i64,
    oldest_id: i64,
    has_older: bool,
    messages: Vec<MessageView>,
}

/// Older (or newer) messages: a fragment for "Load older" with htmx, else a full page.
pub async fn history(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(params): Query<HistoryParams>,
) -> AppResult<Response> {
    let access = require(&state.store, user.id, id).await?;
    let window = match (params.before, params.after) {
        (Some(before), _) => Window::Before(before),
        (None, Some(after)) => Window::After(after),
        (None, None) => Window::Latest,
    };
    if wants_fragment(&headers) && params.before.is_some() {
        let page = message_store::page(&state.store, id, window).await?;
        let clock = Clock::at_now(&user.zone);
        let mut messages = views::build(&state.store, page.messages, access.moderated(), &clock).await?;
        timeline::arrange_page(&state.store, id, &mut messages, page.has_older, &clock).await?;
        views::hide_statuses(&mut messages, &crate::accounts::privacy::blockers_of(&state.store, user.id).await?);
        let fragment = HistoryFragment {
            conversation_id: id,
            oldest_id: messages.first().map(|m| m.id).unwrap_or(0),
            has_older: page.has_older,
            messages,
        };
        return Ok(Html(fragment.render()?).into_response());
    }
    Ok(render_page(&state, &user, &access, window, Compose::fresh(id)).await?.into_response())
}

/// A message's permanent address: the conversation opened around it, scrolled to and
/// highlighted by the URL fragment.
pub async fn permalink(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((id, message_id)): Path<(i64, i64)>,
) -> AppResult<Redirect> {
    require(&state.store, user.id, id).await?;
    message_store::get(&state.store, id, message_id).await?.ok_or(AppError::NotFound)?;
    Ok(Redirect::to(&format!("/c/{id}?around={message_id}#message-{message_id}")))
}

/// One message as a fragment (htmx "Cancel" of an edit).
pub async fn message_fragment(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((id, message_id)): Path<(i64, i64)>,
) -> AppResult<Html<String>> {
    let access = require(&state.store, user.id, id).await?;
    Ok(Html(render_message(&state, &access, message_id, &Clock::at_now(&user.zone), false).await?))
}

/// One message as `clock` shows it, grouped as on the page. `with_day` adds its day
/// separator (a new message placed by id); a message replacing itself in place
/// (`outerHTML`, after an edit) must come without it.
pub async fn render_message(state: &AppState, access: &Access, message_id: i64, clock: &Clock, with_day: bool) -> AppResult<String> {
    let row = message_store::get(&state.store, access.conversation.id, message_id).await?.ok_or(AppError::NotFound)?;
    let mut views = views::build(&state.store, vec![row], access.moderated(), clock).await?;
    let before = message_store::previous(&state.store, access.conversation.id, message_id).await?;
    timeline::arrange(&mut views, before, clock, true);
    if !with_day {
        views.iter_mut().for_each(|v| v.day = None);
    }
    views::hide_statuses(&mut views, &crate::accounts::privacy::blockers_of(&state.store, access.user_id).await?);
    let view = views.first().ok_or(AppError::NotFound)?;
    Ok(MessageFragment { m: view }.render()?)
}

#[derive(Template, WebTemplate)]
#[template(path = "conversations/pins.html")]
pub struct PinsPage {
    page: Page,
    viewer: Viewer,
    sidebar: views::Sidebar,
    conversation_id: i64,
    title: String,
    messages: Vec<MessageView>,
}

pub async fn pins(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>) -> AppResult<PinsPage> {
    let access = require(&state.store, user.id, id).await?;
    let members = store::members(&state.store, id).await?;
    let rows = message_store::pinned(&state.store, id).await?;
    let clock = Clock::at_now(&user.zone);
    let mut messages = views::build(&state.store, rows, access.moderated(), &clock).await?;
    // Pins are not consecutive: dated, never grouped.
    timeline::arrange(&mut messages, None, &clock, false);
    views::hide_statuses(&mut messages, &crate::accounts::privacy::blockers_of(&state.store, user.id).await?);
    let title = conversation_title(&access, &members);
    Ok(PinsPage {
        page: Page::new(format!("Pinned in {title}"), Some(&user)),
        viewer: Viewer { id: user.id, moderator: access.can_manage() },
        sidebar: views::sidebar_for(&state, user.id, Some(id)).await?,
        conversation_id: id,
        title,
        messages,
    })
}
