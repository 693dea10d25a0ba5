//! Finding people and starting direct messages; profiles, where mentions link.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::response::Redirect;
use serde::Deserialize;

use crate::accounts::CurrentUser;
use crate::accounts::presence::{self, PresenceView};
use crate::accounts::privacy::{self, Reach};
use crate::accounts::profile::{self, StatusView};
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
/// Outside the other person's circle it becomes a message request; someone who
/// blocked the user (or whom the user blocked) cannot be written to (403).
pub async fn open_dm(State(state): State<AppState>, user: CurrentUser, Path(username): Path<String>) -> AppResult<Redirect> {
    let other = store::user_by_username(&state.store, &username).await?.ok_or(AppError::NotFound)?;
    let request = match privacy::dm_reach(&state.store, user.id, other.id).await? {
        Reach::Refused(why) => return Err(AppError::Forbidden(why)),
        Reach::Direct => false,
        Reach::Request => true,
    };
    let id = store::open_dm(&state.store, user.id, other.id, request).await?;
    Ok(Redirect::to(&format!("/c/{id}")))
}

/// What the profile card shows of a person to one viewer.
pub struct ProfileCard {
    pub user_id: i64,
    pub username: String,
    pub name: String,
    pub pronouns: String,
    pub bio: String,
    pub status: StatusView,
    pub presence: PresenceView,
    pub avatar: crate::accounts::profile::AvatarView,
    pub me: bool,
    /// The viewer blocked this person (the card offers Unblock).
    pub blocked: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "conversations/profile.html")]
pub struct ProfilePage {
    page: Page,
    sidebar: views::Sidebar,
    card: ProfileCard,
}

/// A person's profile card, for any signed-in viewer (names link here from the
/// sidebar, message headers and member lists). Signed out, it is the login page, for
/// existing and unknown names alike, so it tells outsiders nothing.
pub async fn profile(State(state): State<AppState>, user: CurrentUser, Path(username): Path<String>) -> AppResult<ProfilePage> {
    let person = profile::by_username(&state.store, &username).await?.ok_or(AppError::NotFound)?;
    let me = person.id == user.id;
    let hidden = !me && privacy::blocks(&state.store, person.id, user.id).await?;
    let in_circle = me || privacy::in_circle(&state.store, person.id, user.id).await?;
    let online = state.realtime.online_among(&[person.id]).await.contains(&person.id);
    let shown = privacy::shown(hidden, &person.last_seen_audience, in_circle);
    let card = ProfileCard {
        user_id: person.id,
        username: person.username.clone(),
        name: person.name().to_string(),
        pronouns: person.pronouns.clone(),
        bio: person.bio.clone(),
        status: if hidden { StatusView::hidden(person.id) } else { person.status() },
        presence: presence::view(person.id, &person.presence, online, person.last_seen_at, shown),
        avatar: person.avatar(),
        me,
        blocked: !me && privacy::blocks(&state.store, user.id, person.id).await?,
    };
    let mut page = Page::new(card.name.clone(), Some(&user));
    // Presence and status on the card stay live like everywhere else.
    page.live_since = Some(crate::store::log::newest(&state.store).await?);
    page.ringing = crate::store::calls::ringing(&state.store, user.id, state.config.call_ring_ms()).await?;
    Ok(ProfilePage { page, sidebar: views::sidebar_for(&state, user.id, None).await?, card })
}
