//! One member of a server as a role manager sees them (`/s/{id}/members/{user}`): the
//! roles they hold, with a checkbox for each role the manager may assign (those below
//! the manager's highest role), saved in one go. Nobody changes the roles of someone
//! at or above their own rank, themselves included; the owner changes anyone's.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};

use crate::accounts::CurrentUser;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::web::Form;
use crate::web::layout::Page;

use super::audit::{Action, Entry};
use super::context::{MemberFacts, ServerAccess};
use super::nav::{ChannelNav, RailItem, shell};
use super::permissions;
use super::role_store;
use super::roles::{Actor, manage};
use super::store::ServerMemberRow;

pub struct RoleChoice {
    pub id: i64,
    pub name: String,
    pub held: bool,
    pub assignable: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "servers/member.html")]
pub struct MemberPage {
    page: Page,
    rail: Vec<RailItem>,
    rail_home: bool,
    nav: ChannelNav,
    member: ServerMemberRow,
    can_change: bool,
    roles: Vec<RoleChoice>,
}

/// The member, their facts, and whether the actor may change their roles at all.
async fn target(state: &AppState, access: &ServerAccess, user_id: i64) -> AppResult<(ServerMemberRow, MemberFacts, bool)> {
    let row = role_store::member(&state.store, access.id(), user_id).await?.ok_or(AppError::NotFound)?;
    let facts = crate::with_db!(&state.store, pool => crate::fetch_member_facts!(pool, access.id(), user_id).await)?
        .pop()
        .ok_or(AppError::NotFound)?;
    let target_roles = access.shape.held_roles(&facts);
    let actor = Actor::of(access);
    let allowed = actor.standing().is_owner || permissions::can_act_on_member(&actor.standing(), &access.shape.standing(&facts, &target_roles));
    Ok((row, facts, allowed))
}

fn choices(access: &ServerAccess, facts: &MemberFacts, can_change: bool) -> Vec<RoleChoice> {
    let actor = Actor::of(access);
    access
        .shape
        .roles
        .iter()
        .filter(|r| !r.is_everyone)
        .map(|r| RoleChoice { id: r.id, name: r.name.clone(), held: facts.role_ids.contains(&r.id), assignable: can_change && actor.can_manage(r) })
        .collect()
}

pub async fn show(State(state): State<AppState>, user: CurrentUser, Path((id, member)): Path<(i64, i64)>) -> AppResult<MemberPage> {
    let access = manage(&state, &user, id).await?;
    let (row, facts, can_change) = target(&state, &access, member).await?;
    let shell = shell(&state, &access, None).await?;
    Ok(MemberPage {
        page: Page::new(format!("{} · {}", row.name(), access.shape.server.name), Some(&user)),
        rail: shell.rail,
        rail_home: false,
        nav: shell.nav,
        roles: choices(&access, &facts, can_change),
        can_change,
        member: row,
    })
}

/// Saves the ticked roles among those the actor may assign; the others stay as they are.
pub async fn save(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((id, member)): Path<(i64, i64)>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> AppResult<Response> {
    let access = manage(&state, &user, id).await?;
    let (row, facts, can_change) = target(&state, &access, member).await?;
    if !can_change {
        return Err(AppError::Forbidden("You can only change the roles of members ranked below you."));
    }
    let ticked: Vec<i64> = pairs.iter().filter(|(k, _)| k == "role").filter_map(|(_, v)| v.parse().ok()).collect();
    let actor = Actor::of(&access);
    if ticked.iter().any(|id| access.shape.role(*id).is_none_or(|r| !actor.can_manage(r))) {
        return Err(AppError::Forbidden(super::roles::BELOW_ONLY));
    }
    let choices = choices(&access, &facts, can_change);
    let add: Vec<i64> = choices.iter().filter(|c| c.assignable && !c.held && ticked.contains(&c.id)).map(|c| c.id).collect();
    let remove: Vec<i64> = choices.iter().filter(|c| c.assignable && c.held && !ticked.contains(&c.id)).map(|c| c.id).collect();
    if !add.is_empty() || !remove.is_empty() {
        let names = |held: &dyn Fn(&RoleChoice) -> bool| choices.iter().filter(|c| held(c)).map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ");
        let before = names(&|c| c.held);
        let after = names(&|c| (c.held && !remove.contains(&c.id)) || add.contains(&c.id));
        let entry = Entry::new(id, user.id, Action::MemberRoles).target("member", member, &row.username).change(before, after);
        role_store::set_member_roles(&state.store, id, member, &add, &remove, &entry).await?;
    }
    Ok(Redirect::to(&format!("/s/{id}/members/{member}")).into_response())
}
