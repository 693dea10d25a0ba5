//! Register, log in, log out.

use std::time::Duration;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tower_sessions::Session;

use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::web::Form;
use crate::web::layout::Page;
use crate::web::ratelimit::Rule;
use crate::web::request::ClientInfo;

use super::model::{DisplayName, Email, Username, check_password};
use super::store::{self, CreateUserError, NewUser};
use super::{MaybeUser, password, session};

const FIFTEEN_MINUTES: Duration = Duration::from_secs(15 * 60);
const ONE_HOUR: Duration = Duration::from_secs(3600);

#[derive(Default, Deserialize)]
pub struct RegisterInput {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub password: String,
    /// Where to go once signed in (an invite link, say); only a path on this site.
    #[serde(default)]
    pub next: String,
}

#[derive(Default)]
pub struct RegisterErrors {
    pub form: Option<String>,
    pub username: Option<&'static str>,
    pub email: Option<&'static str>,
    pub display_name: Option<&'static str>,
    pub password: Option<&'static str>,
}

#[derive(Template, WebTemplate)]
#[template(path = "accounts/register.html")]
pub struct RegisterPage {
    page: Page,
    input: RegisterInput,
    errors: RegisterErrors,
}

#[derive(Default, Deserialize)]
pub struct LoginInput {
    #[serde(default)]
    pub login: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub next: String,
}

/// `?next=/path` on the login and registration pages.
#[derive(Default, Deserialize)]
pub struct NextQuery {
    #[serde(default)]
    pub next: String,
}

/// `next` when it is a path on this site, else the home page: never another origin
/// (`//evil.example`, `/\\evil.example`) or anything with control characters.
pub fn local_path(next: &str) -> &str {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(|c| c.is_control() || c == '\\');
    if ok { next } else { "/" }
}

#[derive(Template, WebTemplate)]
#[template(path = "accounts/login.html")]
pub struct LoginPage {
    page: Page,
    login: String,
    next: String,
    error: Option<String>,
}

pub async fn register_page(MaybeUser(user): MaybeUser, Query(query): Query<NextQuery>) -> Response {
    if user.is_some() {
        return Redirect::to(local_path(&query.next)).into_response();
    }
    let input = RegisterInput { next: local_path(&query.next).to_string(), ..RegisterInput::default() };
    RegisterPage { page: Page::anonymous("Create your account"), input, errors: RegisterErrors::default() }.into_response()
}

fn register_failed(status: StatusCode, mut input: RegisterInput, errors: RegisterErrors) -> Response {
    input.password.clear();
    input.next = local_path(&input.next).to_string();
    (status, RegisterPage { page: Page::anonymous("Create your account"), input, errors }).into_response()
}

pub async fn register(
    State(state): State<AppState>,
    session: Session,
    client: ClientInfo,
    Form(input): Form<RegisterInput>,
) -> AppResult<Response> {
    let username = Username::parse(&input.username);
    let email = Email::parse(&input.email);
    let display_name = DisplayName::parse(&input.display_name);
    let related: Vec<&str> = [input.username.as_str(), input.email.as_str(), input.display_name.as_str()]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    let password_check = check_password(&input.password, &related);
    let (Ok(username), Ok(email), Ok(display_name), Ok(())) = (&username, &email, display_name, password_check) else {
        let errors = RegisterErrors {
            form: None,
            username: username.as_ref().err().copied(),
            email: email.as_ref().err().copied(),
            display_name: DisplayName::parse(&input.display_name).err(),
            password: password_check.err(),
        };
        return Ok(register_failed(StatusCode::UNPROCESSABLE_ENTITY, input, errors));
    };
    if let Err(retry_after_secs) =
        state.limiter.hit(&format!("register:{}", client.ip), Rule::new(state.config.register_limit, ONE_HOUR)).await
    {
        let errors = RegisterErrors {
            form: Some(AppError::TooManyRequests { retry_after_secs }.to_message()),
            ..RegisterErrors::default()
        };
        let mut response = register_failed(StatusCode::TOO_MANY_REQUESTS, input, errors);
        response.headers_mut().insert("retry-after", retry_after_secs.into());
        return Ok(response);
    }

    let hash = password::hash(input.password.clone()).await?;
    let new = NewUser { username: username.as_str(), email: email.as_str(), display_name: &display_name.into_string(), password_hash: &hash };
    let user_id = match store::create_user(&state.store, new).await {
        Ok(id) => id,
        Err(CreateUserError::UsernameTaken) => {
            let errors = RegisterErrors { username: Some("That username is taken. Try another."), ..RegisterErrors::default() };
            return Ok(register_failed(StatusCode::UNPROCESSABLE_ENTITY, input, errors));
        }
        Err(CreateUserError::EmailTaken) => {
            let errors = RegisterErrors { email: Some("An account with that email already exists. Log in instead?"), ..RegisterErrors::default() };
            return Ok(register_failed(StatusCode::UNPROCESSABLE_ENTITY, input, errors));
        }
        Err(CreateUserError::Db(error)) => return Err(error.into()),
    };
    let device_id = store::create_device(&state.store, user_id, &client.user_agent, &client.ip).await?;
    session::sign_in(&session, device_id).await?;
    tracing::info!(user_id, "account registered");
    Ok(Redirect::to(local_path(&input.next)).into_response())
}

