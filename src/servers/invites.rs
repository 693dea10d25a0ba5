//! Invites: members with CREATE_INVITE make links (expiry 30 minutes to 7 days or
//! never, a maximum number of uses), MANAGE_SERVER sees and revokes every one; anyone
//! with the link sees the server's name and joins, signing in or registering on the way.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::accounts::{CurrentUser, MaybeUser};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::now_ms;
use crate::web::Form;
use crate::web::layout::Page;
use crate::web::time::Clock;

use super::audit::{Action, Entry};
use super::context;
use super::invite_store::{self, InviteRow, Joined};
use super::nav::{ChannelNav, RailItem, shell};
use super::permissions::Permissions;

/// The expiry choices, in minutes (0: never), as Discord offers them.
pub const EXPIRIES: &[(i64, &str)] =
    &[(30, "30 minutes"), (60, "1 hour"), (360, "6 hours"), (720, "12 hours"), (1440, "1 day"), (10080, "7 days"), (0, "Never")];
/// The maximum-uses choices (0: no limit).
pub const MAX_USES: &[(i64, &str)] = &[(0, "No limit"), (1, "1 use"), (5, "5 uses"), (10, "10 uses"), (25, "25 uses"), (50, "50 uses"), (100, "100 uses")];

pub struct InviteItem {
    pub code: String,
    pub creator: String,
    pub uses: String,
    pub expires: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "servers/invites.html")]
pub struct InvitesPage {
    page: Page,
    rail: Vec<RailItem>,
    rail_home: bool,
    nav: ChannelNav,
    invites: Vec<InviteItem>,
    can_revoke: bool,
    expiries: &'static [(i64, &'static str)],
    max_uses: &'static [(i64, &'static str)],
    error: Option<String>,
}

fn item(row: InviteRow, clock: &Clock) -> InviteItem {
    InviteItem {
        uses: if row.max_uses > 0 { format!("{} of {}", row.uses, row.max_uses) } else { row.uses.to_string() },
        expires: row.expires_at.map_or_else(|| "Never".to_string(), |at| clock.stamp(at)),
        creator: row.creator_name.unwrap_or_else(|| "Deleted account".into()),
        code: row.code,
    }
}

async fn invites_page(state: &AppState, user: &CurrentUser, id: i64, error: Option<String>) -> AppResult<Response> {
    let access = context::require(&state.store, user.id, id).await?;
    access.ensure(Permissions::CREATE_INVITE)?;
    let can_revoke = access.can(Permissions::MANAGE_SERVER);
    // Without MANAGE_SERVER one sees only the invites one made.
    let invites = invite_store::list(&state.store, id)
        .await?
        .into_iter()
        .filter(|i| can_revoke || i.creator_id == Some(user.id))
        .map(|row| item(row, &Clock::at_now(&user.zone)))
        .collect();
    let shell = shell(state, &access, None).await?;
    let status = if error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    let page = InvitesPage {
        page: Page::new(format!("Invites · {}", access.shape.server.name), Some(user)),
        rail: shell.rail,
        rail_home: false,
        nav: shell.nav,
        invites,
        can_revoke,
        expiries: EXPIRIES,
        max_uses: MAX_USES,
        error,
    };
    Ok((status, page).into_response())
}

pub async fn show(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>) -> AppResult<Response> {
    invites_page(&state, &user, id, None).await
}

#[derive(Deserialize, Default)]
pub struct NewInvite {
    #[serde(default)]
    expires: String,
    #[serde(default)]
    max_uses: String,
}

pub async fn create(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>, Form(input): Form<NewInvite>) -> AppResult<Response> {
    let access = context::require(&state.store, user.id, id).await?;
    access.ensure(Permissions::CREATE_INVITE)?;
    let expires = input.expires.parse::<i64>().ok().filter(|m| EXPIRIES.iter().any(|(e, _)| e == m));
    let uses = input.max_uses.parse::<i64>().ok().filter(|u| MAX_USES.iter().any(|(m, _)| m == u));
    let (Some(expires), Some(uses)) = (expires, uses) else {
        return invites_page(&state, &user, id, Some("Choose an expiry and a number of uses from the lists.".into())).await;
    };
    let expires_at = (expires > 0).then(|| now_ms() + expires * 60_000);
    let label = EXPIRIES.iter().find(|(e, _)| *e == expires).map_or("", |(_, l)| *l);
    let entry = Entry::new(id, user.id, Action::InviteCreate).target("invite", 0, "").change("", format!("expires: {label}; max uses: {uses}"));
    invite_store::create(&state.store, id, user.id, expires_at, uses, &entry).await?;
    Ok(Redirect::to(&format!("/s/{id}/invites")).into_response())
}

pub async fn revoke(State(state): State<AppState>, user: CurrentUser, Path((id, code)): Path<(i64, String)>) -> AppResult<Response> {
    let access = context::require(&state.store, user.id, id).await?;
    access.ensure(Permissions::MANAGE_SERVER)?;
    let entry = Entry::new(id, user.id, Action::InviteRevoke).target("invite", 0, &code);
    if !invite_store::revoke(&state.store, id, &code, &entry).await? {
        return Err(AppError::NotFound);
    }
    Ok(Redirect::to(&format!("/s/{id}/invites")).into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "servers/invite.html")]
pub struct InvitePage {
    page: Page,
    code: String,
    server_name: String,
    members: i64,
    signed_in: bool,
    dead: Option<&'static str>,
}

/// The public page behind an invite link. A GET never joins: the button does.
pub async fn landing(State(state): State<AppState>, MaybeUser(user): MaybeUser, Path(code): Path<String>) -> AppResult<Response> {
    let invite = invite_store::get(&state.store, &code).await?.ok_or(AppError::NotFound)?;
    if let Some(user) = &user
        && super::store::is_member(&state.store, invite.server_id, user.id).await?
    {
        return Ok(Redirect::to(&format!("/s/{}", invite.server_id)).into_response());
    }
    let title = format!("Join {}", invite.server_name);
    let page = match &user {
        Some(user) => Page::new(title, Some(user)),
        None => Page::anonymous(title),
    };
    // A banned visitor learns it here rather than from a refused button.
    let banned = match &user {
        Some(user) => super::moderation_store::banned(&state.store, invite.server_id, user.id).await?.is_some(),
        None => false,
    };
    let dead = if banned { Some("You are banned from this server.") } else { invite.dead_reason(now_ms()) };
    let status = if banned { StatusCode::FORBIDDEN } else if dead.is_some() { StatusCode::GONE } else { StatusCode::OK };
    Ok((status, InvitePage { page, code: invite.code, server_name: invite.server_name, members: invite.members, signed_in: user.is_some(), dead }).into_response())
}

pub async fn accept(State(state): State<AppState>, user: CurrentUser, Path(code): Path<String>) -> AppResult<Response> {
    let invite = invite_store::get(&state.store, &code).await?.ok_or(AppError::NotFound)?;
    match invite_store::join(&state.store, &code, user.id).await? {
        Joined::Joined(server) | Joined::AlreadyMember(server) => Ok(Redirect::to(&format!("/s/{server}")).into_response()),
        Joined::Banned => Err(AppError::Forbidden("You are banned from this server.")),
        Joined::Dead => {
            let page = InvitePage {
                page: Page::new(format!("Join {}", invite.server_name), Some(&user)),
                dead: Some(invite.dead_reason(now_ms()).unwrap_or("This invite no longer works.")),
                code: invite.code,
                server_name: invite.server_name,
                members: invite.members,
                signed_in: true,
            };
            Ok((StatusCode::GONE, page).into_response())
        }
    }
}
