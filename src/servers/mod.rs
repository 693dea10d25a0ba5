//! Servers, Discord's half of Reale: a server has members, roles with a permission
//! bitfield, categories, text and voice channels (conversations, so messages work in
//! them unchanged), per-channel and per-category overrides, invites, moderation and an
//! audit log. `context` answers every "may this person…" through `permissions`;
//! `visibility` keeps channel membership equal to VIEW_CHANNEL.

pub mod audit;
mod audit_page;
pub mod channel_store;
mod channels;
pub mod context;
pub mod invite_store;
mod icon;
mod invites;
mod members;
pub mod mentions;
mod moderation;
pub mod moderation_store;
pub mod model;
pub mod nav;
pub mod override_store;
mod overrides;
mod pages;
pub mod permissions;
pub mod role_store;
mod roles;
pub mod store;
pub mod visibility;

use axum::Router;
use axum::routing::{get, post};

use crate::accounts::throttle::{Class, limited};
use crate::state::AppState;

pub fn routes(state: &AppState) -> Router<AppState> {
    let (write, create) = (|route| limited(state, Class::Write, route), |route| limited(state, Class::Create, route));
    Router::new()
        .route("/servers/new", get(pages::new_page))
        .route("/servers", create(post(pages::create)))
        .route("/s/{id}", get(pages::show))
        .route("/s/{id}/settings", get(pages::settings).merge(write(post(pages::update))))
        .route("/s/{id}/icon", write(post(icon::upload)).layer(axum::extract::DefaultBodyLimit::disable()))
        .route("/s/{id}/icon/remove", write(post(icon::remove)))
        .route("/s/{id}/delete", write(post(pages::delete)))
        .route("/s/{id}/transfer", write(post(pages::transfer)))
        .route("/s/{id}/leave", write(post(pages::leave)))
        .route("/s/{id}/channels", get(channels::show).merge(create(post(channels::create))))
        .route("/s/{id}/channels/{channel}", write(post(channels::update)))
        .route("/s/{id}/channels/{channel}/delete", write(post(channels::delete)))
        .route("/s/{id}/channels/{channel}/up", write(post(channels::up)))
        .route("/s/{id}/channels/{channel}/down", write(post(channels::down)))
        .route("/s/{id}/channels/{channel}/sync", write(post(channels::sync)))
        .route("/s/{id}/categories", create(post(channels::create_category)))
        .route("/s/{id}/categories/{category}/rename", write(post(channels::rename_category)))
        .route("/s/{id}/categories/{category}/delete", write(post(channels::delete_category)))
        .route("/s/{id}/categories/{category}/up", write(post(channels::category_up)))
        .route("/s/{id}/categories/{category}/down", write(post(channels::category_down)))
        .route("/s/{id}/invites", get(invites::show).merge(create(post(invites::create))))
        .route("/s/{id}/invites/{code}/revoke", write(post(invites::revoke)))
        .route("/s/{id}/roles", get(roles::show).merge(create(post(roles::create))))
        .route("/s/{id}/roles/{role}", get(roles::edit).merge(write(post(roles::update))))
        .route("/s/{id}/roles/{role}/delete", write(post(roles::delete)))
        .route("/s/{id}/roles/{role}/up", write(post(roles::up)))
        .route("/s/{id}/roles/{role}/down", write(post(roles::down)))
        .route("/s/{id}/members/{user}", get(members::show))
        .route("/s/{id}/members/{user}/roles", write(post(members::save)))
        .route("/s/{id}/permissions/{kind}/{target}", get(overrides::show).merge(write(post(overrides::add))))
        .route("/s/{id}/permissions/{kind}/{target}/{subject_kind}/{subject}", write(post(overrides::save)))
        .route("/s/{id}/permissions/{kind}/{target}/{subject_kind}/{subject}/delete", write(post(overrides::remove)))
        .route("/s/{id}/members/{user}/moderate", get(moderation::show))
        .route("/s/{id}/members/{user}/kick", write(post(moderation::kick)))
        .route("/s/{id}/members/{user}/ban", write(post(moderation::ban)))
        .route("/s/{id}/members/{user}/timeout", write(post(moderation::timeout)))
        .route("/s/{id}/members/{user}/timeout/remove", write(post(moderation::remove_timeout)))
        .route("/s/{id}/bans", get(moderation::bans))
        .route("/s/{id}/bans/{user}/remove", write(post(moderation::unban)))
        .route("/s/{id}/audit", get(audit_page::show))
        .route("/i/{code}", get(invites::landing).merge(write(post(invites::accept))))
}
