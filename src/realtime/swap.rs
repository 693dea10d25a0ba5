//! The swap protocol: how a live update says where its HTML goes. Every frame on
//! `/events` is a sequence of placements, rendered by `templates/realtime/_swap.html`
//! and carried out by the `live` swap style in `assets/app.js`:
//!
//! - `Into(target)`: each child is inserted into `target` (a CSS selector), or
//!   replaces the element with its id already there, keeping children in id order;
//!   `IntoTop` inserts at the top instead (a conversation new to the sidebar).
//! - `Replace`: each child replaces the element with its id, if the page shows one.
//! - `Each(selector)`: every element matching `selector` becomes a copy of the child
//!   (a person's presence dot, shown in many places).
//! - `Top(id)`: the element moves to the top of its list (sidebar order).
//! - `Remove(id)`: the element goes.
//!
//! Every placement is idempotent, so a duplicate or replayed delivery changes nothing.
//! The HTML inside is always a page partial, so live and loaded pages cannot drift.

use askama::Template;

pub enum Op<'a> {
    Into(&'a str),
    IntoTop(&'a str),
    Replace,
    Each(&'a str),
    Top(&'a str),
    Remove(&'a str),
}

#[derive(Template)]
#[template(path = "realtime/_swap.html")]
struct SwapFragment<'a> {
    op: Op<'a>,
    html: &'a str,
}

/// `html` placed as `op` says.
pub fn place(op: Op<'_>, html: &str) -> askama::Result<String> {
    SwapFragment { op, html }.render()
}

/// Appends `html` placed as `op` says to `out`.
pub fn place_into(out: &mut String, op: Op<'_>, html: &str) -> askama::Result<()> {
    SwapFragment { op, html }.render_into(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placements_render_as_app_js_reads_them() {
        assert_eq!(place(Op::Into("#messages[data-conversation-id='7']"), "<p id=\"a\"></p>").unwrap(),
            "<div data-into=\"#messages[data-conversation-id=&#39;7&#39;]\"><p id=\"a\"></p></div>");
        assert_eq!(place(Op::IntoTop("#conversation-list"), "x").unwrap(), "<div data-into=\"#conversation-list\" data-at=\"top\">x</div>");
        assert_eq!(place(Op::Replace, "<b>").unwrap(), "<div data-replace><b></div>");
        assert_eq!(place(Op::Each(".presence-3"), "y").unwrap(), "<div data-each=\".presence-3\">y</div>");
        assert_eq!(place(Op::Top("sidebar-3"), "").unwrap(), "<div data-top=\"sidebar-3\"></div>");
        assert_eq!(place(Op::Remove("sidebar-3"), "").unwrap(), "<div data-remove=\"sidebar-3\"></div>");
    }
}
