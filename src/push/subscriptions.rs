//! This device's push subscription: the browser's `PushSubscription` JSON posted by
//! app.js, removed by `DELETE` (or a plain form on Settings → Notifications), and the
//! settings page that lists it with its switch.

use askama::Template;
use askama_web::WebTemplate;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::accounts::CurrentUser;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::web::layout::Page;
use crate::web::time::format_time;

use super::{endpoint, keys, store};

/// `PushSubscription.toJSON()`; `expirationTime` and anything else is ignored.
#[derive(Deserialize)]
struct SubscriptionJson {
    endpoint: String,
    keys: KeysJson,
}

#[derive(Deserialize)]
struct KeysJson {
    p256dh: String,
    auth: String,
}

#[derive(Deserialize)]
struct EndpointJson {
    endpoint: String,
}

/// JSON bodies are read by hand so a malformed one gets a sentence, not a serde dump.
fn read_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> AppResult<T> {
    serde_json::from_slice(body).map_err(|_| AppError::Unprocessable("Send the browser's PushSubscription as JSON: {\"endpoint\", \"keys\": {\"p256dh\", \"auth\"}}.".into()))
}

pub async fn subscribe(State(state): State<AppState>, user: CurrentUser, body: Bytes) -> AppResult<Response> {
    let input: SubscriptionJson = read_json(&body)?;
    endpoint::parse(&input.endpoint, state.config.push_allow_loopback).map_err(|why| AppError::Unprocessable(why.into()))?;
    keys::parse(&input.keys.p256dh, &input.keys.auth).map_err(AppError::Unprocessable)?;
    store::save(&state.store, user.id, user.device_id, &input.endpoint, &input.keys.p256dh, &input.keys.auth).await?;
    Ok(StatusCode::CREATED.into_response())
}

pub async fn unsubscribe(State(state): State<AppState>, user: CurrentUser, body: Bytes) -> AppResult<StatusCode> {
    let input: EndpointJson = read_json(&body)?;
    match store::remove(&state.store, user.id, &input.endpoint).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(AppError::NotFound),
    }
}

/// The plain-form "Turn off" on the settings page.
pub async fn remove(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>) -> AppResult<Redirect> {
    match store::remove_by_id(&state.store, user.id, id).await? {
        true => Ok(Redirect::to("/settings/notifications")),
        false => Err(AppError::NotFound),
    }
}

pub struct SubscriptionView {
    pub id: i64,
    /// The push service's host: which service delivers to this browser.
    pub service: String,
    pub since: String,
    pub endpoint: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "push/settings.html")]
pub struct SettingsPage {
    page: Page,
    subscriptions: Vec<SubscriptionView>,
    vapid_key: String,
}

pub async fn settings(State(state): State<AppState>, user: CurrentUser) -> AppResult<SettingsPage> {
    let subscriptions = store::for_device(&state.store, user.device_id)
        .await?
        .into_iter()
        .map(|s| SubscriptionView {
            id: s.id,
            service: reqwest::Url::parse(&s.endpoint).map(|u| endpoint::origin(&u)).unwrap_or_default(),
            since: format_time(s.created_at),
            endpoint: s.endpoint,
        })
        .collect();
    Ok(SettingsPage { page: Page::new("Notifications", Some(&user)), subscriptions, vapid_key: state.push.vapid.public_key().to_string() })
}
