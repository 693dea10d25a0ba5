//! Calls in DMs and groups (Telegram-like): start a voice or video call from the
//! conversation, the others see it ring on whatever page they are on (and can accept
//! or decline, declining without JavaScript too), and the call leaves a line in the
//! conversation when it ends — its duration, or that it was missed.
//!
//! A call's room in the SFU (`voice`) is its conversation: the roster, mute and deafen
//! are voice's, and voice's recheck takes out whoever stops being a member. This
//! module owns the call itself (`store::calls` holds it, since every live page reads
//! what rings), its life (`lifecycle`), its routes (`handlers`) and looks (`views`).

mod handlers;
mod lifecycle;
mod views;

use axum::Router;
use axum::routing::{get, post};

use crate::accounts::throttle::{Class, limited};
use crate::state::AppState;

pub fn routes(state: &AppState) -> Router<AppState> {
    let write = |route| limited(state, Class::Write, route);
    Router::new()
        .route("/c/{id}/call", get(handlers::show).merge(write(post(handlers::start))))
        .route("/c/{id}/call/rtc", write(post(handlers::connect)))
        .route("/c/{id}/call/leave", write(post(handlers::leave)))
        // Mute, deafen, camera, screen.
        .route("/c/{id}/call/{switch}", write(post(handlers::switch)))
        .route("/c/{id}/call/decline", write(post(handlers::decline)))
}
