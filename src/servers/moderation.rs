//! Moderation: a member's moderation page (`/s/{id}/members/{user}/moderate`) with the
//! kick, ban and timeout forms, and the bans list
//! with unban. Who may act: the permission (KICK_MEMBERS, BAN_MEMBERS,
//! MODERATE_MEMBERS) and the hierarchy — only on members whose highest role is strictly
//! below one's own, never on the owner or oneself. Every action writes an audit row.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::accounts::CurrentUser;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::now_ms;
use crate::web::Form;
use crate::web::layout::Page;
use crate::web::time::{Clock, format_time};

use super::audit::{Action, Entry};
use super::context::{self, MemberFacts, ServerAccess};
use super::moderation_store::{self, BanRow, MemberProfile};
use super::nav::{ChannelNav, RailItem, shell};
use super::permissions::Permissions;
use super::store;

/// Timeout lengths in seconds, as Discord offers them.
pub const TIMEOUTS: &[(i64, &str)] =
    &[(60, "60 seconds"), (300, "5 minutes"), (600, "10 minutes"), (3600, "1 hour"), (86_400, "1 day"), (604_800, "1 week")];
/// How far back a ban deletes the member's messages (seconds; 0: none).
pub const DELETE_WINDOWS: &[(&str, i64, &str)] =
    &[("none", 0, "Don't delete any"), ("hour", 3600, "Previous hour"), ("day", 86_400, "Previous 24 hours"), ("week", 604_800, "Previous 7 days")];

const REASON_MAX: usize = 512;

pub fn parse_reason(input: &str) -> Result<String, String> {
    let reason = input.trim();
    if reason.chars().count() > REASON_MAX {
        return Err(format!("Keep the reason to {REASON_MAX} characters."));
    }
    Ok(reason.to_string())
}

fn parse_timeout(input: &str) -> Result<i64, String> {
    let secs = input.trim().parse::<i64>().ok().filter(|s| TIMEOUTS.iter().any(|(t, _)| t == s));
    secs.ok_or_else(|| "Choose one of the timeout lengths.".to_string())
}

fn parse_window(input: &str) -> Result<i64, String> {
    let key = if input.trim().is_empty() { "none" } else { input.trim() };
    DELETE_WINDOWS.iter().find(|(k, _, _)| *k == key).map(|(_, secs, _)| *secs).ok_or_else(|| "Choose how much history to delete.".to_string())
}

/// Why `access` may not act on `target` at all, whatever the permission.
fn hierarchy_refusal(access: &ServerAccess, target: &MemberFacts) -> Option<&'static str> {
    if target.user_id == access.shape.server.owner_id {
        Some("Nobody can moderate the server's owner.")
    } else if target.user_id == access.me.user_id {
        Some("You cannot moderate yourself.")
    } else if access.shape.rank(&access.me) <= access.shape.rank(target) {
        Some("You can only moderate members whose highest role is below yours.")
    } else {
        None
    }
}

/// The viewer's server and the member named in the path; either missing → 404.
async fn load(state: &AppState, user: &CurrentUser, id: i64, user_id: i64) -> AppResult<(ServerAccess, MemberProfile, MemberFacts)> {
    let access = context::require(&state.store, user.id, id).await?;
    let member = moderation_store::member(&state.store, id, user_id).await?.ok_or(AppError::NotFound)?;
    let facts = crate::with_db!(&state.store, pool => crate::fetch_member_facts!(pool, id, member.user_id).await)?
        .pop()
        .ok_or(AppError::NotFound)?;
    Ok((access, member, facts))
}

/// Both checks before any action: the permission, then the hierarchy (403 either way).
fn ensure_may(access: &ServerAccess, permission: Permissions, target: &MemberFacts) -> AppResult<()> {
    access.ensure(permission)?;
    match hierarchy_refusal(access, target) {
        Some(why) => Err(AppError::Forbidden(why)),
        None => Ok(()),
    }
}

#[derive(Deserialize, Default)]
pub struct ModerationInput {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    delete: String,
    #[serde(default)]
    duration: String,
}

/// What one form on the member page shows again after bad input.
#[derive(Default)]
pub struct FormState {
    pub which: &'static str,
    pub reason: String,
    pub delete: String,
    pub duration: String,
    pub error: Option<String>,
}

impl FormState {
    /// The typed reason when this is the form that failed, else empty.
    pub fn reason_for(&self, which: &str) -> &str {
        if self.which == which { &self.reason } else { "" }
    }

    pub fn error_for(&self, which: &str) -> Option<&str> {
        if self.which == which { self.error.as_deref() } else { None }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "servers/moderate.html")]
