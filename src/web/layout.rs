//! `Page`: what every full page shares (title, CSP nonce, who is looking, asset
//! URLs); templates extend `layouts/base.html` and read it as `page`.

use crate::web::{assets, shell};

/// Who a page is rendered for, as the layout shows them. A plain value, so the web
/// layer needs nothing from the accounts domain.
#[derive(Clone, Debug)]
pub struct Viewer {
    pub id: i64,
    pub username: String,
    /// The name to show (the display name when set, else the username).
    pub name: String,
    /// No time zone chosen yet: app.js offers the browser's (once).
    pub offer_zone: bool,
}

impl Viewer {
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Anything that can say who is looking (the signed-in user).
pub trait AsViewer {
    fn viewer(&self) -> Viewer;
}

pub struct Page {
    pub title: String,
    pub nonce: String,
    pub user: Option<Viewer>,
    pub css: &'static str,
    pub htmx: &'static str,
    pub sse: &'static str,
    pub app_js: &'static str,
    pub icon: &'static str,
    /// Set on live pages: the event id the page was rendered at, where its stream
    /// (`/events?since=…`) picks up.
    pub live_since: Option<i64>,
    /// Calls ringing for the viewer, shown as banners on live pages (the same partial
    /// the live frame brings, so a reload or a page without JavaScript shows them too).
    pub ringing: Vec<crate::store::calls::Ringing>,
}

impl Page {
    pub fn new<V: AsViewer>(title: impl Into<String>, user: Option<&V>) -> Page {
        Page::for_viewer(title, user.map(AsViewer::viewer))
    }

    /// A page for nobody signed in (login, registration, errors).
    pub fn anonymous(title: impl Into<String>) -> Page {
        Page::for_viewer(title, None)
    }

    fn for_viewer(title: impl Into<String>, user: Option<Viewer>) -> Page {
        Page {
            title: title.into(),
            nonce: shell::nonce(),
            user,
            css: assets::url("app.css"),
            htmx: assets::url("htmx.js"),
            sse: assets::url("sse.js"),
            app_js: assets::url("app.js"),
            icon: assets::url("icon.svg"),
            live_since: None,
            ringing: Vec::new(),
        }
    }
}
