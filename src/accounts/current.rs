//! `CurrentUser`: the extractor that makes a handler sign-in only. A session whose
//! device was signed out elsewhere is emptied here, at its next request.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use tower_sessions::Session;

use crate::error::AppError;
use crate::state::AppState;
use crate::store::now_ms;
use crate::web::request::ClientInfo;

use super::session::DEVICE_KEY;
use super::store;

#[derive(Clone, Debug)]
pub struct CurrentUser {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub is_admin: bool,
    pub device_id: i64,
    /// The viewer's time zone, as every time on their pages is shown.
    pub zone: crate::web::time::Zone,
    /// False until they choose a zone (or their browser offers one).
    pub zone_chosen: bool,
}

impl CurrentUser {
    /// The name to show: the display name when set, else the username.
    pub fn name(&self) -> &str {
        super::model::shown_name(&self.display_name, &self.username)
    }
}

impl crate::web::layout::AsViewer for CurrentUser {
    fn viewer(&self) -> crate::web::layout::Viewer {
        crate::web::layout::Viewer { id: self.id, username: self.username.clone(), name: self.name().to_string(), offer_zone: !self.zone_chosen }
    }
}

/// How stale `last_active_at` may get before a request refreshes it (and, with it,
/// the session's 30-day expiry): one write a minute at most, not one per request.
const TOUCH_AFTER_MS: i64 = 60_000;

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // Already looked up for this request (e.g. by the rate limit layer).
        if let Some(user) = parts.extensions.get::<CurrentUser>() {
            return Ok(user.clone());
        }
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|(_, why)| AppError::Internal(why.to_string()))?;
        let Some(device_id) = session.get::<i64>(DEVICE_KEY).await? else {
            return Err(AppError::Unauthorized);
        };
        let found = match state.devices.get(device_id) {
            Some(cached) => Some(cached),
            None => store::user_for_device(&state.store, device_id).await?,
        };
        let Some((user, last_active)) = found else {
            session.flush().await?;
            return Err(AppError::Unauthorized);
        };
        if now_ms() - last_active > TOUCH_AFTER_MS {
            let Ok(client) = ClientInfo::from_request_parts(parts, state).await;
            store::touch_device(&state.store, device_id, &client.ip).await?;
            state.devices.put(device_id, &user, now_ms());
            // A changed value marks the session modified, so its expiry rolls forward.
            session.insert("seen", now_ms()).await?;
        } else {
            state.devices.put(device_id, &user, last_active);
        }
        parts.extensions.insert(user.clone());
        Ok(user)
    }
}

/// The signed-in user if there is one; for pages anyone may see (login, errors).
pub struct MaybeUser(pub Option<CurrentUser>);

impl FromRequestParts<AppState> for MaybeUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match CurrentUser::from_request_parts(parts, state).await {
            Ok(user) => Ok(MaybeUser(Some(user))),
            Err(AppError::Unauthorized) => Ok(MaybeUser(None)),
            Err(other) => Err(other),
        }
    }
}