pub struct MemberPage {
    page: Page,
    rail: Vec<RailItem>,
    rail_home: bool,
    nav: ChannelNav,
    member: MemberProfile,
    roles: Vec<String>,
    owner: bool,
    joined: String,
    timed_out_until: Option<String>,
    can_kick: bool,
    can_ban: bool,
    can_timeout: bool,
    refusal: Option<&'static str>,
    form: FormState,
    timeouts: &'static [(i64, &'static str)],
    windows: &'static [(&'static str, i64, &'static str)],
}

async fn member_page(state: &AppState, user: &CurrentUser, access: &ServerAccess, member: MemberProfile, facts: &MemberFacts, form: FormState) -> AppResult<MemberPage> {
    let shell = shell(state, access, None).await?;
    let refusal = hierarchy_refusal(access, facts);
    let moderates = access.can(Permissions::KICK_MEMBERS) || access.can(Permissions::BAN_MEMBERS) || access.can(Permissions::MODERATE_MEMBERS);
    let allowed = |p| access.can(p) && refusal.is_none();
    Ok(MemberPage {
        page: Page::new(format!("{} · {}", member.name(), access.shape.server.name), Some(user)),
        rail: shell.rail,
        rail_home: false,
        nav: shell.nav,
        roles: access.shape.held_roles(facts).iter().filter_map(|r| access.shape.role(r.id)).map(|r| r.name.clone()).collect(),
        owner: member.user_id == access.shape.server.owner_id,
        joined: Clock::at_now(&user.zone).stamp(member.joined_at),
        timed_out_until: member.timeout_until.filter(|&t| t > now_ms()).map(|t| Clock::at_now(&user.zone).stamp(t)),
        can_kick: allowed(Permissions::KICK_MEMBERS),
        can_ban: allowed(Permissions::BAN_MEMBERS),
        can_timeout: allowed(Permissions::MODERATE_MEMBERS),
        // Only moderators learn why they cannot act; others just see the profile.
        refusal: refusal.filter(|_| moderates && member.user_id != user.id),
        member,
        form,
        timeouts: TIMEOUTS,
        windows: DELETE_WINDOWS,
    })
}

pub async fn show(State(state): State<AppState>, user: CurrentUser, Path((id, member)): Path<(i64, i64)>) -> AppResult<MemberPage> {
    let (access, member, facts) = load(&state, &user, id, member).await?;
    member_page(&state, &user, &access, member, &facts, FormState::default()).await
}

/// The member page again with `which` form's input and error: 422.
async fn invalid(state: &AppState, user: &CurrentUser, loaded: (ServerAccess, MemberProfile, MemberFacts), which: &'static str, input: ModerationInput, why: String) -> AppResult<Response> {
    let (access, member, facts) = loaded;
    let form = FormState { which, reason: input.reason, delete: input.delete, duration: input.duration, error: Some(why) };
    let page = member_page(state, user, &access, member, &facts, form).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}

fn entry(access: &ServerAccess, actor: i64, action: Action, member: &MemberProfile, reason: &str) -> Entry {
    Entry::new(access.id(), actor, action).target("member", member.user_id, &member.username).reason(reason)
}

/// The start every moderation form shares: the member, the permission and hierarchy
/// checks (403), then `parse` on the input; bad input comes back as `Err(page)` (422).
async fn prepare<T>(
    state: &AppState,
    user: &CurrentUser,
    (id, member): (i64, i64),
    permission: Permissions,
    which: &'static str,
    input: ModerationInput,
    parse: impl FnOnce(&ModerationInput) -> Result<T, String>,
) -> AppResult<Result<(ServerAccess, MemberProfile, T), Response>> {
    let loaded = load(state, user, id, member).await?;
    ensure_may(&loaded.0, permission, &loaded.2)?;
    match parse(&input) {
        Ok(value) => Ok(Ok((loaded.0, loaded.1, value))),
        Err(why) => Ok(Err(invalid(state, user, loaded, which, input, why).await?)),
    }
}

pub async fn kick(State(state): State<AppState>, user: CurrentUser, Path(path): Path<(i64, i64)>, Form(input): Form<ModerationInput>) -> AppResult<Response> {
    let id = path.0;
    let (access, member, reason) = match prepare(&state, &user, path, Permissions::KICK_MEMBERS, "kick", input, |i| parse_reason(&i.reason)).await? {
        Ok(values) => values,
        Err(page) => return Ok(page),
    };
    let audit = entry(&access, user.id, Action::MemberKick, &member, &reason);
    store::remove_member(&state.store, id, member.user_id, Some(&audit)).await?;
    Ok(Redirect::to(&format!("/s/{id}")).into_response())
}

