//! Changing the password: the current one is required, and every other signed-in
//! device is signed out (the usual reason to change it is a suspected leak).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::error::AppResult;
use crate::state::AppState;
use crate::web::Form;
use crate::web::layout::Page;
use crate::web::request::ClientInfo;

use super::model::check_password;
use super::{CurrentUser, password, store};

#[derive(Deserialize)]
pub struct PasswordInput {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "accounts/password.html")]
pub struct PasswordPage {
    page: Page,
    error: Option<String>,
    done: bool,
}

pub async fn password_page(user: CurrentUser, query: axum::extract::RawQuery) -> PasswordPage {
    let done = query.0.as_deref() == Some("changed=1");
    PasswordPage { page: Page::new("Change password", Some(&user)), error: None, done }
}

pub async fn change_password(
    State(state): State<AppState>,
    user: CurrentUser,
    client: ClientInfo,
    Form(input): Form<PasswordInput>,
) -> AppResult<Response> {
    let failed = |status: StatusCode, message: String| {
        (status, PasswordPage { page: Page::new("Change password", Some(&user)), error: Some(message), done: false }).into_response()
    };
    let limit_key = format!("login:{}:{}", user.username, client.ip);
    let rule = crate::web::ratelimit::Rule::new(state.config.login_limit, std::time::Duration::from_secs(900));
    if let Err(retry_after_secs) = state.limiter.check(&limit_key, rule).await {
        return Ok(failed(StatusCode::TOO_MANY_REQUESTS, crate::error::AppError::TooManyRequests { retry_after_secs }.to_message()));
    }
    let stored = store::password_hash(&state.store, user.id).await?;
    if !password::verify(input.current_password, stored).await {
        let _ = state.limiter.hit(&limit_key, rule).await;
        return Ok(failed(StatusCode::UNPROCESSABLE_ENTITY, "Your current password is not correct.".into()));
    }
    if let Err(why) = check_password(&input.new_password, &[&user.username, &user.display_name]) {
        return Ok(failed(StatusCode::UNPROCESSABLE_ENTITY, why.into()));
    }
    let hash = password::hash(input.new_password).await?;
    store::set_password_hash(&state.store, user.id, &hash).await?;
    let signed_out = store::delete_other_devices(&state.store, user.id, user.device_id).await?;
    state.devices.forget(&signed_out);
    state.realtime.revoke_devices(&signed_out).await;
    Ok(Redirect::to("/settings/password?changed=1").into_response())
}
