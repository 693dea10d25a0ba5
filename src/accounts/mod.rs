//! Accounts: registration, sign-in and sign-out, the signed-in devices list,
//! password changes, profiles, privacy and blocking.

mod auth;
pub mod avatar;
mod current;
pub mod device_cache;
mod devices;
pub mod model;
pub mod password;
pub mod presence;
pub mod privacy;
pub mod profile;
mod profile_settings;
pub mod session;
mod session_cache;
mod session_store;
mod settings;
mod time_zone;
pub mod throttle;
pub mod store;

use axum::Router;
use axum::routing::{get, post};

pub use current::{CurrentUser, MaybeUser};

use crate::state::AppState;
use throttle::{Class, limited};

/// Sign-in and registration have their own limits (per address and account);
/// changes to a signed-in account spend from the user's write budget.
pub fn routes(state: &AppState) -> Router<AppState> {
    let write = |route| limited(state, Class::Write, route);
    Router::new()
        .route("/register", get(auth::register_page).post(auth::register))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/settings/sessions", get(devices::list))
        .route("/settings/sessions/{id}/revoke", write(post(devices::revoke)))
        .route("/settings/sessions/revoke-others", write(post(devices::revoke_others)))
        .route("/settings/password", get(settings::password_page).merge(write(post(settings::change_password))))
        .route("/settings/profile", get(profile_settings::show_profile).merge(write(post(profile_settings::save_profile))))
        .route("/settings/profile/avatar", write(post(avatar::upload)).layer(axum::extract::DefaultBodyLimit::disable()))
        .route("/settings/profile/avatar/remove", write(post(avatar::remove)))
        .route("/avatars/{key}", get(avatar::serve))
        .route("/settings/profile/status", write(post(profile_settings::save_status)))
        .route("/settings/profile/time-zone", write(post(time_zone::save)))
        .route("/settings/time-zone/detected", write(post(time_zone::detected)))
        .route("/settings/privacy", get(profile_settings::show_privacy).merge(write(post(profile_settings::save_privacy))))
        .route("/u/{username}/block", write(post(profile_settings::block)))
        .route("/u/{username}/unblock", write(post(profile_settings::unblock)))
}
