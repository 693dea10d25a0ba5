//! A server's own pages: creating one, its home (channels, members by hoisted role),
//! and its settings (name, description, transfer, delete, leave).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::accounts::CurrentUser;
use crate::accounts::presence::{self, PresenceView};
use crate::accounts::profile::StatusView;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::web::Form;
use crate::web::layout::Page;

use super::audit::{Action, Entry};
use super::context::{self, ServerAccess};
use super::model::{RoleColor, parse_description, parse_server_name};
use super::nav::{self, ChannelNav, RailItem, shell};
use super::permissions::Permissions;
use super::store::{self, ServerMemberRow};

#[derive(Deserialize, Default)]
pub struct NewServerInput {
    #[serde(default)]
    name: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "servers/new.html")]
pub struct NewServerPage {
    page: Page,
    rail: Vec<RailItem>,
    rail_home: bool,
    name: String,
    error: Option<String>,
}

pub async fn new_page(State(state): State<AppState>, user: CurrentUser) -> AppResult<NewServerPage> {
    let rail = nav::rail(&state.store, user.id, None).await?;
    Ok(NewServerPage { page: Page::new("Create a server", Some(&user)), rail, rail_home: false, name: format!("{}'s server", user.name()), error: None })
}

pub async fn create(State(state): State<AppState>, user: CurrentUser, Form(input): Form<NewServerInput>) -> AppResult<Response> {
    let name = match parse_server_name(&input.name) {
        Ok(name) => name,
        Err(why) => {
            let rail = nav::rail(&state.store, user.id, None).await?;
            let page = NewServerPage { page: Page::new("Create a server", Some(&user)), rail, rail_home: false, name: input.name, error: Some(why) };
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    let id = store::create(&state.store, user.id, &name).await?;
    Ok(Redirect::to(&format!("/s/{id}")).into_response())
}

pub struct MemberGroup {
    pub name: String,
    /// The hoisted role's id when it has a colour (its `.role-{id}` rule paints it).
    pub color_role: Option<i64>,
    pub members: Vec<MemberItem>,
}

pub struct MemberItem {
    pub row: ServerMemberRow,
    pub owner: bool,
    pub timed_out: bool,
    pub presence: PresenceView,
    pub status: StatusView,
    /// The member's highest role with a colour, which colours their name.
    pub color_role: Option<i64>,
}

#[derive(Template, WebTemplate)]
#[template(path = "servers/show.html")]
pub struct ServerHome {
    page: Page,
    rail: Vec<RailItem>,
    rail_home: bool,
    nav: ChannelNav,
    description: String,
    member_count: usize,
    groups: Vec<MemberGroup>,
    role_colors: Vec<RoleColor>,
    can_roles: bool,
    /// Links each member to their page's kick, ban and timeout forms.
    can_moderate: bool,
    /// The viewer's notification level and mute for the whole server.
    notify: crate::notifications::NotifyForm,
}

fn colored(role: &&context::RoleRow) -> Option<i64> {
    (!role.color.is_empty()).then_some(role.id)
}

/// Members grouped like Discord's member list: under their highest hoisted role, then
/// "Online" and "Offline" for everyone else.
async fn member_groups(state: &AppState, access: &ServerAccess, viewer: i64) -> AppResult<(Vec<MemberGroup>, usize)> {
    let blockers = crate::accounts::privacy::blockers_of(&state.store, viewer).await?;
    let rows = store::members(&state.store, access.id()).await?;
    let roles = store::member_roles(&state.store, access.id()).await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.user_id).collect();
    let online = state.realtime.online_among(&ids).await;
    let hoisted: Vec<&context::RoleRow> = access.shape.roles.iter().filter(|r| r.hoist && !r.is_everyone).collect();
    let mut groups: Vec<MemberGroup> =
        hoisted.iter().map(|r| MemberGroup { name: r.name.clone(), color_role: colored(r), members: Vec::new() }).collect();
    let mut online_group = MemberGroup { name: "Online".into(), color_role: None, members: Vec::new() };
    let mut offline_group = MemberGroup { name: "Offline".into(), color_role: None, members: Vec::new() };
    let count = rows.len();
    let now = crate::store::now_ms();
    for row in rows {
        // Members of one server are in each other's circle.
        let blocked = blockers.contains(&row.user_id);
        let shown = crate::accounts::privacy::shown(blocked, &row.last_seen_audience, true);
        let presence = presence::view(row.user_id, &row.presence, online.contains(&row.user_id), row.last_seen_at, shown);
        let status = match blocked {
            true => StatusView::hidden(row.user_id),
            false => StatusView::current(row.user_id, &row.status_emoji, &row.status_text, row.status_expires_at),
        };
        // Roles come highest first, so the first coloured one the member holds wins.
        let color_role = access.shape.roles.iter().filter(|r| roles.contains(&(row.user_id, r.id))).find_map(|r| colored(&r));
        let item = MemberItem {
            color_role,
            owner: row.user_id == access.shape.server.owner_id,
            timed_out: row.timeout_until.is_some_and(|t| t > now),
            presence,
            status,
            row,
        };
        // Roles come highest first, so the first hoisted role the member holds wins.
        let slot = hoisted.iter().position(|r| roles.contains(&(item.row.user_id, r.id)));
        match slot {
            Some(i) => groups[i].members.push(item),
            None if item.presence.state != "offline" => online_group.members.push(item),
            None => offline_group.members.push(item),
        }
    }
    groups.push(online_group);
    groups.push(offline_group);
    groups.retain(|g| !g.members.is_empty());
    Ok((groups, count))
}

pub async fn show(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>) -> AppResult<ServerHome> {
    let access = context::require(&state.store, user.id, id).await?;
    let shell = shell(&state, &access, None).await?;
    let (groups, member_count) = member_groups(&state, &access, user.id).await?;
    let mut page = Page::new(access.shape.server.name.clone(), Some(&user));
    page.live_since = Some(crate::store::log::newest(&state.store).await?);
    page.ringing = crate::store::calls::ringing(&state.store, user.id, state.config.call_ring_ms()).await?;
    Ok(ServerHome {
        page,
        rail: shell.rail,
        rail_home: false,
        nav: shell.nav,
        description: access.shape.server.description.clone(),
        member_count,
        groups,
        role_colors: access.shape.roles.iter().filter_map(|r| RoleColor::of(r.id, &r.color)).collect(),
        can_roles: access.can(Permissions::MANAGE_ROLES),
        notify: crate::notifications::form_for_server(&state, user.id, id).await?,
        can_moderate: [Permissions::KICK_MEMBERS, Permissions::BAN_MEMBERS, Permissions::MODERATE_MEMBERS].into_iter().any(|p| access.can(p)),
    })
}

#[derive(Deserialize, Default)]
pub struct SettingsInput {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    username: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "servers/settings.html")]
pub struct SettingsPage {
    page: Page,
    rail: Vec<RailItem>,
    rail_home: bool,
    nav: ChannelNav,
    name: String,
    description: String,
    can_manage: bool,
    is_owner: bool,
    can_audit: bool,
    can_roles: bool,
    can_ban: bool,
    error: Option<String>,
    delete_error: Option<String>,
    transfer_error: Option<String>,
    confirm: String,
    transfer_to: String,
    /// The icon's URL, if it has one, and why an upload was refused.
    icon: Option<String>,
    pub(super) icon_error: Option<String>,
}

