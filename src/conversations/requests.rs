//! Message requests: the list of DMs from people outside the viewer's circle, one
//! request read without joining it, and the answers — accept (it becomes a normal DM
//! in the sidebar) or decline (the request goes and the sender is blocked).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::response::Redirect;

use crate::accounts::CurrentUser;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::web::layout::Page;
use crate::web::time::Clock;

use super::message_store::{self, Window};
use super::request_store::{self, RequestRow};
use super::views::{self, MessageView};

#[derive(Template, WebTemplate)]
#[template(path = "conversations/requests.html")]
pub struct RequestsPage {
    page: Page,
    sidebar: views::Sidebar,
    requests: Vec<RequestRow>,
}

pub async fn list(State(state): State<AppState>, user: CurrentUser) -> AppResult<RequestsPage> {
    Ok(RequestsPage {
        page: Page::new("Message requests", Some(&user)),
        sidebar: views::sidebar_for(&state, user.id, None).await?,
        requests: request_store::list(&state.store, user.id).await?,
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "conversations/request.html")]
pub struct RequestPage {
    page: Page,
    sidebar: views::Sidebar,
    request: RequestRow,
    messages: Vec<MessageView>,
    clock: Clock,
}

impl RequestPage {
    fn since(&self) -> String {
        self.clock.stamp(self.request.created_at)
    }
}

/// The request's messages, read-only: reading does not accept it, and the sender is
/// not told it was seen.
pub async fn show(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>) -> AppResult<RequestPage> {
    let request = request_store::get(&state.store, user.id, id).await?.ok_or(AppError::NotFound)?;
    let page = message_store::page(&state.store, id, Window::Latest).await?;
    let clock = Clock::at_now(&user.zone);
    let mut messages = views::build(&state.store, page.messages, false, &clock).await?;
    super::timeline::arrange_page(&state.store, id, &mut messages, page.has_older, &clock).await?;
    Ok(RequestPage {
        page: Page::new(format!("Message request from {}", request.from_name), Some(&user)),
        sidebar: views::sidebar_for(&state, user.id, None).await?,
        request,
        messages,
        clock,
    })
}

pub async fn accept(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>) -> AppResult<Redirect> {
    if !request_store::accept(&state.store, user.id, id).await? {
        return Err(AppError::NotFound);
    }
    Ok(Redirect::to(&format!("/c/{id}")))
}

/// Declining blocks the sender: they cannot write again, and learn nothing of it.
pub async fn decline(State(state): State<AppState>, user: CurrentUser, Path(id): Path<i64>) -> AppResult<Redirect> {
    let request = request_store::get(&state.store, user.id, id).await?.ok_or(AppError::NotFound)?;
    request_store::remove(&state.store, user.id, id).await?;
    crate::accounts::privacy::block(&state.store, user.id, request.from_id).await?;
    state.realtime.announce_presence(&state.store, user.id, true).await;
    Ok(Redirect::to("/requests"))
}
