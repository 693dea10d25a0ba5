//! Managing a server's roles (MANAGE_ROLES): the roles page (highest first, @everyone
//! last, with member counts), creating, editing, reordering and deleting roles. The
//! hierarchy rules are the pure helpers in `permissions`: one manages only roles below
//! one's highest, and changes only permissions one holds.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use crate::accounts::CurrentUser;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::web::Form;
use crate::web::layout::Page;

use super::audit::{Action, Entry};
use super::context::{self, RoleRow, ServerAccess};
use super::model::{RoleColor, parse_color, parse_role_name};
use super::nav::{ChannelNav, RailItem, shell};
use super::permissions::{self, ALL, HeldRole, Permissions, Standing};
use super::role_store::{self, RoleValues};

/// Refusals, said the same way everywhere.
pub const BELOW_ONLY: &str = "You can only manage roles below your highest role.";
pub const HELD_ONLY: &str = "You can only grant or take away permissions you hold yourself.";

/// One permission checkbox of the role form.
pub struct PermissionChoice {
    pub key: &'static str,
    pub label: &'static str,
    pub help: &'static str,
    pub checked: bool,
}

/// The role form's values: a role's own, or what was typed.
pub struct RoleForm {
    pub name: String,
    pub color: String,
    pub hoist: bool,
    pub mentionable: bool,
    pub everyone: bool,
    pub permissions: Vec<PermissionChoice>,
}

impl RoleForm {
    fn new(name: &str, color: &str, hoist: bool, mentionable: bool, everyone: bool, perms: Permissions) -> RoleForm {
        let permissions = ALL
            .iter()
            .map(|&(p, key, label, help)| PermissionChoice { key, label, help, checked: perms.contains(p) })
            .collect();
        RoleForm { name: name.into(), color: color.into(), hoist, mentionable, everyone, permissions }
    }

    fn of(role: &RoleRow) -> RoleForm {
        RoleForm::new(&role.name, &role.color, role.hoist, role.mentionable, role.is_everyone, role.permissions())
    }
}

/// A submitted role form: repeated `permission` fields, so read as pairs.
pub struct RoleInput {
    name: String,
    color: String,
    hoist: bool,
    mentionable: bool,
    permissions: Permissions,
}

impl RoleInput {
    fn read(pairs: &[(String, String)]) -> RoleInput {
        let field = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
        RoleInput {
            name: field("name"),
            color: field("color"),
            hoist: field("hoist") == "1",
            mentionable: field("mentionable") == "1",
            permissions: permissions::parse_keys(pairs.iter().filter(|(k, _)| k == "permission").map(|(_, v)| v.as_str())),
        }
    }

    fn form(&self, everyone: bool) -> RoleForm {
        RoleForm::new(&self.name, &self.color, self.hoist, self.mentionable, everyone, self.permissions)
    }

    /// The checked values; for @everyone only the permissions count.
    fn values(&self, everyone: bool) -> Result<RoleValues, String> {
        if everyone {
            return Ok(RoleValues { name: String::new(), color: String::new(), hoist: false, mentionable: false, permissions: self.permissions });
        }
        Ok(RoleValues {
            name: parse_role_name(&self.name)?,
            color: parse_color(&self.color)?,
            hoist: self.hoist,
            mentionable: self.mentionable,
            permissions: self.permissions,
        })
    }
}

pub struct RoleItem {
    pub id: i64,
    pub name: String,
    pub color: String,
    pub everyone: bool,
    pub members: i64,
    pub editable: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "servers/roles.html")]
pub struct RolesPage {
    page: Page,
    rail: Vec<RailItem>,
    rail_home: bool,
    nav: ChannelNav,
    roles: Vec<RoleItem>,
    role_colors: Vec<RoleColor>,
    form: RoleForm,
    error: Option<String>,
}

impl RolesPage {
    fn action(&self) -> String {
        format!("/s/{}/roles", self.nav.server_id)
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "servers/role.html")]
pub struct RolePage {
    page: Page,
    rail: Vec<RailItem>,
    rail_home: bool,
    nav: ChannelNav,
    role_id: i64,
    form: RoleForm,
    error: Option<String>,
}

impl RolePage {
    fn action(&self) -> String {
        format!("/s/{}/roles/{}", self.nav.server_id, self.role_id)
    }
}

