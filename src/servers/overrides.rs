//! Permission overrides on one channel or one category (MANAGE_ROLES, as Discord asks
//! for overwrites, and the channel must be visible): the overrides in force, for roles
//! and single members, each permission as allow / inherit / deny; adding one for a role
//! or a member; removing one. A synced channel shows its category's and links there;
//! editing them gives the channel its own copy (it stops following the category).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::accounts::CurrentUser;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::web::Form;
use crate::web::layout::Page;

use super::audit::{Action, Entry};
use super::context::{OverrideRow, ServerAccess};
use super::nav::{ChannelNav, RailItem, shell};
use super::override_store::{self, Slot};
use super::permissions::{self, ALL, Override, Permissions};
use super::roles::{HELD_ONLY, manage};
use super::store;

/// The channel or category whose overrides a page shows.
struct Target {
    kind: &'static str,
    id: i64,
    title: String,
    /// For a channel: (category id, name) when it has a category.
    category: Option<(i64, String)>,
    synced: bool,
    /// What the actor holds there: the limit of what they may allow or deny.
    actor_perms: Permissions,
}

impl Target {
    /// Where the overrides in force are stored: a synced channel's are its category's.
    fn source(&self) -> (&'static str, i64) {
        match &self.category {
            Some((category, _)) if self.synced => ("category", *category),
            _ => (self.kind, self.id),
        }
    }

    /// (channel, category) when a write must first give a synced channel its own copy.
    fn unsync(&self) -> Option<(i64, i64)> {
        self.category.as_ref().filter(|_| self.synced && self.kind == "channel").map(|(c, _)| (self.id, *c))
    }

    fn path(&self, server: i64) -> String {
        format!("/s/{server}/permissions/{}/{}", self.kind, self.id)
    }
}

fn target(access: &ServerAccess, kind: &str, id: i64) -> AppResult<Target> {
    match kind {
        "channel" => {
            let channel = access.shape.channel(id).ok_or(AppError::NotFound)?;
            let actor_perms = access.channel_permissions(channel);
            if !actor_perms.contains(Permissions::VIEW_CHANNEL) {
                return Err(AppError::NotFound);
            }
            let category = channel.category_id.and_then(|c| access.shape.categories.iter().find(|x| x.id == c)).map(|c| (c.id, c.name.clone()));
            let title = if channel.is_voice() { format!("🔊 {}", channel.name) } else { format!("#{}", channel.name) };
            Ok(Target { kind: "channel", id, title, category, synced: channel.synced, actor_perms })
        }
        "category" => {
            let category = access.shape.categories.iter().find(|c| c.id == id).ok_or(AppError::NotFound)?;
            Ok(Target { kind: "category", id, title: format!("category {}", category.name), category: None, synced: false, actor_perms: access.permissions })
        }
        _ => Err(AppError::NotFound),
    }
}

pub struct Choice {
    pub key: &'static str,
    pub label: &'static str,
    pub help: &'static str,
    /// "allow" | "inherit" | "deny".
    pub state: &'static str,
}

pub struct OverrideItem {
    pub subject_kind: String,
    pub subject_id: i64,
    pub label: String,
    pub choices: Vec<Choice>,
}

/// ADMINISTRATOR is a server-wide standing no override can touch, so it is not offered.
fn overridable() -> impl Iterator<Item = &'static (Permissions, &'static str, &'static str, &'static str)> {
    ALL.iter().filter(|(p, ..)| *p != Permissions::ADMINISTRATOR)
}

fn choices(value: Override) -> Vec<Choice> {
    overridable()
        .map(|&(p, key, label, help)| {
            let state = if value.allow.contains(p) { "allow" } else if value.deny.contains(p) { "deny" } else { "inherit" };
            Choice { key, label, help, state }
        })
        .collect()
}

#[derive(Template, WebTemplate)]
#[template(path = "servers/overrides.html")]
pub struct OverridesPage {
    page: Page,
    rail: Vec<RailItem>,
    rail_home: bool,
    nav: ChannelNav,
    kind: &'static str,
    target_id: i64,
    title: String,
    /// A synced channel's category (id, name).
    follows: Option<(i64, String)>,
    entries: Vec<OverrideItem>,
    free_roles: Vec<(i64, String)>,
    username: String,
    error: Option<String>,
}

