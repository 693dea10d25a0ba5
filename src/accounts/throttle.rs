//! Per-user limits on classes of routes (here because the budget is the signed-in
//! person's), applied as a route layer so handlers stay
//! as they are: `limited(state, Class::Write, post(handler))`.
//!
//! A refused request never reaches its handler. An htmx request gets the reason as
//! a fragment for `#flash` (the form it came from stays as typed); a plain form post
//! or page gets a "Slow down" page that says why and how long to wait, with what the
//! person typed in a form that sends it again. Both carry `Retry-After`.
//!
//! Sends are limited in their handler instead (`--send-limit`), which re-renders the
//! conversation with the draft; sign-in and registration have their own keys.

use askama::Template;
use axum::extract::{FromRequest, FromRequestParts, Query, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::MethodRouter;

use crate::accounts::CurrentUser;
use crate::error::{AppError, ErrorInfo};
use crate::state::AppState;
use crate::web::layout::Page;
use crate::web::ratelimit::Rule;
use crate::web::shell::wants_fragment;

const TEN_SECONDS: std::time::Duration = std::time::Duration::from_secs(10);
const ONE_MINUTE: std::time::Duration = std::time::Duration::from_secs(60);

/// Which budget a route spends from.
#[derive(Clone, Copy, Debug)]
pub enum Class {
    /// Changes to what exists: edits, reactions, pins, renames, roles, removals,
    /// leaving, status, password and sessions (`--write-limit` per 10 s).
    Write,
    /// Read marks, which app.js posts by itself as messages arrive: the same number
    /// as `Write` but a budget of their own, so a busy chat never uses up the
    /// person's reactions and edits.
    Read,
    /// New groups, new direct messages and added members (`--create-limit` per minute).
    Create,
    /// Search and people lookups (`--search-limit` per 10 s).
    Search,
}

impl Class {
    fn key(self, user_id: i64) -> String {
        let name = match self {
            Class::Write => "write",
            Class::Read => "read",
            Class::Create => "create",
            Class::Search => "search",
        };
        format!("{name}:{user_id}")
    }

    fn rule(self, config: &crate::Config) -> Rule {
        match self {
            Class::Write | Class::Read => Rule::new(config.write_limit, TEN_SECONDS),
            Class::Create => Rule::new(config.create_limit, ONE_MINUTE),
            Class::Search => Rule::new(config.search_limit, TEN_SECONDS),
        }
    }
}

/// `route` with every request counted against the signed-in user's `class` budget.
pub fn limited(state: &AppState, class: Class, route: MethodRouter<AppState>) -> MethodRouter<AppState> {
    route.route_layer(axum::middleware::from_fn_with_state((state.clone(), class), throttle))
}

async fn throttle(State((state, class)): State<(AppState, Class)>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    // Signed out (or failing): the handler answers as it would have.
    let Ok(user) = CurrentUser::from_request_parts(&mut parts, &state).await else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    match state.limiter.hit(&class.key(user.id), class.rule(&state.config)).await {
        Ok(()) => next.run(Request::from_parts(parts, body)).await,
        Err(retry_after_secs) => refused(&state, Request::from_parts(parts, body), retry_after_secs).await,
    }
}

/// One submitted field as the "Slow down" page gives it back.
struct Kept {
    name: String,
    value: String,
    label: &'static str,
    /// Typed by the person (shown to edit), or hidden bookkeeping (ids, emoji).
    shown: bool,
}

#[derive(Template)]
#[template(path = "errors/slow_down.html")]
struct SlowDownPage {
    page: Page,
    info: ErrorInfo,
    method: &'static str,
    action: String,
    fields: Vec<Kept>,
    back: String,
}

async fn refused(state: &AppState, request: Request, retry_after_secs: u64) -> Response {
    let error = AppError::TooManyRequests { retry_after_secs };
    if wants_fragment(request.headers()) {
        return error.into_response();
    }
    let action = request.uri().path().to_string();
    let back = conversation_of(&action).unwrap_or_else(|| "/".to_string());
    let get = request.method() == Method::GET;
    let pairs: Vec<(String, String)> = if get {
        Query::<Vec<(String, String)>>::try_from_uri(request.uri()).map(|q| q.0).unwrap_or_default()
    } else {
        axum::Form::<Vec<(String, String)>>::from_request(request, state).await.map(|f| f.0).unwrap_or_default()
    };
    let fields = pairs
        .into_iter()
        // Passwords are never written back into a page.
        .filter(|(name, _)| !name.contains("password"))
        .map(|(name, value)| {
            let label = label_of(&name);
            Kept { shown: label.is_some(), label: label.unwrap_or(""), name, value }
        })
        .collect();
    let info = ErrorInfo { title: "Slow down", message: error.to_message() };
    let page = SlowDownPage { page: Page::anonymous("Slow down"), info, method: if get { "get" } else { "post" }, action, fields, back };
    let mut response = match page.render() {
        Ok(html) => (StatusCode::TOO_MANY_REQUESTS, Html(html)).into_response(),
        Err(_) => return error.into_response(),
    };
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    response
}

/// The label of a field a person types into; None for bookkeeping fields.
fn label_of(name: &str) -> Option<&'static str> {
    Some(match name {
        "body" => "Your message",
        "name" => "Name",
        "members" => "Members",
        "username" => "Username",
        "q" => "Search",
        "status" => "Status",
        _ => return None,
    })
}

/// `/c/7` for any path under a conversation.
fn conversation_of(path: &str) -> Option<String> {
    let id = path.strip_prefix("/c/")?.split('/').next()?;
    id.parse::<i64>().ok().map(|id| format!("/c/{id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goes_back_to_the_conversation() {
        assert_eq!(conversation_of("/c/12/m/3/react").as_deref(), Some("/c/12"));
        assert_eq!(conversation_of("/groups"), None);
    }
}
