//! The "Notifications" form: shown on a conversation's page (DM, group, channel) and on
//! a server's page, posted as a plain form (redirect back) or with htmx (the form again,
//! saying it was saved).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::accounts::CurrentUser;
use crate::conversations::access::require;
use crate::conversations::model::Access;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::now_ms;
use crate::web::Form;
use crate::web::shell::wants_fragment;
use crate::web::time::format_time;

use super::level::{FOREVER, Level, MUTE_FOR, Setting, effective};
use super::store::{self, Scope};

/// The form as its viewer sees it.
#[derive(Template)]
#[template(path = "notifications/_form.html")]
pub struct NotifyForm {
    pub action: String,
    /// What "as the default" means here (channels: the server's level); None where the
    /// default is simply All messages and so is not offered separately.
    pub default_label: Option<String>,
    /// The chosen level's form value: "default" or a level.
    pub level: &'static str,
    /// "Muted until Mon 7 Dec 14:05" / "Muted until you turn it back on".
    pub muted: Option<String>,
    pub saved: bool,
    pub error: Option<String>,
}

impl NotifyForm {
    fn new(action: String, own: Setting, default_label: Option<String>) -> NotifyForm {
        let level = match own.level {
            Some(level) => level.as_str(),
            None if default_label.is_some() => "default",
            None => Level::All.as_str(),
        };
        let muted = own.muted_until.filter(|&until| until > now_ms()).map(|until| match until {
            FOREVER => "Muted until you turn it back on".to_string(),
            until => format!("Muted until {}", format_time(until)),
        });
        NotifyForm { action, default_label, level, muted, saved: false, error: None }
    }
}

/// The form for a conversation the viewer is in.
pub async fn form_for_conversation(state: &AppState, access: &Access) -> AppResult<NotifyForm> {
    let id = access.conversation.id;
    let own = access.notify;
    let default_label = match &access.channel {
        Some(rights) => {
            let server = store::get(&state.store, access.user_id, Scope::Server(rights.server_id)).await?;
            let level = effective(Setting::default(), Some(server), now_ms()).level;
            Some(format!("As the server ({})", level.label()))
        }
        None => None,
    };
    Ok(NotifyForm::new(format!("/c/{id}/notifications"), own, default_label))
}

pub async fn form_for_server(state: &AppState, user_id: i64, server_id: i64) -> AppResult<NotifyForm> {
    let own = store::get(&state.store, user_id, Scope::Server(server_id)).await?;
    Ok(NotifyForm::new(format!("/s/{server_id}/notifications"), own, None))
}

#[derive(Deserialize, Default)]
pub struct NotifyInput {
    #[serde(default)]
    level: String,
    /// "" keeps the mute as it is, "off" lifts it, else one of `MUTE_FOR`.
    #[serde(default)]
    mute: String,
}

/// The new setting from the form, or why it cannot be read.
fn apply(current: Setting, input: &NotifyInput, has_default: bool) -> Result<Setting, String> {
    let level = match input.level.as_str() {
        "default" if has_default => None,
        text => Some(Level::parse(text).ok_or_else(|| format!("Choose what to be notified about (got \u{201c}{text}\u{201d}).").to_string())?),
    };
    let now = now_ms();
    let muted_until = match input.mute.as_str() {
        "" => current.muted_until.filter(|&until| until > now),
        "off" => None,
        choice => match MUTE_FOR.iter().find(|(value, _, _)| *value == choice) {
            Some((_, _, Some(ms))) => Some(now + ms),
            Some((_, _, None)) => Some(FOREVER),
            None => return Err(format!("Choose how long to mute for (got \u{201c}{choice}\u{201d}).")),
        },
    };
    Ok(Setting { level, muted_until })
}

pub async fn save_conversation(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(input): Form<NotifyInput>,
) -> AppResult<Response> {
    let access = require(&state.store, user.id, id).await?;
    let error = store_choice(&state, user.id, Scope::Conversation(id), &input, access.is_channel()).await?;
    // Read again: the form shows what is stored now.
    let access = require(&state.store, user.id, id).await?;
    answer(&headers, form_for_conversation(&state, &access).await?, error, &format!("/c/{id}"))
}

pub async fn save_server(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(input): Form<NotifyInput>,
) -> AppResult<Response> {
    // Members only; anyone else gets 404 as for the server itself.
    crate::servers::context::require(&state.store, user.id, id).await?;
    let error = store_choice(&state, user.id, Scope::Server(id), &input, false).await?;
    answer(&headers, form_for_server(&state, user.id, id).await?, error, &format!("/s/{id}"))
}

/// Saves the form's choice over the stored one; what is wrong with it, if anything.
async fn store_choice(state: &AppState, user_id: i64, scope: Scope, input: &NotifyInput, has_default: bool) -> AppResult<Option<String>> {
    let current = store::get(&state.store, user_id, scope).await?;
    match apply(current, input, has_default) {
        Ok(setting) => {
            store::save(&state.store, user_id, scope, setting).await?;
            Ok(None)
        }
        Err(why) => Ok(Some(why)),
    }
}

/// htmx: the form again (saved, or with the error). A plain post: back to the page
/// (which shows the new state), or on bad input the error as a 422 page.
fn answer(headers: &HeaderMap, mut form: NotifyForm, error: Option<String>, back: &str) -> AppResult<Response> {
    if wants_fragment(headers) {
        form.saved = error.is_none();
        let status = if error.is_some() { axum::http::StatusCode::UNPROCESSABLE_ENTITY } else { axum::http::StatusCode::OK };
        form.error = error;
        return Ok((status, Html(form.render()?)).into_response());
    }
    match error {
        Some(why) => Err(AppError::Unprocessable(why)),
        None => Ok(Redirect::to(&format!("{back}#notifications")).into_response()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_reads_levels_and_mutes_and_refuses_the_rest() {
        let input = |level: &str, mute: &str| NotifyInput { level: level.into(), mute: mute.into() };
        let set = apply(Setting::default(), &input("mentions", "forever"), false).expect("valid");
        assert_eq!(set, Setting { level: Some(Level::Mentions), muted_until: Some(FOREVER) });
        assert_eq!(apply(set, &input("mentions", ""), false).expect("keeps").muted_until, Some(FOREVER));
        assert_eq!(apply(set, &input("all", "off"), false).expect("lifts").muted_until, None);
        assert!(apply(set, &input("default", ""), true).expect("channel").level.is_none());
        assert!(apply(set, &input("default", ""), false).is_err(), "no default outside channels");
        assert!(apply(set, &input("loud", ""), false).is_err());
        assert!(apply(set, &input("all", "a year"), false).is_err());
    }
}
