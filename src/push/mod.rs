//! Web Push (RFC 8030/8291/8292): browsers' subscriptions, the server's VAPID key, and
//! the background sender that notifies people of DMs, mentions and replies while their
//! tab is closed. No third party in between: pushes go straight to the browser vendor's
//! push service named in the subscription.

pub mod endpoint;
mod focus;
pub mod keys;
pub mod sender;
pub mod store;
mod subscriptions;
pub mod vapid;

use axum::Router;
use axum::routing::{get, post};

use crate::accounts::throttle::{Class, limited};
use crate::state::AppState;

pub use sender::{Pusher, Ring, Sent};

pub fn routes(state: &AppState) -> Router<AppState> {
    let (write, read) = (|route| limited(state, Class::Write, route), |route| limited(state, Class::Read, route));
    Router::new()
        .route("/push/subscriptions", write(post(subscriptions::subscribe).delete(subscriptions::unsubscribe)))
        .route("/push/subscriptions/{id}/delete", write(post(subscriptions::remove)))
        .route("/push/focus", read(post(focus::report)))
        .route("/settings/notifications", get(subscriptions::settings))
}
