//! Voice moderation: whoever holds MUTE_MEMBERS in a voice channel may mute someone in
//! it (until a moderator unmutes them), disconnect them, or move them to another voice
//! channel they may join. Nobody acts on the server's owner. Each action goes to the
//! server's audit log.

use axum::extract::{Form, Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::accounts::CurrentUser;
use crate::conversations::access;
use crate::error::{AppError, AppResult};
use crate::servers::audit::{self, Action, Entry};
use crate::servers::permissions::Permissions;
use crate::state::AppState;

use super::{Moderation, cluster};
use super::routes::{Room, Switch, room};

/// The room, if `user` may moderate `target` in it, and the target's name there.
async fn moderated(state: &AppState, user: &CurrentUser, id: i64, target: i64) -> AppResult<(Room, String)> {
    let room = room(state, user, id).await?;
    if !room.can_moderate {
        return Err(AppError::Forbidden("You do not have permission to moderate voice in this channel."));
    }
    if target == room.owner_id && user.id != target {
        return Err(AppError::Forbidden("Nobody moderates the server's owner."));
    }
    let name = state.voice.members(id).into_iter().find(|m| m.user_id == target).map(|m| m.name).ok_or(AppError::NotFound)?;
    Ok((room, name))
}

fn back(id: i64) -> Response {
    Redirect::to(&format!("/v/{id}")).into_response()
}

pub async fn mute(State(state): State<AppState>, user: CurrentUser, Path((id, target)): Path<(i64, i64)>, Form(input): Form<Switch>) -> AppResult<Response> {
    let (room, name) = moderated(&state, &user, id, target).await?;
    if cluster::moderate(&state.voice, id, target, Moderation::Mute(input.on())).await {
        let (before, after) = if input.on() { ("speaking", "muted") } else { ("muted", "speaking") };
        let entry = Entry::new(room.server_id, user.id, Action::VoiceMute).target("member", target, &name).change(before, after);
        audit::record(&state.store, &entry).await?;
    }
    Ok(back(id))
}

pub async fn disconnect(State(state): State<AppState>, user: CurrentUser, Path((id, target)): Path<(i64, i64)>) -> AppResult<Response> {
    let (room, name) = moderated(&state, &user, id, target).await?;
    if cluster::moderate(&state.voice, id, target, Moderation::Disconnect).await {
        let entry = Entry::new(room.server_id, user.id, Action::VoiceDisconnect).target("member", target, &name).change(room.name.as_str(), "");
        audit::record(&state.store, &entry).await?;
    }
    Ok(back(id))
}

#[derive(Deserialize)]
pub struct MoveInput {
    #[serde(default)]
    to: String,
}

pub async fn move_to(State(state): State<AppState>, user: CurrentUser, Path((id, target)): Path<(i64, i64)>, Form(input): Form<MoveInput>) -> AppResult<Response> {
    let (room, name) = moderated(&state, &user, id, target).await?;
    let to: i64 = input.to.trim().parse().map_err(|_| AppError::Unprocessable("Choose the voice channel to move them to.".into()))?;
    // The moderator must see the destination, and the person must be allowed to join it.
    let destination = super::routes::room(&state, &user, to).await?;
    if destination.server_id != room.server_id {
        return Err(AppError::NotFound);
    }
    let theirs = access::require_voice(&state.store, target, to).await.ok().and_then(|a| a.channel).is_some_and(|c| c.has(Permissions::CONNECT));
    if !theirs {
        return Err(AppError::Unprocessable(format!("{name} may not join {}.", destination.name)));
    }
    // Their connection stays with the SFU of the room they are in.
    if !cluster::movable(&state.voice, id, to).await {
        return Err(AppError::Unprocessable(format!("{name} cannot be moved to {} now: it runs on another server instance. They can join it themselves.", destination.name)));
    }
    if cluster::moderate(&state.voice, id, target, Moderation::Move { to, to_name: &destination.name }).await {
        let entry = Entry::new(room.server_id, user.id, Action::VoiceMove).target("member", target, &name).change(room.name.as_str(), destination.name.as_str());
        audit::record(&state.store, &entry).await?;
    }
    Ok(back(to))
}