pub(super) async fn settings_page(state: &AppState, user: &CurrentUser, access: &ServerAccess) -> AppResult<SettingsPage> {
    let shell = shell(state, access, None).await?;
    Ok(SettingsPage {
        page: Page::new(format!("Settings · {}", access.shape.server.name), Some(user)),
        rail: shell.rail,
        rail_home: false,
        nav: shell.nav,
        name: access.shape.server.name.clone(),
        description: access.shape.server.description.clone(),
        can_manage: access.can(Permissions::MANAGE_SERVER),
        is_owner: access.is_owner(),
        can_audit: access.can(Permissions::VIEW_AUDIT_LOG),
        can_roles: access.can(Permissions::MANAGE_ROLES),
        can_ban: access.can(Permissions::BAN_MEMBERS),
        error: None,
        delete_error: None,
        transfer_error: None,
        confirm: String::new(),
        transfer_to: String::new(),
        icon: super::icon::key_of(&state.store, access.id()).await?.as_deref().map(crate::accounts::avatar::url),
        icon_error: None,
    })
}

pub async fn settings(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>) -> AppResult<SettingsPage> {
    let access = context::require(&state.store, user.id, id).await?;
    settings_page(&state, &user, &access).await
}

pub async fn update(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>, Form(input): Form<SettingsInput>) -> AppResult<Response> {
    let access = context::require(&state.store, user.id, id).await?;
    access.ensure(Permissions::MANAGE_SERVER)?;
    let parsed = parse_server_name(&input.name).and_then(|name| Ok((name, parse_description(&input.description)?)));
    let (name, description) = match parsed {
        Ok(values) => values,
        Err(why) => {
            let mut page = settings_page(&state, &user, &access).await?;
            page.name = input.name;
            page.description = input.description;
            page.error = Some(why);
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    let server = &access.shape.server;
    if name != server.name || description != server.description {
        let entry = Entry::new(id, user.id, Action::ServerUpdate)
            .target("server", id, &name)
            .change(format!("{} — {}", server.name, server.description), format!("{name} — {description}"));
        store::update_profile(&state.store, id, &name, &description, &entry).await?;
    }
    Ok(Redirect::to(&format!("/s/{id}/settings")).into_response())
}

/// Only the owner deletes, and only after typing the server's name.
pub async fn delete(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>, Form(input): Form<SettingsInput>) -> AppResult<Response> {
    let access = context::require(&state.store, user.id, id).await?;
    if !access.is_owner() {
        return Err(AppError::Forbidden("Only the server's owner can delete it."));
    }
    if input.confirm.trim() != access.shape.server.name {
        let mut page = settings_page(&state, &user, &access).await?;
        page.confirm = input.confirm;
        page.delete_error = Some("Type the server's name exactly to delete it.".into());
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    }
    store::delete(&state.store, id).await?;
    Ok(Redirect::to("/").into_response())
}

pub async fn transfer(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>, Form(input): Form<SettingsInput>) -> AppResult<Response> {
    let access = context::require(&state.store, user.id, id).await?;
    if !access.is_owner() {
        return Err(AppError::Forbidden("Only the server's owner can transfer it."));
    }
    let target = store::user_by_username(&state.store, &input.username).await?;
    let target = match target {
        Some(t) if t.0 != user.id && store::is_member(&state.store, id, t.0).await? => t,
        _ => {
            let mut page = settings_page(&state, &user, &access).await?;
            page.transfer_to = input.username;
            page.transfer_error = Some("Type the username of another member of this server.".into());
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
        }
    };
    let entry = Entry::new(id, user.id, Action::ServerTransfer).target("member", target.0, &target.1).change(user.username.clone(), target.1.clone());
    store::transfer(&state.store, id, target.0, &entry).await?;
    Ok(Redirect::to(&format!("/s/{id}/settings")).into_response())
}

/// Anyone but the owner may leave (the owner transfers the server first).
pub async fn leave(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>) -> AppResult<Response> {
    let access = context::require(&state.store, user.id, id).await?;
    if access.is_owner() {
        return Err(AppError::Forbidden("Transfer the server to someone else before leaving it, or delete it."));
    }
    store::remove_member(&state.store, id, user.id, None).await?;
    Ok(Redirect::to("/").into_response())
}
