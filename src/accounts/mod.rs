//! Accounts: registration, sign-in and sign-out, the signed-in devices list, and
//! password changes.

mod auth;
mod current;
pub mod device_cache;
mod devices;
pub mod model;
pub mod password;
pub mod session;
mod settings;
pub mod store;

use axum::Router;
use axum::routing::{get, post};

pub use current::{CurrentUser, MaybeUser};

use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/register", get(auth::register_page).post(auth::register))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/settings/sessions", get(devices::list))
        .route("/settings/sessions/{id}/revoke", post(devices::revoke))
        .route("/settings/sessions/revoke-others", post(devices::revoke_others))
        .route("/settings/password", get(settings::password_page).post(settings::change_password))
}
