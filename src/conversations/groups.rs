//! Groups: creating one, renaming, members in and out, admin rights, leaving. Every
//! change leaves a system line in the conversation ("Alice added Bob").

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::accounts::CurrentUser;
use crate::accounts::presence::PresenceView;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::web::Form;
use crate::web::layout::Page;

use super::access::{ensure, require};
use super::messages::post_system;
use super::model::{Role, parse_group_name};
use super::pages::conversation_title;
use super::store::{self, MemberRow, UserRow};
use super::views;

#[derive(Deserialize, Default)]
pub struct NewGroupInput {
    #[serde(default)]
    name: String,
    #[serde(default)]
    members: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "conversations/new_group.html")]
pub struct NewGroupPage {
    page: Page,
    sidebar: views::Sidebar,
    name: String,
    members: String,
    error: Option<String>,
}

pub async fn new_group_page(State(state): State<AppState>, user: CurrentUser) -> AppResult<NewGroupPage> {
    Ok(NewGroupPage {
        page: Page::new("New group", Some(&user)),
        sidebar: views::sidebar_for(&state, user.id, None).await?,
        name: String::new(),
        members: String::new(),
        error: None,
    })
}

/// Usernames separated by commas or spaces, with or without `@`.
async fn resolve_usernames(state: &AppState, text: &str) -> AppResult<Result<Vec<UserRow>, String>> {
    let mut found = Vec::new();
    for name in text.split([',', ' ', '\n']).map(|n| n.trim().trim_start_matches('@')).filter(|n| !n.is_empty()).take(200) {
        match store::user_by_username(&state.store, name).await? {
            Some(user) => {
                if !found.iter().any(|u: &UserRow| u.id == user.id) {
                    found.push(user);
                }
            }
            None => return Ok(Err(format!("There is no one called @{name}."))),
        }
    }
    Ok(Ok(found))
}

/// The first of `people` whose privacy choice (or block) keeps `adder` from adding
/// them to a group, as the sentence the form shows.
async fn group_refusal(state: &AppState, adder: i64, people: &[UserRow]) -> AppResult<Option<String>> {
    for person in people {
        if !crate::accounts::privacy::may_add_to_group(&state.store, adder, person.id).await? {
            return Ok(Some(format!("@{} {}", person.username, crate::accounts::privacy::CANNOT_ADD)));
        }
    }
    Ok(None)
}

pub async fn create_group(State(state): State<AppState>, user: CurrentUser, Form(input): Form<NewGroupInput>) -> AppResult<Response> {
    let failed = |error: String, sidebar: views::Sidebar| {
        let page = NewGroupPage {
            page: Page::new("New group", Some(&user)),
            sidebar,
            name: input.name.clone(),
            members: input.members.clone(),
            error: Some(error),
        };
        (StatusCode::UNPROCESSABLE_ENTITY, page).into_response()
    };
    let name = match parse_group_name(&input.name) {
        Ok(name) => name,
        Err(why) => return Ok(failed(why.into(), views::sidebar_for(&state, user.id, None).await?)),
    };
    let members = match resolve_usernames(&state, &input.members).await? {
        Ok(members) => members,
        Err(why) => return Ok(failed(why, views::sidebar_for(&state, user.id, None).await?)),
    };
    if let Some(why) = group_refusal(&state, user.id, &members).await? {
        return Ok(failed(why, views::sidebar_for(&state, user.id, None).await?));
    }
    let ids: Vec<i64> = members.iter().map(|m| m.id).collect();
    let id = store::create_group(&state.store, user.id, &name, &ids).await?;
    post_system(&state, id, user.id, &format!("{} created the group “{}”", user.name(), name)).await?;
    let added: Vec<&str> = members.iter().filter(|m| m.id != user.id).map(UserRow::name).collect();
    if !added.is_empty() {
        post_system(&state, id, user.id, &format!("{} added {}", user.name(), added.join(", "))).await?;
    }
    Ok(Redirect::to(&format!("/c/{id}")).into_response())
}

pub struct MemberView {
    pub row: MemberRow,
    pub removable: bool,
    pub promotable: bool,
    pub demotable: bool,
    pub me: bool,
    pub presence: PresenceView,
    pub status: crate::accounts::profile::StatusView,
}

#[derive(Template, WebTemplate)]
#[template(path = "conversations/members.html")]
pub struct MembersPage {
    page: Page,
    sidebar: views::Sidebar,
    conversation_id: i64,
    title: String,
    name: String,
    can_manage: bool,
    members: Vec<MemberView>,
    error: Option<String>,
}

async fn members_page(state: &AppState, user: &CurrentUser, id: i64, error: Option<String>) -> AppResult<MembersPage> {
    let access = require(&state.store, user.id, id).await?;
    if !access.is_group() {
        return Err(AppError::NotFound);
    }
    let rows = store::members(&state.store, id).await?;
    let title = conversation_title(&access, &rows);
    let ids: Vec<i64> = rows.iter().map(|r| r.user_id).collect();
    let online = state.realtime.online_among(&ids).await;
    let blockers = crate::accounts::privacy::blockers_of(&state.store, user.id).await?;
    let members = rows
        .into_iter()
        .map(|row| MemberView {
            presence: row.presence(online.contains(&row.user_id), &blockers),
            status: row.status(&blockers),
            removable: row.user_id != user.id && access.can_remove(row.role()),
            promotable: access.can_set_roles() && row.role() == Role::Member,
            demotable: access.can_set_roles() && row.role() == Role::Admin,
            me: row.user_id == user.id,
            row,
        })
        .collect();
    let mut page = Page::new(format!("Members of {title}"), Some(user));
    page.live_since = Some(crate::store::log::newest(&state.store).await?);
    page.ringing = crate::store::calls::ringing(&state.store, user.id, state.config.call_ring_ms()).await?;
    Ok(MembersPage {
        page,
        sidebar: views::sidebar_for(&state, user.id, Some(id)).await?,
        conversation_id: id,
        name: access.conversation.name.clone(),
        title,
        can_manage: access.can_manage(),
        members,
        error,
    })
}

