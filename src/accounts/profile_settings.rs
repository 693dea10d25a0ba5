//! Settings → Profile (display name, pronouns, bio and the custom status) and
//! Settings → Privacy (last seen, who may DM me or add me to groups, the people I
//! blocked), and blocking or unblocking someone from their profile.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::now_ms;
use crate::web::Form;
use crate::web::layout::Page;

use super::privacy::{self, Audience};
use super::profile::{self, ProfileValues, StatusValues};
use super::CurrentUser;

#[derive(Deserialize, Default)]
pub struct ProfileInput {
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    pronouns: String,
    #[serde(default)]
    bio: String,
}

#[derive(Deserialize, Default)]
pub struct StatusInput {
    #[serde(default)]
    status_emoji: String,
    #[serde(default)]
    status_text: String,
    #[serde(default)]
    status_expiry: String,
    /// The "Clear status" button.
    #[serde(default)]
    clear: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "accounts/profile.html")]
pub struct ProfilePage {
    page: Page,
    username: String,
    profile: ProfileInput,
    status: StatusInput,
    /// The current avatar (initials when none).
    avatar_view: super::profile::AvatarView,
    /// "until …" of the status in force, if any.
    status_until: String,
    /// The zone as stored, or as typed when it was refused.
    pub(super) time_zone: String,
    errors: Vec<(&'static str, String)>,
    saved: Option<String>,
}

impl ProfilePage {
    fn error(&self, field: &str) -> Option<&str> {
        self.errors.iter().find(|(f, _)| *f == field).map(|(_, e)| e.as_str())
    }
}

#[derive(Deserialize)]
pub struct SavedQuery {
    saved: Option<String>,
}

async fn profile_page(state: &AppState, user: &CurrentUser) -> AppResult<ProfilePage> {
    let row = profile::by_id(&state.store, user.id).await?.ok_or(AppError::NotFound)?;
    let status = row.status();
    Ok(ProfilePage {
        page: Page::new("Profile", Some(user)),
        username: row.username.clone(),
        avatar_view: row.avatar(),
        // Their own page: in their zone (headers others see share one UTC text).
        status_until: match (status.is_set(), row.status_expires_at) {
            (true, Some(at)) => format!("until {}", crate::web::time::Clock::at_now(&user.zone).stamp(at)),
            _ => String::new(),
        },
        profile: ProfileInput { display_name: row.display_name, pronouns: row.pronouns, bio: row.bio },
        status: StatusInput { status_emoji: status.emoji, status_text: status.text, status_expiry: "today".into(), clear: String::new() },
        time_zone: if user.zone_chosen { user.zone.name().to_string() } else { String::new() },
        errors: Vec::new(),
        saved: None,
    })
}

pub async fn show_profile(State(state): State<AppState>, user: CurrentUser, Query(query): Query<SavedQuery>) -> AppResult<ProfilePage> {
    let mut page = profile_page(&state, &user).await?;
    page.saved = query.saved.map(|what| if what == "status" { "Your status was saved.".into() } else if what == "avatar" { "Your avatar was saved.".into() } else if what == "time-zone" { "Your time zone was saved.".into() } else { "Your profile was saved.".into() });
    Ok(page)
}

/// The page again (422) with the errors and, through `keep`, the form as typed.
pub(super) async fn refused(state: &AppState, user: &CurrentUser, errors: Vec<(&'static str, String)>, keep: impl FnOnce(&mut ProfilePage)) -> AppResult<Response> {
    let mut page = profile_page(state, user).await?;
    keep(&mut page);
    page.errors = errors;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}

/// 422: the avatar was not taken, and why.
pub(super) async fn refused_avatar(state: &AppState, user: &CurrentUser, why: String) -> AppResult<Response> {
    refused(state, user, vec![("avatar", why)], |_| ()).await
}

pub async fn save_profile(State(state): State<AppState>, user: CurrentUser, Form(input): Form<ProfileInput>) -> AppResult<Response> {
    match ProfileValues::parse(&input.display_name, &input.pronouns, &input.bio) {
        Ok(values) => {
            profile::save_profile(&state.store, user.id, &values).await?;
            Ok(Redirect::to("/settings/profile?saved=profile").into_response())
        }
        Err(errors) => refused(&state, &user, errors, |page| page.profile = input).await,
    }
}

pub async fn save_status(State(state): State<AppState>, user: CurrentUser, Form(input): Form<StatusInput>) -> AppResult<Response> {
    let parsed = if input.clear.is_empty() {
        StatusValues::parse(&input.status_emoji, &input.status_text, &input.status_expiry, now_ms(), &user.zone)
    } else {
        Ok(StatusValues { emoji: String::new(), text: String::new(), expires_at: None })
    };
    match parsed {
        Ok(values) => {
            profile::save_status(&state.store, user.id, &values).await?;
            state.realtime.announce_presence(&state.store, user.id, true).await;
            Ok(Redirect::to("/settings/profile?saved=status").into_response())
        }
        Err(errors) => refused(&state, &user, errors, |page| page.status = input).await,
    }
}

#[derive(Deserialize, Default)]
pub struct PrivacyInput {
    #[serde(default)]
    last_seen: String,
    #[serde(default)]
    dms: String,
    #[serde(default)]
    groups: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "accounts/privacy.html")]
pub struct PrivacyPage {
    page: Page,
    input: PrivacyInput,
    error: Option<String>,
    saved: bool,
    /// (id, username, shown name) of everyone the user blocked.
    blocked: Vec<(i64, String, String)>,
}

/// The three questions the page asks: (field, legend).
const QUESTIONS: [(&str, &str); 3] = [
    ("last_seen", "Who can see when I was last seen"),
    ("dms", "Who can start a direct message with me (others' messages arrive as requests)"),
    ("groups", "Who can add me to groups"),
];

impl PrivacyPage {
    fn is_chosen(&self, field: &str, key: &str) -> bool {
        let chosen = match field {
            "last_seen" => &self.input.last_seen,
            "dms" => &self.input.dms,
            _ => &self.input.groups,
        };
        chosen == key
    }
}

pub async fn show_privacy(State(state): State<AppState>, user: CurrentUser, Query(query): Query<SavedQuery>) -> AppResult<PrivacyPage> {
    let settings = privacy::settings_of(&state.store, user.id).await?;
    Ok(PrivacyPage {
        page: Page::new("Privacy", Some(&user)),
        input: PrivacyInput {
            last_seen: settings.last_seen.as_str().into(),
            dms: settings.dms.as_str().into(),
            groups: settings.groups.as_str().into(),
        },
        error: None,
        saved: query.saved.is_some(),
        blocked: privacy::blocked_list(&state.store, user.id).await?,
    })
}

pub async fn save_privacy(State(state): State<AppState>, user: CurrentUser, Form(input): Form<PrivacyInput>) -> AppResult<Response> {
    let parsed = (Audience::parse(&input.last_seen), Audience::parse(&input.dms), Audience::parse(&input.groups));
    let (Some(last_seen), Some(dms), Some(groups)) = parsed else {
        let page = PrivacyPage {
            page: Page::new("Privacy", Some(&user)),
            input,
            error: Some("Choose one answer to each question.".into()),
            saved: false,
            blocked: privacy::blocked_list(&state.store, user.id).await?,
        };
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
    };
    privacy::save(&state.store, user.id, privacy::Settings { last_seen, dms, groups }).await?;
    // Open pages show "last seen" as the new choice says.
    state.realtime.announce_presence(&state.store, user.id, true).await;
    Ok(Redirect::to("/settings/privacy?saved=1").into_response())
}

#[derive(Deserialize, Default)]
pub struct BackInput {
    /// Where the button was: the privacy page sends people back there.
    #[serde(default)]
    back: String,
}

pub async fn block(state: State<AppState>, user: CurrentUser, username: Path<String>, input: Form<BackInput>) -> AppResult<Redirect> {
    set_blocked(state, user, username, input, true).await
}

pub async fn unblock(state: State<AppState>, user: CurrentUser, username: Path<String>, input: Form<BackInput>) -> AppResult<Redirect> {
    set_blocked(state, user, username, input, false).await
}

async fn set_blocked(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(username): Path<String>,
    Form(input): Form<BackInput>,
    blocked: bool,
) -> AppResult<Redirect> {
    let person = profile::by_username(&state.store, &username).await?.ok_or(AppError::NotFound)?;
    if person.id == user.id {
        return Err(AppError::Unprocessable("You can't block yourself.".into()));
    }
    if blocked {
        privacy::block(&state.store, user.id, person.id).await?;
    } else {
        privacy::unblock(&state.store, user.id, person.id).await?;
    }
    // Their open pages stop (or start again) showing the user's presence and status.
    state.realtime.announce_presence(&state.store, user.id, true).await;
    Ok(if input.back == "privacy" { Redirect::to("/settings/privacy") } else { Redirect::to(&format!("/u/{}", person.username)) })
}
