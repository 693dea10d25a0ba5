//! `Page`: what every full page shares (title, CSP nonce, the signed-in user,
//! asset URLs); templates extend `layouts/base.html` and read it as `page`.

use crate::accounts::CurrentUser;
use crate::web::{assets, shell};

pub struct Page {
    pub title: String,
    pub nonce: String,
    pub user: Option<CurrentUser>,
    pub css: &'static str,
    pub htmx: &'static str,
    pub sse: &'static str,
    pub app_js: &'static str,
    pub icon: &'static str,
    /// Set on live pages: the event id the page was rendered at, where its stream
    /// (`/events?since=…`) picks up.
    pub live_since: Option<i64>,
}

impl Page {
    pub fn new(title: impl Into<String>, user: Option<&CurrentUser>) -> Page {
        Page {
            title: title.into(),
            nonce: shell::nonce(),
            user: user.cloned(),
            css: assets::url("app.css"),
            htmx: assets::url("htmx.js"),
            sse: assets::url("sse.js"),
            app_js: assets::url("app.js"),
            icon: assets::url("icon.svg"),
            live_since: None,
        }
    }
}
