//! Managing a server's channels and categories (MANAGE_CHANNELS): the channels page
//! with create, edit (name, topic, slowmode, category), up/down ordering, sync with
//! the category, and delete. Every form works without JavaScript.

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
use super::channel_store;
use super::context::{self, CategoryRow, ChannelRow, ServerAccess};
use super::model::{SLOWMODE_CHOICES, parse_category_name, parse_channel_name, parse_slowmode, parse_topic};
use super::nav::{ChannelNav, RailItem, shell};
use super::permissions::Permissions;

#[derive(Deserialize, Default)]
pub struct ChannelInput {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    topic: String,
    #[serde(default)]
    slowmode: String,
}

/// A form's state after a refused submit: which form, its message, what was typed.
pub struct Refused {
    pub form: String,
    pub message: String,
    pub input: ChannelInput,
}

#[derive(Template, WebTemplate)]
#[template(path = "servers/channels.html")]
pub struct ChannelsPage {
    page: Page,
    rail: Vec<RailItem>,
    rail_home: bool,
    nav: ChannelNav,
    categories: Vec<CategoryRow>,
    channels: Vec<ChannelRow>,
    slowmodes: &'static [(i64, &'static str)],
    /// Links to the permission override pages (MANAGE_ROLES).
    can_roles: bool,
    refused: Option<Refused>,
}

impl ChannelsPage {
    fn category_name(&self, id: &Option<i64>) -> &str {
        id.and_then(|id| self.categories.iter().find(|c| c.id == id)).map_or("No category", |c| c.name.as_str())
    }

    /// The typed value of `field` when `form` was refused, else `current`.
    fn typed<'a>(&'a self, form: &str, field: &str, current: &'a str) -> &'a str {
        match &self.refused {
            Some(r) if r.form == form => match field {
                "name" => &r.input.name,
                "topic" => &r.input.topic,
                _ => current,
            },
            _ => current,
        }
    }

    fn in_category(&self, channel: &ChannelRow, category: &CategoryRow) -> bool {
        channel.category_id == Some(category.id)
    }

    fn error_for(&self, form: &str) -> Option<&str> {
        self.refused.as_ref().filter(|r| r.form == form).map(|r| r.message.as_str())
    }
}

async fn manage(state: &AppState, user: &CurrentUser, id: i64) -> AppResult<ServerAccess> {
    let access = context::require(&state.store, user.id, id).await?;
    access.ensure(Permissions::MANAGE_CHANNELS)?;
    Ok(access)
}

async fn page(state: &AppState, user: &CurrentUser, access: ServerAccess, refused: Option<Refused>) -> AppResult<Response> {
    let shell = shell(state, &access, None).await?;
    let status = if refused.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    let page = ChannelsPage {
        page: Page::new(format!("Channels · {}", access.shape.server.name), Some(user)),
        rail: shell.rail,
        rail_home: false,
        nav: shell.nav,
        categories: access.shape.categories.clone(),
        channels: access.shape.channels.clone(),
        slowmodes: SLOWMODE_CHOICES,
        can_roles: access.can(Permissions::MANAGE_ROLES),
        refused,
    };
    Ok((status, page).into_response())
}

pub async fn show(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>) -> AppResult<Response> {
    let access = manage(&state, &user, id).await?;
    page(&state, &user, access, None).await
}

fn back(id: i64) -> Response {
    Redirect::to(&format!("/s/{id}/channels")).into_response()
}

/// The category picked in a form: none, or one of this server's.
fn category_of(access: &ServerAccess, text: &str) -> Result<Option<i64>, String> {
    if text.is_empty() || text == "none" {
        return Ok(None);
    }
    let id: i64 = text.parse().map_err(|_| "Choose a category from the list.".to_string())?;
    access.shape.categories.iter().find(|c| c.id == id).map(|c| Some(c.id)).ok_or_else(|| "Choose a category from the list.".into())
}

