//! The audit log page: a server's moderator and admin actions, newest first, for those
//! with VIEW_AUDIT_LOG; filtered by actor (username) and action, paged by id.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::accounts::CurrentUser;
use crate::error::AppResult;
use crate::state::AppState;
use crate::web::layout::Page;
use crate::web::time::{Clock, iso};

use super::audit::{self, ACTIONS, Action, AuditRow};
use super::context;
use super::nav::{ChannelNav, RailItem, shell};
use super::permissions::Permissions;
use super::store;

/// Rows per page; `audit::list` returns at most this many.
const PAGE: usize = 100;

/// Filters come as text so that a hand-edited URL is a message, never a 400.
#[derive(Deserialize, Default)]
pub struct AuditQuery {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    before: String,
}

pub struct AuditItem {
    pub actor: String,
    pub label: &'static str,
    pub target: String,
    pub before: String,
    pub after: String,
    pub reason: String,
    pub time_iso: String,
    pub time_label: String,
}

fn item(row: AuditRow, clock: &Clock) -> AuditItem {
    AuditItem {
        actor: row.actor_name.unwrap_or_else(|| "Deleted account".into()),
        label: Action::label_of(&row.action),
        target: if row.target_kind.is_empty() { row.target_name } else { format!("{} {}", row.target_kind, row.target_name) },
        before: row.before_text,
        after: row.after_text,
        reason: row.reason,
        time_iso: iso(row.created_at),
        time_label: clock.stamp(row.created_at),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "servers/audit.html")]
pub struct AuditPage {
    page: Page,
    rail: Vec<RailItem>,
    rail_home: bool,
    nav: ChannelNav,
    items: Vec<AuditItem>,
    actor: String,
    action: String,
    actions: Vec<(&'static str, &'static str)>,
    error: Option<String>,
    /// The query for the next (older) page, when there may be one.
    older: Option<String>,
}

pub async fn show(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>, Query(query): Query<AuditQuery>) -> AppResult<Response> {
    let access = context::require(&state.store, user.id, id).await?;
    access.ensure(Permissions::VIEW_AUDIT_LOG)?;
    let mut error = None;
    let actor_name = query.actor.trim().trim_start_matches('@').to_lowercase();
    let actor = if actor_name.is_empty() {
        None
    } else {
        match store::user_by_username(&state.store, &actor_name).await? {
            Some((actor_id, _)) => Some(actor_id),
            None => {
                error = Some(format!("Nobody is called @{actor_name}."));
                None
            }
        }
    };
    let action = query.action.trim();
    if !action.is_empty() && !ACTIONS.iter().any(|(_, key, _)| *key == action) {
        error = Some("Choose an action from the list.".into());
    }
    let rows = if error.is_some() {
        Vec::new()
    } else {
        let before = query.before.trim().parse::<i64>().ok().filter(|b| *b > 0);
        audit::list(&state.store, id, actor, Some(action).filter(|a| !a.is_empty()), before).await?
    };
    let older = (rows.len() >= PAGE).then(|| {
        let last = rows.last().map_or(0, |r| r.id);
        // Both filters were checked above (an existing username, a known key): URL-safe.
        format!("actor={actor_name}&action={action}&before={last}")
    });
    let shell = shell(&state, &access, None).await?;
    let status = if error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    let page = AuditPage {
        page: Page::new(format!("Audit log · {}", access.shape.server.name), Some(&user)),
        rail: shell.rail,
        rail_home: false,
        nav: shell.nav,
        items: rows.into_iter().map(|row| item(row, &Clock::at_now(&user.zone))).collect(),
        actor: query.actor,
        action: action.to_string(),
        actions: ACTIONS.iter().map(|(_, key, label)| (*key, *label)).collect(),
        error,
        older,
    };
    Ok((status, page).into_response())
}