pub async fn members(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>) -> AppResult<MembersPage> {
    members_page(&state, &user, id, None).await
}

async fn members_failed(state: &AppState, user: &CurrentUser, id: i64, error: impl Into<String>) -> AppResult<Response> {
    Ok((StatusCode::UNPROCESSABLE_ENTITY, members_page(state, user, id, Some(error.into())).await?).into_response())
}

fn back_to_members(id: i64) -> Response {
    Redirect::to(&format!("/c/{id}/members")).into_response()
}

#[derive(Deserialize)]
pub struct RenameInput {
    #[serde(default)]
    name: String,
}

pub async fn rename(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>, Form(input): Form<RenameInput>) -> AppResult<Response> {
    let access = require(&state.store, user.id, id).await?;
    ensure(access.can_manage())?;
    let name = match parse_group_name(&input.name) {
        Ok(name) => name,
        Err(why) => return members_failed(&state, &user, id, why).await,
    };
    if name != access.conversation.name {
        store::rename(&state.store, id, &name).await?;
        post_system(&state, id, user.id, &format!("{} renamed the group to “{}”", user.name(), name)).await?;
    }
    Ok(back_to_members(id))
}

#[derive(Deserialize)]
pub struct AddInput {
    #[serde(default)]
    username: String,
}

pub async fn add(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>, Form(input): Form<AddInput>) -> AppResult<Response> {
    let access = require(&state.store, user.id, id).await?;
    ensure(access.can_manage())?;
    let people = match resolve_usernames(&state, &input.username).await? {
        Ok(people) if !people.is_empty() => people,
        Ok(_) => return members_failed(&state, &user, id, "Type the username of the person to add.").await,
        Err(why) => return members_failed(&state, &user, id, why).await,
    };
    // Only people not yet in the group are being added: only they are asked.
    let current: Vec<i64> = store::members(&state.store, id).await?.iter().map(|m| m.user_id).collect();
    let joining: Vec<UserRow> = people.into_iter().filter(|p| !current.contains(&p.id)).collect();
    if let Some(why) = group_refusal(&state, user.id, &joining).await? {
        return members_failed(&state, &user, id, why).await;
    }
    let people = joining;
    let mut added = Vec::new();
    for person in &people {
        if store::add_member(&state.store, id, person.id).await? {
            added.push(person.name().to_string());
        }
    }
    if !added.is_empty() {
        post_system(&state, id, user.id, &format!("{} added {}", user.name(), added.join(", "))).await?;
    }
    Ok(back_to_members(id))
}

async fn member_target(state: &AppState, id: i64, user_id: i64) -> AppResult<MemberRow> {
    store::members(&state.store, id).await?.into_iter().find(|m| m.user_id == user_id).ok_or(AppError::NotFound)
}

pub async fn remove(State(state): State<AppState>, user: CurrentUser, Path((id, member_id)): Path<(i64, i64)>) -> AppResult<Response> {
    let access = require(&state.store, user.id, id).await?;
    ensure(access.can_manage())?;
    let target = member_target(&state, id, member_id).await?;
    ensure(member_id != user.id && access.can_remove(target.role()))?;
    store::remove_member(&state.store, id, member_id).await?;
    post_system(&state, id, user.id, &format!("{} removed {}", user.name(), target.name())).await?;
    Ok(back_to_members(id))
}

async fn change_role(state: AppState, user: CurrentUser, id: i64, member_id: i64, role: Role) -> AppResult<Response> {
    let access = require(&state.store, user.id, id).await?;
    ensure(access.can_set_roles())?;
    let target = member_target(&state, id, member_id).await?;
    ensure(target.role() != Role::Owner)?;
    if target.role() != role {
        store::set_role(&state.store, id, member_id, role).await?;
        let text = match role {
            Role::Admin => format!("{} made {} an admin", user.name(), target.name()),
            _ => format!("{} removed {} as admin", user.name(), target.name()),
        };
        post_system(&state, id, user.id, &text).await?;
    }
    Ok(back_to_members(id))
}

pub async fn promote(State(state): State<AppState>, user: CurrentUser, Path((id, member_id)): Path<(i64, i64)>) -> AppResult<Response> {
    change_role(state, user, id, member_id, Role::Admin).await
}

pub async fn demote(State(state): State<AppState>, user: CurrentUser, Path((id, member_id)): Path<(i64, i64)>) -> AppResult<Response> {
    change_role(state, user, id, member_id, Role::Member).await
}

/// Leaving: an owner hands the group to the longest-standing admin, or else the
/// longest-standing member; the last one out leaves an empty group behind.
pub async fn leave(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>) -> AppResult<Response> {
    let access = require(&state.store, user.id, id).await?;
    if !access.is_group() {
        return Err(AppError::NotFound);
    }
    post_system(&state, id, user.id, &format!("{} left the group", user.name())).await?;
    store::remove_member(&state.store, id, user.id).await?;
    if access.role == Role::Owner {
        let rest = store::members(&state.store, id).await?;
        let heir = rest.iter().find(|m| m.role() == Role::Admin).or_else(|| rest.iter().min_by_key(|m| (m.joined_at, m.user_id)));
        if let Some(heir) = heir {
            store::set_role(&state.store, id, heir.user_id, Role::Owner).await?;
            post_system(&state, id, heir.user_id, &format!("{} is now the owner", heir.name())).await?;
        }
    }
    Ok(Redirect::to("/").into_response())
}