/// The actor's rank and permissions, as the hierarchy helpers take them.
pub struct Actor {
    roles: Vec<HeldRole>,
    is_owner: bool,
    timed_out: bool,
    pub permissions: Permissions,
}

impl Actor {
    pub fn of(access: &ServerAccess) -> Actor {
        let roles = access.shape.held_roles(&access.me);
        let standing = access.shape.standing(&access.me, &roles);
        Actor { is_owner: standing.is_owner, timed_out: standing.timed_out, roles, permissions: access.permissions }
    }

    pub fn standing(&self) -> Standing<'_> {
        Standing { is_owner: self.is_owner, timed_out: self.timed_out, roles: &self.roles }
    }

    pub fn can_edit(&self, role: &RoleRow) -> bool {
        permissions::can_edit_role(&self.standing(), self.permissions, role.position, role.is_everyone)
    }

    /// Assign, reorder or delete: never @everyone, only below one's highest role.
    pub fn can_manage(&self, role: &RoleRow) -> bool {
        !role.is_everyone && permissions::can_manage_role(&self.standing(), self.permissions, role.position)
    }
}

pub async fn manage(state: &AppState, user: &CurrentUser, id: i64) -> AppResult<ServerAccess> {
    let access = context::require(&state.store, user.id, id).await?;
    access.ensure(Permissions::MANAGE_ROLES)?;
    Ok(access)
}

async fn roles_page(state: &AppState, user: &CurrentUser, access: &ServerAccess, form: RoleForm, error: Option<String>) -> AppResult<Response> {
    let shell = shell(state, access, None).await?;
    let counts = role_store::member_counts(&state.store, access.id()).await?;
    let actor = Actor::of(access);
    let roles = access
        .shape
        .roles
        .iter()
        .map(|r| RoleItem {
            id: r.id,
            name: r.name.clone(),
            color: r.color.clone(),
            everyone: r.is_everyone,
            // @everyone has no rows: the page says "every member" for it.
            members: counts.iter().find(|(id, _)| *id == r.id).map_or(0, |(_, n)| *n),
            editable: actor.can_edit(r),
        })
        .collect();
    let status = if error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    let page = RolesPage {
        page: Page::new(format!("Roles · {}", access.shape.server.name), Some(user)),
        rail: shell.rail,
        rail_home: false,
        nav: shell.nav,
        roles,
        role_colors: access.shape.roles.iter().filter_map(|r| RoleColor::of(r.id, &r.color)).collect(),
        form,
        error,
    };
    Ok((status, page).into_response())
}

async fn role_page(state: &AppState, user: &CurrentUser, access: &ServerAccess, role_id: i64, form: RoleForm, error: Option<String>) -> AppResult<Response> {
    let shell = shell(state, access, None).await?;
    let status = if error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    let page = RolePage {
        page: Page::new(format!("Role {} · {}", form.name, access.shape.server.name), Some(user)),
        rail: shell.rail,
        rail_home: false,
        nav: shell.nav,
        role_id,
        form,
        error,
    };
    Ok((status, page).into_response())
}

fn back(id: i64) -> Response {
    Redirect::to(&format!("/s/{id}/roles")).into_response()
}

fn role_of(access: &ServerAccess, role: i64) -> AppResult<RoleRow> {
    access.shape.role(role).cloned().ok_or(AppError::NotFound)
}

/// "ban_members, kick_members": a permission set as the audit log shows it.
fn keys(perms: Permissions) -> String {
    perms.keys().collect::<Vec<_>>().join(", ")
}

fn describe(values: &RoleValues) -> String {
    format!("{} · colour {} · hoist {} · mentionable {} · {}", values.name, values.color, values.hoist, values.mentionable, keys(values.permissions))
}

pub async fn show(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>) -> AppResult<Response> {
    let access = manage(&state, &user, id).await?;
    let form = RoleForm::new("new role", "", false, false, false, Permissions::empty());
    roles_page(&state, &user, &access, form, None).await
}

pub async fn create(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>, Form(pairs): Form<Vec<(String, String)>>) -> AppResult<Response> {
    let access = manage(&state, &user, id).await?;
    let input = RoleInput::read(&pairs);
    let values = match input.values(false) {
        Ok(values) => values,
        Err(why) => return roles_page(&state, &user, &access, input.form(false), Some(why)).await,
    };
    if !permissions::can_change(access.permissions, Permissions::empty(), values.permissions) {
        return Err(AppError::Forbidden(HELD_ONLY));
    }
    let entry = Entry::new(id, user.id, Action::RoleCreate).target("role", 0, &values.name).change("", describe(&values));
    role_store::create(&state.store, id, &values, &entry).await?;
    Ok(back(id))
}

