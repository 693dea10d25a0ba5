//! Conversations: direct messages and groups (and, later, server channels), their
//! members, and the messages in them with replies, reactions, pins, reads and search;
//! message requests from outside a person's circle.

pub mod access;
mod groups;
pub mod markdown;
pub mod message_store;
mod messages;
pub mod model;
mod pages;
mod people;
pub mod reactions;
pub mod request_store;
mod requests;
pub mod rendered;
pub mod search;
pub mod store;
pub mod timeline;
pub mod views;
pub mod writer;

pub use messages::post_system;
pub use pages::conversation_title;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::state::AppState;
use crate::accounts::throttle::{Class, limited};

/// Every write and every search spends from a per-user budget (`accounts::throttle`);
/// sends are limited in `messages::send`, which keeps the draft on the page.
pub fn routes(state: &AppState) -> Router<AppState> {
    let (write, create, search) = (
        |route| limited(state, Class::Write, route),
        |route| limited(state, Class::Create, route),
        |route| limited(state, Class::Search, route),
    );
    Router::new()
        .route("/people", search(get(people::find)))
        .route("/search", search(get(search::page)))
        .route("/u/{username}", get(people::profile))
        .route("/u/{username}/message", create(post(people::open_dm)))
        .route("/requests", get(requests::list))
        .route("/requests/{id}", get(requests::show))
        .route("/requests/{id}/accept", write(post(requests::accept)))
        .route("/requests/{id}/decline", write(post(requests::decline)))
        .route("/groups/new", get(groups::new_group_page))
        .route("/groups", create(post(groups::create_group)))
        .route("/c/{id}", get(pages::show))
        .route("/c/{id}/history", get(pages::history))
        .route("/c/{id}/pins", get(pages::pins))
        // Files come with messages: `send` enforces its own caps (files::upload).
        .route("/c/{id}/messages", post(messages::send).layer(DefaultBodyLimit::disable()))
        .route("/c/{id}/m/{message}", get(pages::permalink))
        .route("/c/{id}/m/{message}/view", get(pages::message_fragment))
        .route("/c/{id}/m/{message}/edit", get(messages::edit_form).merge(write(post(messages::edit))))
        .route("/c/{id}/m/{message}/delete", write(post(messages::delete)))
        .route("/c/{id}/m/{message}/react", get(messages::react_picker).merge(write(post(messages::react))))
        .route("/c/{id}/m/{message}/pin", write(post(messages::pin)))
        .route("/c/{id}/m/{message}/unpin", write(post(messages::unpin)))
        .route("/c/{id}/members", get(groups::members).merge(create(post(groups::add))))
        .route("/c/{id}/rename", write(post(groups::rename)))
        .route("/c/{id}/members/{user}/remove", write(post(groups::remove)))
        .route("/c/{id}/members/{user}/promote", write(post(groups::promote)))
        .route("/c/{id}/members/{user}/demote", write(post(groups::demote)))
        .route("/c/{id}/leave", write(post(groups::leave)))
}
