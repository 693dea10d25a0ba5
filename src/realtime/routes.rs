//! The realtime routes: the event stream, typing pings, "I have read up to here" from
//! a live page, and the status a user shows.

use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::accounts::CurrentUser;
use crate::conversations::access::require;
use crate::conversations::store as conversation_store;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::web::Form;
use crate::web::ratelimit::Rule;
use crate::accounts::throttle::{Class, limited};
use crate::web::layout::Page;

use super::{presence, stream};

/// Typing has its own quiet limit below; the event stream a cap on streams per user.
pub fn routes(state: &AppState) -> Router<AppState> {
    let write = |route| limited(state, Class::Write, route);
    Router::new()
        .route("/events", get(stream::events))
        .route("/c/{id}/typing", post(typing))
        .route("/c/{id}/read", limited(state, Class::Read, post(read)))
        .route("/settings/status", get(status_page).merge(write(post(set_status))))
}

/// "I am typing" (app.js sends it at most every few seconds while keys are pressed).
async fn typing(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>) -> AppResult<StatusCode> {
    // A ping keeps the indicator up for seconds, so pings beyond a couple every three
    // seconds (a script, not a person) are accepted and ignored.
    let key = format!("typing:{}:{id}", user.id);
    if state.limiter.hit(&key, Rule::new(2, std::time::Duration::from_secs(3))).await.is_err() {
        return Ok(StatusCode::NO_CONTENT);
    }
    require(&state.store, user.id, id).await?;
    state.realtime.typing_ping(id, user.id, user.name()).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct ReadInput {
    #[serde(default)]
    up_to: String,
    /// Set by the page's own "Mark as read" button (no JavaScript): go back to it.
    #[serde(default)]
    back: String,
}

/// A live page saw messages up to `up_to` while visible: move the read position,
/// which clears the badges on the user's other tabs and shows "Seen" to others.
async fn read(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>, Form(input): Form<ReadInput>) -> AppResult<Response> {
    let access = require(&state.store, user.id, id).await?;
    let up_to: i64 = input.up_to.trim().parse().map_err(|_| AppError::Unprocessable("Which message was read?".into()))?;
    // Never past the newest message: a forged number can't mark the future read.
    let up_to = up_to.min(access.conversation.last_message_id);
    if up_to > access.last_read_id {
        conversation_store::mark_read(&state.store, id, user.id, up_to).await?;
    }
    if !input.back.is_empty() {
        return Ok(Redirect::to(&format!("/c/{id}")).into_response());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(askama::Template, WebTemplate)]
#[template(path = "accounts/status.html")]
struct StatusPage {
    page: Page,
    current: String,
    saved: bool,
}

#[derive(Deserialize)]
struct SavedQuery {
    saved: Option<String>,
}

async fn status_page(State(state): State<AppState>, user: CurrentUser, Query(query): Query<SavedQuery>) -> AppResult<StatusPage> {
    let (current, _) = presence::status_of(&state.store, user.id).await?;
    Ok(StatusPage { page: Page::new("Status", Some(&user)), current, saved: query.saved.is_some() })
}

#[derive(Deserialize)]
struct StatusInput {
    #[serde(default)]
    status: String,
}

async fn set_status(State(state): State<AppState>, user: CurrentUser, Form(input): Form<StatusInput>) -> AppResult<Redirect> {
    let status = presence::parse_status(&input.status).ok_or_else(|| AppError::Unprocessable("Choose one of the statuses.".into()))?;
    presence::set_status(&state.store, user.id, status).await?;
    state.realtime.announce_presence(&state.store, user.id, true).await;
    Ok(Redirect::to("/settings/status?saved=1"))
}
