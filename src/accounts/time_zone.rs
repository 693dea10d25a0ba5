//! The viewer's time zone: chosen in Settings → Profile (a plain form), or offered
//! once by the browser (app.js posts `Intl.DateTimeFormat().resolvedOptions().timeZone`
//! while none is chosen). Every time on the person's pages is shown in it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::error::AppResult;
use crate::state::AppState;
use crate::store::Store;
use crate::web::Form;
use crate::web::time::Zone;
use crate::with_db;

use super::CurrentUser;

#[derive(Deserialize, Default)]
pub struct ZoneInput {
    #[serde(default)]
    time_zone: String,
}

/// Every zone name the database knows, for the form's suggestions.
pub fn names() -> Vec<String> {
    let mut names: Vec<String> = jiff::tz::db().available().map(|name| name.to_string()).collect();
    names.sort();
    names
}

/// Settings → Profile → Time zone.
pub async fn save(State(state): State<AppState>, user: CurrentUser, Form(input): Form<ZoneInput>) -> AppResult<Response> {
    let Some(zone) = Zone::parse(&input.time_zone) else {
        let why = format!("\"{}\" is not a time zone we know. Use a name like Europe/Berlin or America/New_York.", input.time_zone.trim());
        return super::profile_settings::refused(&state, &user, vec![("time_zone", why)], |page| page.time_zone = input.time_zone).await;
    };
    set(&state.store, user.id, zone.name(), false).await?;
    state.devices.forget_user(user.id);
    Ok(Redirect::to("/settings/profile?saved=time-zone").into_response())
}

/// The browser's zone, taken only while the person has chosen none (204 either way,
/// 422 for a name the database does not know).
pub async fn detected(State(state): State<AppState>, user: CurrentUser, Form(input): Form<ZoneInput>) -> AppResult<Response> {
    let Some(zone) = Zone::parse(&input.time_zone) else {
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, "Unknown time zone.").into_response());
    };
    if set(&state.store, user.id, zone.name(), true).await? {
        state.devices.forget_user(user.id);
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Stores the zone; with `only_unset`, only over no choice at all. True when stored.
async fn set(store: &Store, user_id: i64, name: &str, only_unset: bool) -> Result<bool, sqlx::Error> {
    let sql = if only_unset {
        "UPDATE users SET time_zone = $1 WHERE id = $2 AND time_zone = ''"
    } else {
        "UPDATE users SET time_zone = $1 WHERE id = $2"
    };
    let changed = with_db!(store, pool => sqlx::query(sql).bind(name).bind(user_id).execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(changed > 0)
}