async fn page(state: &AppState, user: &CurrentUser, access: &ServerAccess, target: &Target, username: String, error: Option<String>) -> AppResult<Response> {
    let shell = shell(state, access, None).await?;
    let (kind, id) = target.source();
    let rows: Vec<&OverrideRow> = access.shape.overrides.iter().filter(|o| o.target_kind == kind && o.target_id == id).collect();
    let mut entries = Vec::new();
    // Roles highest first (@everyone last), then members by username.
    for role in &access.shape.roles {
        if let Some(o) = rows.iter().find(|o| o.subject_kind == "role" && o.subject_id == role.id) {
            entries.push(OverrideItem { subject_kind: "role".into(), subject_id: role.id, label: role.name.clone(), choices: choices(value_of(o)) });
        }
    }
    // Member overrides are few; each is looked up, so none hides behind a long member list.
    let mut people = Vec::new();
    for o in rows.iter().filter(|o| o.subject_kind == "member") {
        if let Some(member) = super::role_store::member(&state.store, access.id(), o.subject_id).await? {
            people.push(OverrideItem { subject_kind: "member".into(), subject_id: member.user_id, label: format!("@{}", member.username), choices: choices(value_of(o)) });
        }
    }
    people.sort_by(|a, b| a.label.cmp(&b.label));
    entries.extend(people);
    let free_roles = access
        .shape
        .roles
        .iter()
        .filter(|r| !rows.iter().any(|o| o.subject_kind == "role" && o.subject_id == r.id))
        .map(|r| (r.id, r.name.clone()))
        .collect();
    let status = if error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    let page = OverridesPage {
        page: Page::new(format!("Permissions of {} · {}", target.title, access.shape.server.name), Some(user)),
        rail: shell.rail,
        rail_home: false,
        nav: shell.nav,
        kind: target.kind,
        target_id: target.id,
        title: target.title.clone(),
        follows: target.category.clone().filter(|_| target.synced),
        entries,
        free_roles,
        username,
        error,
    };
    Ok((status, page).into_response())
}

fn value_of(row: &OverrideRow) -> Override {
    Override { allow: Permissions::from_bits(row.allow_bits as u64), deny: Permissions::from_bits(row.deny_bits as u64) }
}

async fn open(state: &AppState, user: &CurrentUser, id: i64, kind: &str, target_id: i64) -> AppResult<(ServerAccess, Target)> {
    let access = manage(state, user, id).await?;
    let target = target(&access, kind, target_id)?;
    Ok((access, target))
}

pub async fn show(State(state): State<AppState>, user: CurrentUser, Path((id, kind, target_id)): Path<(i64, String, i64)>) -> AppResult<Response> {
    let (access, target) = open(&state, &user, id, &kind, target_id).await?;
    page(&state, &user, &access, &target, String::new(), None).await
}

#[derive(Deserialize, Default)]
pub struct AddInput {
    #[serde(default)]
    role: String,
    #[serde(default)]
    username: String,
}

/// "role Mods: allow view_channel; deny send_messages": an override as the audit log shows it.
fn describe(label: &str, value: Option<Override>) -> String {
    match value {
        None => String::new(),
        Some(o) => {
            let list = |p: Permissions| p.keys().collect::<Vec<_>>().join(", ");
            format!("{label}: allow {}; deny {}", list(o.allow), list(o.deny))
        }
    }
}

fn audit(access: &ServerAccess, actor: i64, target: &Target, label: &str, before: Option<Override>, after: Option<Override>) -> Entry {
    Entry::new(access.id(), actor, Action::OverrideUpdate).target(target.kind, target.id, &target.title).change(describe(label, before), describe(label, after))
}

