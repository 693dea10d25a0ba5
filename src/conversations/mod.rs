//! Conversations: direct messages and groups (and, later, server channels), their
//! members, and the messages in them with replies, reactions, pins, reads and search.

pub mod access;
mod groups;
pub mod markdown;
pub mod message_store;
mod messages;
pub mod model;
mod pages;
mod people;
pub mod reactions;
pub mod rendered;
pub mod search;
pub mod store;
pub mod views;
pub mod writer;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/people", get(people::find))
        .route("/search", get(search::page))
        .route("/u/{username}", get(people::profile))
        .route("/u/{username}/message", post(people::open_dm))
        .route("/groups/new", get(groups::new_group_page))
        .route("/groups", post(groups::create_group))
        .route("/c/{id}", get(pages::show))
        .route("/c/{id}/history", get(pages::history))
        .route("/c/{id}/pins", get(pages::pins))
        .route("/c/{id}/messages", post(messages::send))
        .route("/c/{id}/m/{message}", get(pages::permalink))
        .route("/c/{id}/m/{message}/view", get(pages::message_fragment))
        .route("/c/{id}/m/{message}/edit", get(messages::edit_form).post(messages::edit))
        .route("/c/{id}/m/{message}/delete", post(messages::delete))
        .route("/c/{id}/m/{message}/react", post(messages::react))
        .route("/c/{id}/m/{message}/pin", post(messages::pin))
        .route("/c/{id}/m/{message}/unpin", post(messages::unpin))
        .route("/c/{id}/members", get(groups::members).post(groups::add))
        .route("/c/{id}/rename", post(groups::rename))
        .route("/c/{id}/members/{user}/remove", post(groups::remove))
        .route("/c/{id}/members/{user}/promote", post(groups::promote))
        .route("/c/{id}/members/{user}/demote", post(groups::demote))
        .route("/c/{id}/leave", post(groups::leave))
}
