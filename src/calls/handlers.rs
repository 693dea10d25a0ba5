//! Call routes, all under the conversation (`/c/{id}/call…`) and all 404 to anyone who
//! is not a member of that DM or group. Starting, declining and hanging up are plain
//! forms; joining sends the browser's SDP offer (JSON), as in a voice channel.

use axum::Json;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use str0m::change::SdpOffer;

use crate::accounts::CurrentUser;
use crate::conversations::access;
use crate::conversations::model::Access;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::calls;
use crate::voice::{Controls, Switch, cluster};
use crate::web::assets;
use crate::web::layout::Page;
use crate::web::shell::wants_fragment;

use super::lifecycle;
use super::views::{CallPage, state_text};

/// What the roster calls a call's room ("In the call"): the same words for everyone,
/// as a DM's title differs on each side.
const ROOM_NAME: &str = "the call";

/// The DM or group, if the user is in it: calls happen only there (a channel: 404).
async fn conversation(state: &AppState, user: &CurrentUser, id: i64) -> AppResult<Access> {
    let access = access::require(&state.store, user.id, id).await?;
    if access.is_channel() {
        return Err(AppError::NotFound);
    }
    Ok(access)
}

/// Whom one may not call: a DM partner who blocked you (or whom you blocked), told as
/// sending is; and nobody, in a DM with yourself.
async fn may_call(state: &AppState, access: &Access) -> AppResult<()> {
    if access.is_dm() {
        if let Some(why) = crate::accounts::privacy::dm_send_refusal(&state.store, access.conversation.id, access.user_id).await? {
            return Err(AppError::Forbidden(why));
        }
        let members = crate::conversations::store::members(&state.store, access.conversation.id).await?;
        if members.iter().all(|m| m.user_id == access.user_id) {
            return Err(AppError::Unprocessable("There is nobody else here to call.".into()));
        }
    }
    Ok(())
}

/// The title the viewer sees for the conversation (the other person, in a DM).
async fn title(state: &AppState, access: &Access) -> AppResult<String> {
    let members = crate::conversations::store::members(&state.store, access.conversation.id).await?;
    Ok(crate::conversations::conversation_title(access, &members))
}

#[derive(Deserialize)]
pub struct StartInput {
    #[serde(default)]
    video: String,
}

pub async fn start(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>, Form(input): Form<StartInput>) -> AppResult<Response> {
    let access = conversation(&state, &user, id).await?;
    may_call(&state, &access).await?;
    let video = matches!(input.video.as_str(), "true" | "on" | "1");
    lifecycle::start(&state, &access, (user.id, user.name()), video).await?;
    Ok(Redirect::to(&format!("/c/{id}/call?join=1")).into_response())
}

#[derive(Deserialize)]
pub struct PageQuery {
    #[serde(default)]
    join: Option<String>,
}

pub async fn show(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>, Query(query): Query<PageQuery>) -> AppResult<CallPage> {
    let access = conversation(&state, &user, id).await?;
    let call = calls::ongoing(&state.store, id).await?;
    let title = title(&state, &access).await?;
    let text = match &call {
        Some(call) => state_text(call, &calls::caller(&state.store, call).await?),
        None => "No call right now.".to_string(),
    };
    let mut page = Page::new(format!("Call · {title}"), Some(&user));
    page.live_since = Some(crate::store::log::newest(&state.store).await?);
    page.ringing = calls::ringing(&state.store, user.id, state.config.call_ring_ms()).await?;
    let autojoin = query.join.is_some() && call.is_some() && may_call(&state, &access).await.is_ok();
    Ok(CallPage {
        page,
        sidebar: crate::conversations::views::sidebar_for(&state, user.id, Some(id)).await?,
        conversation_id: id,
        ended: false,
        text,
        room: id,
        room_name: ROOM_NAME.to_string(),
        members: state.voice.members(id),
        controls: Controls { base: format!("/c/{id}/call"), ice: state.voice.ice_servers(user.id), join: "Join call", leave: "Hang up", autojoin },
        title,
        call,
        voice_js: assets::url("voice.js"),
        call_js: assets::url("call.js"),
    })
}

pub async fn connect(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>, Json(offer): Json<SdpOffer>) -> AppResult<Response> {
    let access = conversation(&state, &user, id).await?;
    may_call(&state, &access).await?;
    let call = calls::ongoing(&state.store, id).await?.ok_or_else(|| AppError::Unprocessable("This call has ended.".into()))?;
    let joined = cluster::join(&state.voice, (id, ROOM_NAME), user.id, user.name(), true, offer).await;
    if joined.is_ok() {
        lifecycle::joined(&state, &call, user.id).await?;
    }
    Ok(crate::voice::connected(joined, false))
}

pub async fn leave(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>) -> AppResult<Response> {
    conversation(&state, &user, id).await?;
    cluster::leave(&state.voice, user.id, Some(id)).await;
    if let Some(call) = calls::ongoing(&state.store, id).await? {
        lifecycle::left(&state, call.id, user.id).await?;
    }
    Ok(Redirect::to(&format!("/c/{id}")).into_response())
}

/// Self mute, deafen, camera and screen share in the call, as the person sets them.
pub async fn switch(State(state): State<AppState>, user: CurrentUser, Path((id, what)): Path<(i64, String)>, Form(input): Form<Switch>) -> AppResult<Response> {
    conversation(&state, &user, id).await?;
    let on = Some(input.on());
    match what.as_str() {
        "mute" => cluster::set_self(&state.voice, id, user.id, on, None).await,
        "deafen" => cluster::set_self(&state.voice, id, user.id, None, on).await,
        "camera" => cluster::set_video(&state.voice, id, user.id, on, None).await,
        "screen" => cluster::set_video(&state.voice, id, user.id, None, on).await,
        _ => return Err(AppError::NotFound),
    };
    Ok(Redirect::to(&format!("/c/{id}/call")).into_response())
}

#[derive(Deserialize)]
pub struct DeclineInput {
    #[serde(default)]
    call: String,
}

/// Declines the call the banner was for (not a newer one started since).
pub async fn decline(State(state): State<AppState>, user: CurrentUser, headers: HeaderMap, Path(id): Path<i64>, Form(input): Form<DeclineInput>) -> AppResult<Response> {
    conversation(&state, &user, id).await?;
    let call_id: i64 = input.call.trim().parse().map_err(|_| AppError::Unprocessable("Which call? Decline it from its banner.".into()))?;
    let call = calls::by_id(&state.store, call_id).await?.filter(|c| c.conversation_id == id).ok_or(AppError::NotFound)?;
    if call.ended_at.is_none() && call.started_by != user.id {
        lifecycle::decline(&state, &call, user.id).await?;
    }
    if wants_fragment(&headers) {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Ok(Redirect::to(&format!("/c/{id}")).into_response())
}