pub async fn login_page(MaybeUser(user): MaybeUser, Query(query): Query<NextQuery>) -> Response {
    let next = local_path(&query.next).to_string();
    if user.is_some() {
        return Redirect::to(&next).into_response();
    }
    LoginPage { page: Page::anonymous("Log in"), login: String::new(), next, error: None }.into_response()
}

fn login_failed(status: StatusCode, login: String, next: &str, error: String) -> Response {
    let next = local_path(next).to_string();
    (status, LoginPage { page: Page::anonymous("Log in"), login, next, error: Some(error) }).into_response()
}

/// Wrong-password attempts are counted per account *and* address, so an attacker
/// cannot lock the owner out from elsewhere; every attempt also counts per address.
pub async fn login(
    State(state): State<AppState>,
    session: Session,
    client: ClientInfo,
    Form(input): Form<LoginInput>,
) -> AppResult<Response> {
    let login = input.login.trim().to_string();
    if login.is_empty() || input.password.is_empty() {
        return Ok(login_failed(StatusCode::UNPROCESSABLE_ENTITY, login, &input.next, "Enter your username or email and your password.".into()));
    }
    let account_key = format!("login:{}:{}", login.to_lowercase(), client.ip);
    let account_rule = Rule::new(state.config.login_limit, FIFTEEN_MINUTES);
    let limited = match state.limiter.hit(&format!("login-ip:{}", client.ip), Rule::new(state.config.login_ip_limit, FIFTEEN_MINUTES)).await {
        Ok(()) => state.limiter.check(&account_key, account_rule).await,
        refused => refused,
    };
    if let Err(retry_after_secs) = limited {
        let message = AppError::TooManyRequests { retry_after_secs }.to_message();
        let mut response = login_failed(StatusCode::TOO_MANY_REQUESTS, login, &input.next, message);
        response.headers_mut().insert("retry-after", retry_after_secs.into());
        return Ok(response);
    }

    let account = if input.password.len() > super::model::PASSWORD_MAX_BYTES { None } else { store::find_login(&state.store, &login).await? };
    let (user_id, hash) = match account {
        Some((id, hash)) => (Some(id), Some(hash)),
        None => (None, None),
    };
    let verified = password::verify(input.password, hash).await;
    let Some(user_id) = user_id.filter(|_| verified) else {
        let _ = state.limiter.hit(&account_key, account_rule).await;
        return Ok(login_failed(StatusCode::UNPROCESSABLE_ENTITY, login, &input.next, "That username or email and password do not match.".into()));
    };
    state.limiter.clear(&account_key).await;
    let device_id = store::create_device(&state.store, user_id, &client.user_agent, &client.ip).await?;
    session::sign_in(&session, device_id).await?;
    Ok(Redirect::to(local_path(&input.next)).into_response())
}

/// Ends this device's session: the device row goes, and so does the server-side
/// session, so a copy of the old cookie is worthless.
pub async fn logout(State(state): State<AppState>, session: Session) -> AppResult<Redirect> {
    if let Some(device_id) = session.get::<i64>(session::DEVICE_KEY).await? {
        let owner: Option<i64> = store::user_for_device(&state.store, device_id).await?.map(|(u, _)| u.id);
        if let Some(owner) = owner {
            store::delete_device(&state.store, owner, device_id).await?;
            state.devices.forget(&[device_id]);
            state.realtime.revoke_devices(&[device_id]).await;
        }
    }
    session.flush().await?;
    Ok(Redirect::to("/login"))
}
