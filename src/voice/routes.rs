//! Voice routes: the page of a voice channel, joining with the browser's SDP offer
//! (JSON in, the SFU's answer out; the only JSON this app speaks, as WebRTC needs
//! JavaScript anyway), leaving, self mute/deafen, and camera/screen on or off (what the
//! others' pages show; the browser itself starts and stops sending).

use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use str0m::change::{SdpAnswer, SdpOffer};

use crate::accounts::CurrentUser;
use crate::accounts::throttle::{Class, limited};
use crate::conversations::access;
use crate::error::{AppError, AppResult};
use crate::servers::permissions::Permissions;
use crate::state::AppState;
use crate::web::shell::Verbatim;

use super::{JoinError, cluster, moderation, page};

pub fn routes(state: &AppState) -> Router<AppState> {
    let write = |route| limited(state, Class::Write, route);
    Router::new()
        .route("/v/{id}", get(page::show))
        .route("/v/{id}/rtc", write(post(connect)))
        .route("/v/{id}/leave", write(post(leave)))
        .route("/v/{id}/mute", write(post(mute)))
        .route("/v/{id}/deafen", write(post(deafen)))
        .route("/v/{id}/camera", write(post(camera)))
        .route("/v/{id}/screen", write(post(screen)))
        .route("/v/{id}/members/{user}/mute", write(post(moderation::mute)))
        .route("/v/{id}/members/{user}/disconnect", write(post(moderation::disconnect)))
        .route("/v/{id}/members/{user}/move", write(post(moderation::move_to)))
}

/// A voice channel as one member may use it: 404 unless they can see it.
pub struct Room {
    pub id: i64,
    pub name: String,
    pub server_id: i64,
    pub can_connect: bool,
    pub can_speak: bool,
    /// MUTE_MEMBERS: server mute, disconnect and move others here.
    pub can_moderate: bool,
    pub owner_id: i64,
}

pub async fn room(state: &AppState, user: &CurrentUser, id: i64) -> AppResult<Room> {
    let access = access::require_voice(&state.store, user.id, id).await?;
    let rights = access.channel.as_ref().ok_or(AppError::NotFound)?;
    Ok(Room {
        id,
        name: access.conversation.name.clone(),
        server_id: rights.server_id,
        can_connect: rights.has(Permissions::CONNECT),
        // A timed-out member keeps only what reading needs, so SPEAK is gone too.
        can_speak: rights.has(Permissions::SPEAK) && rights.timed_out_until.is_none(),
        can_moderate: rights.has(Permissions::MUTE_MEMBERS),
        owner_id: rights.server.shape.server.owner_id,
    })
}

#[derive(Serialize)]
struct Connected {
    peer: u64,
    answer: SdpAnswer,
    muted_by_server: bool,
}

async fn connect(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>, Json(offer): Json<SdpOffer>) -> AppResult<Response> {
    let room = room(&state, &user, id).await?;
    if !room.can_connect {
        return Err(AppError::Forbidden("You do not have permission to join this voice channel."));
    }
    let joined = cluster::join(&state.voice, (room.id, &room.name), user.id, user.name(), room.can_speak, offer).await;
    Ok(connected(joined, !room.can_speak))
}

/// What voice.js reads back from a join (a voice channel's or a call's): the SFU's
/// answer, or why not, as plain text for voice.js to show (not the shell's generic
/// error page).
pub fn connected(joined: Result<(u64, SdpAnswer), JoinError>, muted_by_server: bool) -> Response {
    match joined {
        Ok((peer, answer)) => Json(Connected { peer, answer, muted_by_server }).into_response(),
        Err(JoinError::Unavailable(why)) => (StatusCode::SERVICE_UNAVAILABLE, Extension(Verbatim), why).into_response(),
        Err(JoinError::BadOffer(why)) => (StatusCode::UNPROCESSABLE_ENTITY, Extension(Verbatim), format!("The browser's offer could not be used: {why}")).into_response(),
    }
}

async fn leave(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>) -> AppResult<Response> {
    room(&state, &user, id).await?;
    cluster::leave(&state.voice, user.id, None).await;
    Ok(Redirect::to(&format!("/v/{id}")).into_response())
}

#[derive(Deserialize)]
pub struct Switch {
    #[serde(default)]
    on: String,
}

impl Switch {
    pub fn on(&self) -> bool {
        matches!(self.on.as_str(), "true" | "on" | "1")
    }
}

async fn mute(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>, Form(input): Form<Switch>) -> AppResult<Response> {
    let room = room(&state, &user, id).await?;
    cluster::set_self(&state.voice, room.id, user.id, Some(input.on()), None).await;
    Ok(Redirect::to(&format!("/v/{id}")).into_response())
}

async fn deafen(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>, Form(input): Form<Switch>) -> AppResult<Response> {
    let room = room(&state, &user, id).await?;
    cluster::set_self(&state.voice, room.id, user.id, None, Some(input.on())).await;
    Ok(Redirect::to(&format!("/v/{id}")).into_response())
}

async fn camera(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>, Form(input): Form<Switch>) -> AppResult<Response> {
    let room = room(&state, &user, id).await?;
    cluster::set_video(&state.voice, room.id, user.id, Some(input.on()), None).await;
    Ok(Redirect::to(&format!("/v/{id}")).into_response())
}

async fn screen(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>, Form(input): Form<Switch>) -> AppResult<Response> {
    let room = room(&state, &user, id).await?;
    cluster::set_video(&state.voice, room.id, user.id, None, Some(input.on())).await;
    Ok(Redirect::to(&format!("/v/{id}")).into_response())
}
