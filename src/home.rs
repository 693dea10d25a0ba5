//! The signed-in home: the sidebar of conversations and an empty main pane.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;

use crate::accounts::CurrentUser;
use crate::conversations::views;
use crate::error::AppResult;
use crate::state::AppState;
use crate::web::layout::Page;

#[derive(Template, WebTemplate)]
#[template(path = "home.html")]
pub struct HomePage {
    page: Page,
    sidebar: views::Sidebar,
}

pub async fn show(State(state): State<AppState>, user: CurrentUser) -> AppResult<HomePage> {
    let since = crate::store::log::newest(&state.store).await?;
    let sidebar = views::sidebar_for(&state, user.id, None).await?;
    let mut page = Page::new("Home", Some(&user));
    page.live_since = Some(since);
    page.ringing = crate::store::calls::ringing(&state.store, user.id, state.config.call_ring_ms()).await?;
    Ok(HomePage { page, sidebar })
}
