//! Finding people and starting direct messages; profiles, where mentions link.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::response::Redirect;
use serde::Deserialize;

use crate::accounts::CurrentUser;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::web::layout::Page;

use super::store::{self, UserRow};
use super::views;

#[derive(Deserialize)]
pub struct PeopleQuery {
    #[serde(default)]
    q: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "conversations/people.html")]
pub struct PeoplePage {
    page: Page,
    sidebar: views::Sidebar,
    query: String,
    results: Vec<UserRow>,
    searched: bool,
}

pub async fn find(State(state): State<AppState>, user: CurrentUser, Query(query): Query<PeopleQuery>) -> AppResult<PeoplePage> {
    let q: String = query.q.trim().chars().take(64).collect();
    let results = if q.is_empty() { Vec::new() } else { store::search_users(&state.store, &q, 50).await? };
    Ok(PeoplePage {
        page: Page::new("Find people", Some(&user)),
        sidebar: views::sidebar_for(&state, user.id, None).await?,
        searched: !q.is_empty(),
        query: q,
        results,
    })
}

/// Opens (or creates) the DM with `username`; with yourself it is "Saved messages".
pub async fn open_dm(State(state): State<AppState>, user: CurrentUser, Path(username): Path<String>) -> AppResult<Redirect> {
    let other = store::user_by_username(&state.store, &username).await?.ok_or(AppError::NotFound)?;
    let id = store::open_dm(&state.store, user.id, other.id).await?;
    Ok(Redirect::to(&format!("/c/{id}")))
}

#[derive(Template, WebTemplate)]
#[template(path = "conversations/profile.html")]
pub struct ProfilePage {
    page: Page,
    sidebar: views::Sidebar,
    person: UserRow,
    me: bool,
}

pub async fn profile(State(state): State<AppState>, user: CurrentUser, Path(username): Path<String>) -> AppResult<ProfilePage> {
    let person = store::user_by_username(&state.store, &username).await?.ok_or(AppError::NotFound)?;
    Ok(ProfilePage {
        page: Page::new(person.name().to_string(), Some(&user)),
        sidebar: views::sidebar_for(&state, user.id, None).await?,
        me: person.id == user.id,
        person,
    })
}