pub async fn edit(State(state): State<AppState>, user: CurrentUser, Path((id, role)): Path<(i64, i64)>) -> AppResult<Response> {
    let access = manage(&state, &user, id).await?;
    let row = role_of(&access, role)?;
    if !Actor::of(&access).can_edit(&row) {
        return Err(AppError::Forbidden(BELOW_ONLY));
    }
    role_page(&state, &user, &access, role, RoleForm::of(&row), None).await
}

pub async fn update(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((id, role)): Path<(i64, i64)>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> AppResult<Response> {
    let access = manage(&state, &user, id).await?;
    let row = role_of(&access, role)?;
    if !Actor::of(&access).can_edit(&row) {
        return Err(AppError::Forbidden(BELOW_ONLY));
    }
    let input = RoleInput::read(&pairs);
    let values = match input.values(row.is_everyone) {
        Ok(values) => values,
        Err(why) => return role_page(&state, &user, &access, role, input.form(row.is_everyone), Some(why)).await,
    };
    if !permissions::can_change(access.permissions, row.permissions(), values.permissions) {
        return Err(AppError::Forbidden(HELD_ONLY));
    }
    let before = RoleValues { name: row.name.clone(), color: row.color.clone(), hoist: row.hoist, mentionable: row.mentionable, permissions: row.permissions() };
    let (before, after) = if row.is_everyone { (keys(before.permissions), keys(values.permissions)) } else { (describe(&before), describe(&values)) };
    if before != after {
        let entry = Entry::new(id, user.id, Action::RoleUpdate).target("role", role, &row.name).change(before, after);
        role_store::update(&state.store, id, role, &values, &entry).await?;
    }
    Ok(back(id))
}

pub async fn delete(State(state): State<AppState>, user: CurrentUser, Path((id, role)): Path<(i64, i64)>) -> AppResult<Response> {
    let access = manage(&state, &user, id).await?;
    let row = role_of(&access, role)?;
    if row.is_everyone {
        return Err(AppError::Forbidden("@everyone cannot be deleted."));
    }
    if !Actor::of(&access).can_manage(&row) {
        return Err(AppError::Forbidden(BELOW_ONLY));
    }
    let entry = Entry::new(id, user.id, Action::RoleDelete).target("role", role, &row.name).change(keys(row.permissions()), "");
    role_store::delete(&state.store, id, role, &entry).await?;
    Ok(back(id))
}

/// Swaps a role with its neighbour above (`up`) or below; both must be below the
/// actor's highest role, so nobody lifts a role to or past their own.
async fn move_role(state: AppState, user: CurrentUser, id: i64, role: i64, up: bool) -> AppResult<Response> {
    let access = manage(&state, &user, id).await?;
    let row = role_of(&access, role)?;
    let actor = Actor::of(&access);
    // Lowest first, @everyone left out: its place is fixed.
    let mut order: Vec<&RoleRow> = access.shape.roles.iter().rev().filter(|r| !r.is_everyone).collect();
    let at = order.iter().position(|r| r.id == role).ok_or(AppError::NotFound)?;
    let other = if up { Some(at + 1).filter(|&i| i < order.len()) } else { at.checked_sub(1) };
    let Some(other) = other else { return Ok(back(id)) };
    if !actor.can_manage(&row) || !actor.can_manage(order[other]) {
        return Err(AppError::Forbidden(BELOW_ONLY));
    }
    order.swap(at, other);
    let ids: Vec<i64> = order.iter().map(|r| r.id).collect();
    let entry = Entry::new(id, user.id, Action::RoleUpdate).target("role", role, &row.name).change("", if up { "moved up" } else { "moved down" });
    role_store::reorder(&state.store, id, &ids, &entry).await?;
    Ok(back(id))
}

pub async fn up(State(state): State<AppState>, user: CurrentUser, Path((id, role)): Path<(i64, i64)>) -> AppResult<Response> {
    move_role(state, user, id, role, true).await
}

pub async fn down(State(state): State<AppState>, user: CurrentUser, Path((id, role)): Path<(i64, i64)>) -> AppResult<Response> {
    move_role(state, user, id, role, false).await
}
