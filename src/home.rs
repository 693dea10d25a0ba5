//! The signed-in home: the app shell with the sidebar and an empty main pane.

use askama::Template;
use askama_web::WebTemplate;

use crate::accounts::CurrentUser;
use crate::web::layout::Page;

#[derive(Template, WebTemplate)]
#[template(path = "home.html")]
pub struct HomePage {
    page: Page,
}

pub async fn show(user: CurrentUser) -> HomePage {
    HomePage { page: Page::new("Home", Some(&user)) }
}
