//! Writing to a conversation: send, edit, delete, react, pin. Each action answers an
//! htmx request with the message's partial and a plain form post with a redirect.

use std::time::Duration;

use askama::Template;
use askama_web::WebTemplate;
use axum::body::Body;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::accounts::CurrentUser;
use crate::error::{AppError, AppResult};
use crate::files::upload;
use crate::state::AppState;
use crate::store::Store;
use crate::web::Form;
use crate::web::ratelimit::Rule;
use crate::web::layout::Page;
use crate::web::shell::wants_fragment;
use crate::servers::audit::{Action, Entry};

use super::access::{ensure, require};
use super::markdown;
use super::message_store::{self, MessageRow, Window};
use super::writer::NewMessage;
use super::model::{Access, parse_body};
use crate::web::time::Clock;
use super::pages::{Compose, ComposeFragment, new_client_id, render_message, render_page, reply_view};
use super::reactions::parse_emoji;
use super::store;
use super::views;

#[derive(Deserialize)]
pub struct SendInput {
    #[serde(default)]
    body: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    reply_to: String,
}

/// Renders a message's markdown and finds whom it mentions.
pub async fn render_body(store: &Store, body: &str) -> AppResult<(String, Vec<i64>)> {
    let candidates = mention_candidates(body);
    let known = store::existing_usernames(store, &candidates).await?;
    let rendered = markdown::render(body, &|name| known.iter().any(|(_, n)| n == name));
    let ids = known.iter().filter(|(_, n)| rendered.mentions.contains(n)).map(|(id, _)| *id).collect();
    Ok((rendered.html, ids))
}

/// In a server channel, adds whom `@everyone`, `@here` and role mentions reach.
async fn group_mentions(state: &AppState, access: &Access, body: &str, mentions: &mut Vec<i64>) -> AppResult<()> {
    match &access.channel {
        Some(channel) => {
            let (shape, id) = (&channel.server.shape, access.conversation.id);
            crate::servers::mentions::add_group_mentions(state, shape, id, access.user_id, channel.permissions, body, mentions).await
        }
        None => Ok(()),
    }
}