pub async fn ban(State(state): State<AppState>, user: CurrentUser, Path(path): Path<(i64, i64)>, Form(input): Form<ModerationInput>) -> AppResult<Response> {
    let id = path.0;
    let parse = |i: &ModerationInput| Ok((parse_reason(&i.reason)?, parse_window(&i.delete)?));
    let (access, member, (reason, window)) = match prepare(&state, &user, path, Permissions::BAN_MEMBERS, "ban", input, parse).await? {
        Ok(values) => values,
        Err(page) => return Ok(page),
    };
    let label = DELETE_WINDOWS.iter().find(|(_, s, _)| *s == window).map_or("", |(_, _, l)| *l);
    let audit = entry(&access, user.id, Action::MemberBan, &member, &reason).change("member", format!("banned; messages: {}", label.to_lowercase()));
    let since = (window > 0).then(|| now_ms() - window * 1000);
    if moderation_store::ban(&state.store, id, member.user_id, user.id, &reason, since, &audit).await? > 0 {
        // The swept messages' files go with them.
        crate::files::sweep::soon(&state);
    }
    Ok(Redirect::to(&format!("/s/{id}/bans")).into_response())
}

pub async fn timeout(State(state): State<AppState>, user: CurrentUser, Path(path): Path<(i64, i64)>, Form(input): Form<ModerationInput>) -> AppResult<Response> {
    let id = path.0;
    let parse = |i: &ModerationInput| Ok((parse_reason(&i.reason)?, parse_timeout(&i.duration)?));
    let (access, member, (reason, secs)) = match prepare(&state, &user, path, Permissions::MODERATE_MEMBERS, "timeout", input, parse).await? {
        Ok(values) => values,
        Err(page) => return Ok(page),
    };
    let until = now_ms() + secs * 1000;
    let before = member.timeout_until.filter(|&t| t > now_ms()).map_or_else(|| "not timed out".to_string(), |t| format!("until {}", format_time(t)));
    let audit = entry(&access, user.id, Action::MemberTimeout, &member, &reason).change(before, format!("until {}", format_time(until)));
    moderation_store::set_timeout(&state.store, id, member.user_id, Some(until), &audit).await?;
    Ok(Redirect::to(&format!("/s/{id}/members/{}/moderate", member.user_id)).into_response())
}

pub async fn remove_timeout(State(state): State<AppState>, user: CurrentUser, Path((id, member)): Path<(i64, i64)>) -> AppResult<Response> {
    let (access, member, facts) = load(&state, &user, id, member).await?;
    ensure_may(&access, Permissions::MODERATE_MEMBERS, &facts)?;
    if let Some(until) = member.timeout_until.filter(|&t| t > now_ms()) {
        let audit = entry(&access, user.id, Action::MemberTimeout, &member, "").change(format!("until {}", format_time(until)), "not timed out");
        moderation_store::set_timeout(&state.store, id, member.user_id, None, &audit).await?;
    }
    Ok(Redirect::to(&format!("/s/{id}/members/{}/moderate", member.user_id)).into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "servers/bans.html")]
pub struct BansPage {
    page: Page,
    rail: Vec<RailItem>,
    rail_home: bool,
    nav: ChannelNav,
    bans: Vec<BanRow>,
    clock: Clock,
}

impl BansPage {
    fn when(&self, ms: &i64) -> String {
        self.clock.stamp(*ms)
    }
}

pub async fn bans(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>) -> AppResult<BansPage> {
    let access = context::require(&state.store, user.id, id).await?;
    access.ensure(Permissions::BAN_MEMBERS)?;
    let shell = shell(&state, &access, None).await?;
    Ok(BansPage {
        page: Page::new(format!("Bans · {}", access.shape.server.name), Some(&user)),
        rail: shell.rail,
        rail_home: false,
        nav: shell.nav,
        bans: moderation_store::bans(&state.store, id).await?,
        clock: Clock::at_now(&user.zone),
    })
}

pub async fn unban(State(state): State<AppState>, user: CurrentUser, Path((id, target)): Path<(i64, i64)>) -> AppResult<Response> {
    let access = context::require(&state.store, user.id, id).await?;
    access.ensure(Permissions::BAN_MEMBERS)?;
    let name = moderation_store::banned(&state.store, id, target).await?.ok_or(AppError::NotFound)?;
    let audit = Entry::new(id, user.id, Action::MemberUnban).target("member", target, &name).change("banned", "not banned");
    if !moderation_store::unban(&state.store, id, target, &audit).await? {
        return Err(AppError::NotFound);
    }
    Ok(Redirect::to(&format!("/s/{id}/bans")).into_response())
}
