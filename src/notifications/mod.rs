//! Notification levels and mutes per conversation (DM, group, channel) and per server:
//! the "Notifications" form on a conversation's page and on a server's page. They
//! decide who gets a Web Push (`push::sender`) and mark muted conversations in the
//! sidebar.

mod handlers;
pub mod level;
pub mod store;

use axum::Router;
use axum::routing::post;

use crate::accounts::throttle::{Class, limited};
use crate::state::AppState;

pub use handlers::{NotifyForm, form_for_conversation, form_for_server};

pub fn routes(state: &AppState) -> Router<AppState> {
    let write = |route| limited(state, Class::Write, route);
    Router::new()
        .route("/c/{id}/notifications", write(post(handlers::save_conversation)))
        .route("/s/{id}/notifications", write(post(handlers::save_server)))
}
