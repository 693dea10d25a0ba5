//! "I am looking at this conversation": the page (app.js) posts while its tab is
//! visible, every `HEARTBEAT` or so, and once more when it is hidden or closed. No push
//! goes out for a conversation its reader is looking at.
//!
//! Why a database row with an expiry: every instance decides pushes for the messages it
//! writes, so the record must be visible to all of them; a row refreshed by a heartbeat
//! needs nothing from the live stream's connection, and a tab that vanishes without
//! saying so (crash, lost network) stops counting by itself once the row expires. Only
//! people with a push subscription are recorded (answer 204); others are told to stop
//! (answer 200 `off`), so the heartbeat costs nothing for people without push.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::accounts::CurrentUser;
use crate::conversations::access::require;
use crate::error::AppResult;
use crate::state::AppState;
use crate::store::now_ms;
use crate::web::Form;

use super::store;

/// A record lasts this long without a heartbeat (app.js beats every 25 s).
const LIFETIME_MS: i64 = 60_000;

#[derive(Deserialize, Default)]
pub struct FocusInput {
    #[serde(default)]
    conversation_id: i64,
    /// "1" while visible, anything else when hidden or leaving.
    #[serde(default)]
    visible: String,
}

pub async fn report(State(state): State<AppState>, user: CurrentUser, Form(input): Form<FocusInput>) -> AppResult<Response> {
    // Someone who is not a member gets 404, as for the conversation itself.
    let access = require(&state.store, user.id, input.conversation_id).await?;
    let id = access.conversation.id;
    if input.visible != "1" {
        store::unfocus(&state.store, user.id, id).await?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    if !store::user_has_any(&state.store, user.id).await? {
        return Ok((StatusCode::OK, "off").into_response());
    }
    store::focus(&state.store, user.id, id, now_ms() + LIFETIME_MS).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