pub async fn create(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>, Form(input): Form<ChannelInput>) -> AppResult<Response> {
    let access = manage(&state, &user, id).await?;
    let kind = if input.kind == "voice" { "voice" } else { "text" };
    let checked = parse_channel_name(&input.name, kind).and_then(|name| Ok((name, category_of(&access, &input.category)?)));
    let (name, category) = match checked {
        Ok(values) => values,
        Err(message) => return page(&state, &user, access, Some(Refused { form: "new".into(), message, input })).await,
    };
    let entry = Entry::new(id, user.id, Action::ChannelCreate).target("channel", 0, &name).change("", kind);
    let channel = channel_store::create_channel(&state.store, id, user.id, kind, &name, category, &entry).await?;
    if kind == "text" {
        return Ok(Redirect::to(&format!("/c/{channel}")).into_response());
    }
    Ok(back(id))
}

fn channel_of(access: &ServerAccess, channel: i64) -> AppResult<ChannelRow> {
    // A channel of another server, or one this member cannot see, does not exist here.
    access
        .shape
        .channel(channel)
        .filter(|c| access.channel_permissions(c).contains(Permissions::VIEW_CHANNEL))
        .cloned()
        .ok_or(AppError::NotFound)
}

pub async fn update(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((id, channel)): Path<(i64, i64)>,
    Form(input): Form<ChannelInput>,
) -> AppResult<Response> {
    let access = manage(&state, &user, id).await?;
    let row = channel_of(&access, channel)?;
    let checked = parse_channel_name(&input.name, &row.kind).and_then(|name| {
        let topic = parse_topic(&input.topic)?;
        let slowmode = if row.is_voice() { 0 } else { parse_slowmode(&input.slowmode)? };
        Ok((name, topic, slowmode, category_of(&access, &input.category)?))
    });
    let (name, topic, slowmode, category) = match checked {
        Ok(values) => values,
        Err(message) => return page(&state, &user, access, Some(Refused { form: format!("channel-{channel}"), message, input })).await,
    };
    let before = format!("#{} · topic “{}” · slowmode {} s", row.name, row.topic, row.slowmode_seconds);
    let after = format!("#{name} · topic “{topic}” · slowmode {slowmode} s");
    if before != after || category != row.category_id {
        let entry = Entry::new(id, user.id, Action::ChannelUpdate).target("channel", channel, &name).change(before, after);
        let settings = channel_store::ChannelSettings { name: &name, topic: &topic, slowmode_seconds: slowmode, category };
        channel_store::update_channel(&state.store, id, channel, &settings, &entry).await?;
    }
    Ok(back(id))
}

pub async fn delete(State(state): State<AppState>, user: CurrentUser, Path((id, channel)): Path<(i64, i64)>) -> AppResult<Response> {
    let access = manage(&state, &user, id).await?;
    let row = channel_of(&access, channel)?;
    let entry = Entry::new(id, user.id, Action::ChannelDelete).target("channel", channel, &row.name);
    channel_store::delete_channel(&state.store, id, channel, &entry).await?;
    Ok(back(id))
}

async fn move_channel(state: AppState, user: CurrentUser, id: i64, channel: i64, up: bool) -> AppResult<Response> {
    let access = manage(&state, &user, id).await?;
    let row = channel_of(&access, channel)?;
    let entry = Entry::new(id, user.id, Action::ChannelUpdate).target("channel", channel, &row.name).change("", if up { "moved up" } else { "moved down" });
    channel_store::move_channel(&state.store, id, channel, up, &entry).await?;
    Ok(back(id))
}

pub async fn up(State(state): State<AppState>, user: CurrentUser, Path((id, channel)): Path<(i64, i64)>) -> AppResult<Response> {
    move_channel(state, user, id, channel, true).await
}

pub async fn down(State(state): State<AppState>, user: CurrentUser, Path((id, channel)): Path<(i64, i64)>) -> AppResult<Response> {
    move_channel(state, user, id, channel, false).await
}

