//! Server icons: the same pipeline as avatars (`accounts::avatar`: sniffed, decoded,
//! centre square at 256 px, a new key per upload, served at `/avatars/{key}` to anyone
//! signed in), set or removed by whoever has MANAGE_SERVER on the settings page, and
//! shown in the rail in place of the server's initials.

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use crate::accounts::CurrentUser;
use crate::accounts::avatar::{forget, read_picture, store_square};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::Store;
use crate::with_db;

use super::context;
use super::permissions::Permissions;

pub async fn upload(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>, request: Request) -> AppResult<Response> {
    let access = context::require(&state.store, user.id, id).await?;
    access.ensure(Permissions::MANAGE_SERVER)?;
    let stored = match read_picture(&state, request).await {
        Ok(picture) => store_square(&state, picture).await,
        Err(error) => Err(error),
    };
    let key = match stored {
        Ok(key) => key,
        Err(AppError::Unprocessable(why)) => {
            let mut page = super::pages::settings_page(&state, &user, &access).await?;
            page.icon_error = Some(why);
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
        Err(other) => return Err(other),
    };
    let old = set(&state.store, id, Some(&key)).await?;
    forget(&state, old).await;
    Ok(Redirect::to(&format!("/s/{id}/settings")).into_response())
}

pub async fn remove(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>) -> AppResult<Response> {
    let access = context::require(&state.store, user.id, id).await?;
    access.ensure(Permissions::MANAGE_SERVER)?;
    let old = set(&state.store, id, None).await?;
    forget(&state, old).await;
    Ok(Redirect::to(&format!("/s/{id}/settings")).into_response())
}

/// The server's icon key, if it has one.
pub async fn key_of(store: &Store, server_id: i64) -> Result<Option<String>, sqlx::Error> {
    let key: Option<Option<String>> =
        with_db!(store, pool => sqlx::query_scalar("SELECT icon_key FROM servers WHERE id = $1").bind(server_id).fetch_optional(pool).await)?;
    Ok(key.flatten())
}

/// Sets the icon; the key it replaced.
async fn set(store: &Store, server_id: i64, key: Option<&str>) -> Result<Option<String>, sqlx::Error> {
    let old = key_of(store, server_id).await?;
    with_db!(store, pool => sqlx::query("UPDATE servers SET icon_key = $1 WHERE id = $2").bind(key).bind(server_id).execute(pool).await.map(|_| ()))?;
    Ok(old)
}
