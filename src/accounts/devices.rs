//! The Sessions settings page: every signed-in device of the user, with sign-out per
//! device and "sign out everywhere else".

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::response::Redirect;

use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::web::layout::Page;
use crate::web::time::Clock;

use super::{CurrentUser, store};

pub struct DeviceView {
    pub id: i64,
    pub label: String,
    pub ip: String,
    pub created: String,
    pub last_active: String,
    pub current: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "accounts/sessions.html")]
pub struct SessionsPage {
    page: Page,
    devices: Vec<DeviceView>,
}

pub async fn list(State(state): State<AppState>, user: CurrentUser) -> AppResult<SessionsPage> {
    let clock = Clock::at_now(&user.zone);
    let devices = store::list_devices(&state.store, user.id)
        .await?
        .into_iter()
        .map(|d| DeviceView {
            id: d.id,
            label: describe_user_agent(&d.user_agent),
            ip: d.ip,
            created: clock.stamp(d.created_at),
            last_active: clock.stamp(d.last_active_at),
            current: d.id == user.device_id,
        })
        .collect();
    Ok(SessionsPage { page: Page::new("Sessions", Some(&user)), devices })
}

pub async fn revoke(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>) -> AppResult<Redirect> {
    if id == user.device_id {
        // Signing out this device is what "Log out" is for; keep one meaning per button.
        return Ok(Redirect::to("/settings/sessions"));
    }
    if !store::delete_device(&state.store, user.id, id).await? {
        return Err(AppError::NotFound);
    }
    state.devices.forget(&[id]);
    state.realtime.revoke_devices(&[id]).await;
    Ok(Redirect::to("/settings/sessions"))
}

pub async fn revoke_others(State(state): State<AppState>, user: CurrentUser) -> AppResult<Redirect> {
    let signed_out = store::delete_other_devices(&state.store, user.id, user.device_id).await?;
    state.devices.forget(&signed_out);
    state.realtime.revoke_devices(&signed_out).await;
    Ok(Redirect::to("/settings/sessions"))
}

/// "Chrome on Linux" from a user agent string: enough for a person to recognise a
/// device, without a user-agent database.
pub fn describe_user_agent(ua: &str) -> String {
    let browser = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("Chromium/", "Chromium"),
        ("HeadlessChrome/", "Chrome (headless)"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
    ]
    .iter()
    .find(|(needle, _)| ua.contains(needle))
    .map(|(_, name)| *name);
    let os = [
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(needle, _)| ua.contains(needle))
    .map(|(_, name)| *name);
    match (browser, os) {
        (Some(b), Some(o)) => format!("{b} on {o}"),
        (Some(b), None) => b.to_string(),
        (None, Some(o)) => format!("Browser on {o}"),
        (None, None) => "Unknown device".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents() {
        let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";
        assert_eq!(describe_user_agent(chrome), "Chrome on Linux");
        let firefox = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:140.0) Gecko/20100101 Firefox/140.0";
        assert_eq!(describe_user_agent(firefox), "Firefox on Windows");
        let safari = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Mobile/15E148 Safari/604.1";
        assert_eq!(describe_user_agent(safari), "Safari on iOS");
        assert_eq!(describe_user_agent(""), "Unknown device");
    }
}