/// Every `@name` that could be a username; the renderer decides which really are mentions.
fn mention_candidates(body: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (index, _) in body.match_indices('@') {
        let name: String = body[index + 1..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
            .collect::<String>()
            .trim_end_matches('.')
            .to_lowercase();
        if (2..=32).contains(&name.len()) && !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// A client id as the server rendered it: 1–64 characters of `[A-Za-z0-9_-]`.
fn parse_client_id(input: &str) -> Option<&str> {
    let id = input.trim();
    (!id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')).then_some(id)
}

/// The compose form: urlencoded, or multipart when it carries files (`files::upload`
/// streams those to storage while the form is read).
pub async fn send(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    Path(id): Path<i64>,
    request: Request,
) -> AppResult<Response> {
    let multipart = upload::is_multipart(&headers);
    // Before anything else, and before a byte of the body: a declared size over the cap.
    let cap = if multipart { state.config.max_upload_bytes } else { state.config.max_body_bytes as u64 };
    upload::refuse_declared_length(&headers, cap)?;
    let access = require(&state.store, user.id, id).await?;
    let (input, attachments, refused) = if multipart {
        let received = upload::receive(&state, user.id, id, access.can_attach(), request).await?;
        let input = SendInput { body: received.field("body"), client_id: received.field("client_id"), reply_to: received.field("reply_to") };
        (input, received.attachments, received.refused)
    } else {
        // This route lifts axum's body limit for files; a plain form keeps the usual one.
        let request = request.map(|body| Body::new(http_body_util::Limited::new(body, state.config.max_body_bytes)));
        let Form(input) = Form::<SendInput>::from_request(request, &state).await?;
        (input, Vec::new(), None)
    };
    let result = send_checked(&state, &user, &access, &headers, input, &attachments, refused).await;
    match &result {
        Ok((_, true)) => {}
        // Refused, failed or a resubmission: the uploads belong to no message.
        _ => upload::discard(&state, user.id, &attachments).await,
    }
    result.map(|(response, _)| response)
}

/// The rest of a send once the form is read: the response, and whether a message with
/// `attachments` was created.
async fn send_checked(
    state: &AppState,
    user: &CurrentUser,
    access: &Access,
    headers: &HeaderMap,
    input: SendInput,
    attachments: &[i64],
    refused: Option<(StatusCode, String)>,
) -> AppResult<(Response, bool)> {
    let id = access.conversation.id;
    let htmx = wants_fragment(headers);
    let reply_to = input.reply_to.trim().parse::<i64>().ok();
    let reply = match reply_to {
        Some(reply_id) => reply_view(state, id, reply_id).await?,
        None => None,
    };
    let refusal = match send_refusal(state, access, &user.zone).await? {
        Some(refusal) => Some(refusal),
        None => refused.map(|(status, why)| (status, why, None)),
    };
    // Text is optional when files come with it.
    let parsed = if input.body.trim().is_empty() && !attachments.is_empty() { Ok(String::new()) } else { parse_body(&input.body) };
    let checked = match parsed {
        Err(why) => Err((StatusCode::UNPROCESSABLE_ENTITY, why, None)),
        Ok(_) if refusal.is_some() => Err(refusal.expect("checked")),
        Ok(body) => {
            let rule = Rule::new(state.config.send_limit, Duration::from_secs(10));
            match state.limiter.hit(&format!("send:{}", user.id), rule).await {
                Ok(()) => Ok(body),
                Err(retry_after_secs) => {
                    let why = AppError::TooManyRequests { retry_after_secs }.to_message();
                    Err((StatusCode::TOO_MANY_REQUESTS, why, Some(retry_after_secs)))
                }
            }
        }
    };
    let body = match checked {
        Ok(body) => body,
        Err((status, mut error, retry_after)) => {
            if !attachments.is_empty() {
                error.push_str(" Your files were not sent: choose them again.");
            }
            // The same client id goes back, so sending the corrected draft stays idempotent.
            let compose = Compose {
                conversation_id: id,
                client_id: parse_client_id(&input.client_id).map(str::to_string).unwrap_or_else(new_client_id),
                body: input.body,
                error: Some(error),
                reply,
                oob: false,
            };
            let mut response = compose_failed(state, user, access, htmx, compose).await?;
            *response.status_mut() = status;
            if let Some(secs) = retry_after {
                response.headers_mut().insert(axum::http::header::RETRY_AFTER, HeaderValue::from(secs));
            }
            return Ok((response, false));
        }
    };
    let (html, mut mentions) = render_body(&state.store, &body).await?;
    group_mentions(state, access, &body, &mut mentions).await?;
    let push = crate::push::Sent {
        conversation_id: id,
        message_id: 0,
        author_id: user.id,
        mentions: mentions.clone(),
        reply_to_id: reply.as_ref().map(|r| r.id),
        body: body.clone(),
    };
    let new = NewMessage {
        conversation_id: id,
        author_id: user.id,
        kind: "text",
        body,
        html,
        reply_to_id: reply.as_ref().map(|r| r.id),
        client_id: parse_client_id(&input.client_id).map(str::to_string),
        mentions,
        attachments: attachments.to_vec(),
    };
    let (message_id, created) = state.writer.write(new).await?;
    if created {
        // Queued, not awaited: pushes never slow the send.
        state.push.message_sent(crate::push::Sent { message_id, ..push });
    }
    state.realtime.typing_stop(id, user.id).await;
    if !htmx {
        return Ok((Redirect::to(&format!("/c/{id}#message-{message_id}")).into_response(), created));
    }
    let mut compose = Compose::fresh(id);
    compose.oob = true;
    let mut html = if created { render_message(state, access, message_id, &Clock::at_now(&user.zone), true).await? } else { String::new() };
    html.push_str(&ComposeFragment { compose }.render()?);
    Ok((Html(html).into_response(), created))
}

/// Why this member may not send here now, if they may not: a timeout, no
/// SEND_MESSAGES in a channel, or slowmode with the wait left (status and Retry-After).
async fn send_refusal(state: &AppState, access: &Access, zone: &crate::web::time::Zone) -> AppResult<Option<(StatusCode, String, Option<u64>)>> {
    if access.is_dm() {
        let refusal = crate::accounts::privacy::dm_send_refusal(&state.store, access.conversation.id, access.user_id).await?;
        return Ok(refusal.map(|why| (StatusCode::FORBIDDEN, why.to_string(), None)));
    }
    let Some(channel) = &access.channel else { return Ok(None) };
    if let Some(until) = channel.timed_out_until {
        let why = format!("You are timed out until {}: you can read this channel but not send.", Clock::at_now(zone).stamp(until));
        return Ok(Some((StatusCode::FORBIDDEN, why, None)));
    }
    if !access.can_send() {
        return Ok(Some((StatusCode::FORBIDDEN, "You do not have permission to send messages in this channel.".into(), None)));
    }
    if channel.slowmode_seconds > 0 && !channel.bypasses_slowmode() {
        if let Some(last) = message_store::last_sent_at(&state.store, access.conversation.id, access.user_id).await? {
            let wait_ms = last + channel.slowmode_seconds * 1000 - crate::store::now_ms();
            if wait_ms > 0 {
                let secs = (wait_ms + 999) / 1000;
                let why = format!("Slowmode is on: you can send again in {}.", crate::servers::model::wait_label(secs));
                return Ok(Some((StatusCode::TOO_MANY_REQUESTS, why, Some(secs as u64))));
            }
        }
    }
    Ok(None)
}

/// The compose form again with the error and everything typed: in place for htmx,
/// as the whole conversation page otherwise.
async fn compose_failed(state: &AppState, user: &CurrentUser, access: &Access, htmx: bool, compose: Compose) -> AppResult<Response> {
    if htmx {
        let mut response = (StatusCode::UNPROCESSABLE_ENTITY, Html(ComposeFragment { compose }.render()?)).into_response();
        response.headers_mut().insert("hx-retarget", HeaderValue::from_static("#compose"));
        response.headers_mut().insert("hx-reswap", HeaderValue::from_static("outerHTML"));
        return Ok(response);
    }
    let page = render_page(state, user, access, Window::Latest, compose).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}

/// The message an action is about: it must be in this conversation and be a real
/// (not system) message.
async fn target(state: &AppState, access: &Access, message_id: i64) -> AppResult<MessageRow> {
    let row = message_store::get(&state.store, access.conversation.id, message_id).await?.ok_or(AppError::NotFound)?;
    if row.kind != "text" {
        return Err(AppError::NotFound);
    }
    Ok(row)
}

/// After an action on one message: its new partial for htmx, back to it otherwise.
async fn answer(state: &AppState, access: &Access, headers: &HeaderMap, message_id: i64, extra: &str, clock: &Clock) -> AppResult<Response> {
    if wants_fragment(headers) {
        let mut html = render_message(state, access, message_id, clock, false).await?;
        html.push_str(extra);
        return Ok(Html(html).into_response());
    }
    let id = access.conversation.id;
    Ok(Redirect::to(&format!("/c/{id}/m/{message_id}")).into_response())
}

#[derive(Template)]
#[template(path = "conversations/_edit_form.html")]
struct EditForm {
    conversation_id: i64,
    message_id: i64,
    body: String,
    error: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "conversations/edit.html")]
struct EditPage {
    page: Page,
    conversation_id: i64,
    message_id: i64,
    body: String,
    error: Option<String>,
}

fn edit_response(user: &CurrentUser, htmx: bool, form: EditForm, status: StatusCode) -> AppResult<Response> {
    if htmx {
        return Ok((status, Html(form.render()?)).into_response());
    }
    let page = EditPage {
        page: Page::new("Edit message", Some(user)),
        conversation_id: form.conversation_id,
        message_id: form.message_id,
        body: form.body,
        error: form.error,
    };
    Ok((status, page).into_response())
}

pub async fn edit_form(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    Path((id, message_id)): Path<(i64, i64)>,
) -> AppResult<Response> {
    let access = require(&state.store, user.id, id).await?;
    let row = target(&state, &access, message_id).await?;
    ensure(row.author_id == user.id && row.deleted_at.is_none())?;
    let form = EditForm { conversation_id: id, message_id, body: row.body, error: None };
    edit_response(&user, wants_fragment(&headers), form, StatusCode::OK)
}

#[derive(Deserialize)]
pub struct EditInput {
    #[serde(default)]
    body: String,
}

pub async fn edit(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    Path((id, message_id)): Path<(i64, i64)>,
    Form(input): Form<EditInput>,
) -> AppResult<Response> {
    let access = require(&state.store, user.id, id).await?;
    let row = target(&state, &access, message_id).await?;
    ensure(row.author_id == user.id && row.deleted_at.is_none())?;
    let body = match parse_body(&input.body) {
        Ok(body) => body,
        Err(message) => {
            let form = EditForm { conversation_id: id, message_id, body: input.body, error: Some(message) };
            return edit_response(&user, wants_fragment(&headers), form, StatusCode::UNPROCESSABLE_ENTITY);
        }
    };
    if body != row.body {
        let (html, mut mentions) = render_body(&state.store, &body).await?;
        group_mentions(&state, &access, &body, &mut mentions).await?;
        message_store::edit(&state.store, message_id, &body, &html, &mentions, id).await?;
    }
    answer(&state, &access, &headers, message_id, "", &Clock::at_now(&user.zone)).await
}

pub async fn delete(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    Path((id, message_id)): Path<(i64, i64)>,
) -> AppResult<Response> {
    let access = require(&state.store, user.id, id).await?;
    let row = target(&state, &access, message_id).await?;
    ensure(access.can_delete(row.author_id))?;
    if row.deleted_at.is_none() {
        // A moderator removing someone else's channel message is a logged action.
        let audit = match &access.channel {
            Some(channel) if row.author_id != user.id => {
                let excerpt: String = row.body.chars().take(100).collect();
                let author = super::views::name_of(&row);
                Some(Entry::new(channel.server_id, user.id, Action::MessageDelete).target("message", message_id, &format!("by {author} in #{}", access.conversation.name)).change(excerpt, "deleted"))
            }
            _ => None,
        };
        message_store::delete(&state.store, id, message_id, audit.as_ref()).await?;
        // Its files go now (the periodic sweep would get them too).
        crate::files::sweep::soon(&state);
    }
    answer(&state, &access, &headers, message_id, "", &Clock::at_now(&user.zone)).await
}

#[derive(Deserialize)]
pub struct ReactInput {
    #[serde(default)]
    emoji: String,
}

pub async fn react(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    Path((id, message_id)): Path<(i64, i64)>,
    Form(input): Form<ReactInput>,
) -> AppResult<Response> {
    let access = require(&state.store, user.id, id).await?;
    let row = target(&state, &access, message_id).await?;
    if row.deleted_at.is_some() {
        return Err(AppError::Unprocessable("That message was deleted.".into()));
    }
    if !access.can_react() || access.channel.as_ref().is_some_and(|c| c.timed_out_until.is_some()) {
        return Err(AppError::Forbidden("You cannot react in this channel."));
    }
    let emoji = match parse_emoji(&input.emoji) {
        Ok(emoji) => emoji,
        Err(why) => {
            let picker = Picker { conversation_id: id, message_id, inline: wants_fragment(&headers), typed: input.emoji, error: Some(why.into()) };
            return picker_response(&user, &row, picker, StatusCode::UNPROCESSABLE_ENTITY);
        }
    };
    message_store::toggle_reaction(&state.store, id, message_id, user.id, &emoji).await?;
    answer(&state, &access, &headers, message_id, "", &Clock::at_now(&user.zone)).await
}

/// The reaction picker for one message, as `_react_picker.html` reads it: `inline`
/// when htmx places it inside the message (its forms then post with htmx).
struct Picker {
    conversation_id: i64,
    message_id: i64,
    inline: bool,
    typed: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "conversations/_react_picker.html")]
struct PickerFragment {
    picker: Picker,
}

#[derive(Template, WebTemplate)]
#[template(path = "conversations/react.html")]
struct PickerPage {
    page: Page,
    author_name: String,
    excerpt: String,
    picker: Picker,
}

/// The picker in place of "Add reaction" for htmx (a refused emoji goes back into the
/// picker, not over the message), or as its own page.
fn picker_response(user: &CurrentUser, row: &MessageRow, picker: Picker, status: StatusCode) -> AppResult<Response> {
    if picker.inline {
        let mut response = (status, Html(PickerFragment { picker }.render()?)).into_response();
        if status != StatusCode::OK {
            let target = HeaderValue::try_from(format!("#react-{}", row.id)).expect("a selector of digits is a header value");
            response.headers_mut().insert("hx-retarget", target);
            response.headers_mut().insert("hx-reswap", HeaderValue::from_static("outerHTML"));
        }
        return Ok(response);
    }
    let page = PickerPage {
        page: Page::new("Add reaction", Some(user)),
        author_name: views::name_of(row),
        excerpt: markdown::excerpt(&row.body, 120),
        picker,
    };
    Ok((status, page).into_response())
}

/// "Add reaction": the emoji to choose from, for a message that can still take one.
pub async fn react_picker(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    Path((id, message_id)): Path<(i64, i64)>,
) -> AppResult<Response> {
    let access = require(&state.store, user.id, id).await?;
    let row = target(&state, &access, message_id).await?;
    if row.deleted_at.is_some() {
        return Err(AppError::Unprocessable("That message was deleted.".into()));
    }
    let picker = Picker { conversation_id: id, message_id, inline: wants_fragment(&headers), typed: String::new(), error: None };
    picker_response(&user, &row, picker, StatusCode::OK)
}

/// Writes a system line ("Alice pinned a message") into the conversation.
pub async fn post_system(state: &AppState, conversation_id: i64, actor_id: i64, text: &str) -> AppResult<i64> {
    let new = NewMessage {
        conversation_id,
        author_id: actor_id,
        kind: "system",
        body: text.to_string(),
        html: String::new(),
        reply_to_id: None,
        client_id: None,
        mentions: Vec::new(),
        attachments: Vec::new(),
    };
    Ok(state.writer.write(new).await?.0)
}

async fn set_pin(state: AppState, user: CurrentUser, headers: HeaderMap, id: i64, message_id: i64, pin: bool) -> AppResult<Response> {
    let access = require(&state.store, user.id, id).await?;
    let row = target(&state, &access, message_id).await?;
    ensure(access.can_pin())?;
    if row.deleted_at.is_some() {
        return Err(AppError::Unprocessable("That message was deleted.".into()));
    }
    let mut extra = String::new();
    if pin != row.pinned_at.is_some() {
        message_store::set_pinned(&state.store, id, message_id, pin.then_some(user.id)).await?;
        if pin {
            let system_id = post_system(&state, id, user.id, &format!("{} pinned a message", user.name())).await?;
            extra = format!(r#"<div hx-swap-oob="live:#messages">{}</div>"#, render_message(&state, &access, system_id, &Clock::at_now(&user.zone), true).await?);
        }
    }
    answer(&state, &access, &headers, message_id, &extra, &Clock::at_now(&user.zone)).await
}

pub async fn pin(state: State<AppState>, user: CurrentUser, headers: HeaderMap, Path((id, message_id)): Path<(i64, i64)>) -> AppResult<Response> {
    set_pin(state.0, user, headers, id, message_id, true).await
}

pub async fn unpin(state: State<AppState>, user: CurrentUser, headers: HeaderMap, Path((id, message_id)): Path<(i64, i64)>) -> AppResult<Response> {
    set_pin(state.0, user, headers, id, message_id, false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates() {
        assert_eq!(mention_candidates("hi @Alice and @bob. and a@b and @x"), vec!["alice", "bob", "b"].into_iter().filter(|n| n.len() >= 2).map(String::from).collect::<Vec<_>>());
        assert_eq!(parse_client_id("abc-123"), Some("abc-123"));
        assert_eq!(parse_client_id("<script>"), None);
        assert_eq!(parse_client_id(""), None);
    }
}