/// Adds an override (everything inherited) for a role or a member, then shows it.
pub async fn add(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((id, kind, target_id)): Path<(i64, String, i64)>,
    Form(input): Form<AddInput>,
) -> AppResult<Response> {
    let (access, target) = open(&state, &user, id, &kind, target_id).await?;
    let (subject_kind, subject_id, label) = if let Some(role) = input.role.parse::<i64>().ok().and_then(|r| access.shape.role(r)) {
        ("role", role.id, format!("role {}", role.name))
    } else if !input.username.trim().is_empty() {
        let found = store::user_by_username(&state.store, &input.username).await?;
        match found {
            Some((uid, name)) if store::is_member(&state.store, id, uid).await? => ("member", uid, format!("@{name}")),
            _ => return page(&state, &user, &access, &target, input.username, Some("Type the username of a member of this server.".into())).await,
        }
    } else {
        return page(&state, &user, &access, &target, input.username, Some("Choose a role or type a member's username.".into())).await;
    };
    let slot = Slot { target_kind: target.kind, target_id: target.id, subject_kind, subject_id };
    let entry = audit(&access, user.id, &target, &label, None, Some(Override::default()));
    override_store::put(&state.store, id, slot, Override::default(), true, target.unsync(), &entry).await?;
    Ok(Redirect::to(&format!("{}#override-{subject_kind}-{subject_id}", target.path(id))).into_response())
}

fn subject(access: &ServerAccess, target: &Target, kind: &str, subject_id: i64) -> AppResult<(&'static str, Option<Override>)> {
    let kind: &'static str = match kind {
        "role" if access.shape.role(subject_id).is_some() => "role",
        "member" => "member",
        _ => return Err(AppError::NotFound),
    };
    let (source_kind, source_id) = target.source();
    let current = access
        .shape
        .overrides
        .iter()
        .find(|o| o.target_kind == source_kind && o.target_id == source_id && o.subject_kind == kind && o.subject_id == subject_id)
        .map(value_of);
    Ok((kind, current))
}

async fn label_of(state: &AppState, access: &ServerAccess, kind: &str, subject_id: i64) -> AppResult<String> {
    if let Some(role) = access.shape.role(subject_id).filter(|_| kind == "role") {
        return Ok(format!("role {}", role.name));
    }
    let member = super::role_store::member(&state.store, access.id(), subject_id).await?;
    Ok(member.map_or_else(|| format!("member {subject_id}"), |m| format!("@{}", m.username)))
}

/// Saves one override's allow / inherit / deny choices. Only the permissions whose
/// choice changes must be ones the actor holds there.
pub async fn save(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((id, kind, target_id, subject_kind, subject_id)): Path<(i64, String, i64, String, i64)>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> AppResult<Response> {
    let (access, target) = open(&state, &user, id, &kind, target_id).await?;
    let (subject_kind, current) = subject(&access, &target, &subject_kind, subject_id)?;
    let current = current.ok_or(AppError::NotFound)?;
    let mut wanted = Override::default();
    for &(p, key, ..) in overridable() {
        match pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()) {
            Some("allow") => wanted.allow |= p,
            Some("deny") => wanted.deny |= p,
            _ => {}
        }
    }
    if !permissions::can_change(target.actor_perms, current.allow, wanted.allow) || !permissions::can_change(target.actor_perms, current.deny, wanted.deny) {
        return Err(AppError::Forbidden(HELD_ONLY));
    }
    if wanted != current {
        let slot = Slot { target_kind: target.kind, target_id: target.id, subject_kind, subject_id };
        let entry = audit(&access, user.id, &target, &label_of(&state, &access, subject_kind, subject_id).await?, Some(current), Some(wanted));
        override_store::put(&state.store, id, slot, wanted, false, target.unsync(), &entry).await?;
    }
    Ok(Redirect::to(&format!("{}#override-{subject_kind}-{subject_id}", target.path(id))).into_response())
}

/// Removes an override; what it allowed or denied must be the actor's to change.
pub async fn remove(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((id, kind, target_id, subject_kind, subject_id)): Path<(i64, String, i64, String, i64)>,
) -> AppResult<Response> {
    let (access, target) = open(&state, &user, id, &kind, target_id).await?;
    let (subject_kind, current) = subject(&access, &target, &subject_kind, subject_id)?;
    let current = current.ok_or(AppError::NotFound)?;
    if !permissions::can_grant(target.actor_perms, current.allow | current.deny) {
        return Err(AppError::Forbidden(HELD_ONLY));
    }
    let slot = Slot { target_kind: target.kind, target_id: target.id, subject_kind, subject_id };
    let entry = audit(&access, user.id, &target, &label_of(&state, &access, subject_kind, subject_id).await?, Some(current), None);
    override_store::remove(&state.store, id, slot, target.unsync(), &entry).await?;
    Ok(Redirect::to(&target.path(id)).into_response())
}