#[derive(Deserialize, Default)]
pub struct SyncInput {
    #[serde(default)]
    synced: String,
}

pub async fn sync(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((id, channel)): Path<(i64, i64)>,
    Form(input): Form<SyncInput>,
) -> AppResult<Response> {
    let access = manage(&state, &user, id).await?;
    let row = channel_of(&access, channel)?;
    let synced = input.synced == "1";
    let entry = Entry::new(id, user.id, Action::OverrideUpdate)
        .target("channel", channel, &row.name)
        .change(if row.synced { "synced with category" } else { "own overrides" }, if synced { "synced with category" } else { "own overrides" });
    channel_store::set_synced(&state.store, id, channel, synced, &entry).await?;
    Ok(back(id))
}

#[derive(Deserialize, Default)]
pub struct CategoryInput {
    #[serde(default)]
    name: String,
}

fn refused_category(form: String, message: String, name: String) -> Refused {
    Refused { form, message, input: ChannelInput { name, ..ChannelInput::default() } }
}

pub async fn create_category(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>, Form(input): Form<CategoryInput>) -> AppResult<Response> {
    let access = manage(&state, &user, id).await?;
    let name = match parse_category_name(&input.name) {
        Ok(name) => name,
        Err(message) => return page(&state, &user, access, Some(refused_category("new-category".into(), message, input.name))).await,
    };
    let entry = Entry::new(id, user.id, Action::CategoryCreate).target("category", 0, &name);
    channel_store::create_category(&state.store, id, &name, &entry).await?;
    Ok(back(id))
}

fn category_row(access: &ServerAccess, category: i64) -> AppResult<CategoryRow> {
    access.shape.categories.iter().find(|c| c.id == category).cloned().ok_or(AppError::NotFound)
}

pub async fn rename_category(
    State(state): State<AppState>,
    user: CurrentUser,
    Path((id, category)): Path<(i64, i64)>,
    Form(input): Form<CategoryInput>,
) -> AppResult<Response> {
    let access = manage(&state, &user, id).await?;
    let row = category_row(&access, category)?;
    let name = match parse_category_name(&input.name) {
        Ok(name) => name,
        Err(message) => return page(&state, &user, access, Some(refused_category(format!("category-{category}"), message, input.name))).await,
    };
    let entry = Entry::new(id, user.id, Action::CategoryUpdate).target("category", category, &name).change(row.name.clone(), name.clone());
    channel_store::rename_category(&state.store, id, category, &name, &entry).await?;
    Ok(back(id))
}

pub async fn delete_category(State(state): State<AppState>, user: CurrentUser, Path((id, category)): Path<(i64, i64)>) -> AppResult<Response> {
    let access = manage(&state, &user, id).await?;
    let row = category_row(&access, category)?;
    let entry = Entry::new(id, user.id, Action::CategoryDelete).target("category", category, &row.name);
    channel_store::delete_category(&state.store, id, category, &entry).await?;
    Ok(back(id))
}

async fn move_category(state: AppState, user: CurrentUser, id: i64, category: i64, up: bool) -> AppResult<Response> {
    let access = manage(&state, &user, id).await?;
    let row = category_row(&access, category)?;
    let entry = Entry::new(id, user.id, Action::CategoryUpdate).target("category", category, &row.name).change("", if up { "moved up" } else { "moved down" });
    channel_store::move_category(&state.store, id, category, up, &entry).await?;
    Ok(back(id))
}

pub async fn category_up(State(state): State<AppState>, user: CurrentUser, Path((id, category)): Path<(i64, i64)>) -> AppResult<Response> {
    move_category(state, user, id, category, true).await
}

pub async fn category_down(State(state): State<AppState>, user: CurrentUser, Path((id, category)): Path<(i64, i64)>) -> AppResult<Response> {
    move_category(state, user, id, category, false).await
}
