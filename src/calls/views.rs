//! What calls look like: the call page, the bar on a conversation's page, the ringing
//! banner, and the live frames that place and remove them. Every frame carries the
//! same partials the pages render.

use askama::Template;
use askama_web::WebTemplate;

use crate::conversations::views::Sidebar;
use crate::realtime::swap::{Op, place_into};
use crate::store::calls::{Call, Ringing};
use crate::voice::{Controls, MemberView};
use crate::web::layout::Page;

#[derive(Template, WebTemplate)]
#[template(path = "calls/show.html")]
pub struct CallPage {
    pub page: Page,
    pub sidebar: Sidebar,
    pub conversation_id: i64,
    pub title: String,
    /// The call going on; None once it ended (the page then offers a new one).
    pub call: Option<Call>,
    pub text: String,
    pub ended: bool,
    /// The roster partial's names: the room is the conversation.
    pub room: i64,
    pub room_name: String,
    pub members: Vec<MemberView>,
    pub controls: Controls,
    pub voice_js: &'static str,
    pub call_js: &'static str,
}

/// A conversation's "Start call" / "Call in progress — Join".
#[derive(Template)]
#[template(path = "calls/_bar.html")]
pub struct CallBar<'a> {
    pub conversation_id: i64,
    pub call: Option<&'a Call>,
}

#[derive(Template)]
#[template(path = "calls/_banner.html")]
pub struct Banner<'a> {
    pub r: &'a Ringing,
}

/// Where the call stands, on its page.
#[derive(Template)]
#[template(path = "calls/_state.html")]
pub struct CallState<'a> {
    pub conversation_id: i64,
    pub text: &'a str,
    pub ended: bool,
}

/// "Voice call started by Alice", "Video call · answered", "The call ended."
pub fn state_text(call: &Call, caller: &str) -> String {
    let kind = if call.video { "Video call" } else { "Voice call" };
    match (call.ended_at, call.answered_at) {
        (Some(_), _) => "The call ended.".to_string(),
        (None, Some(_)) => format!("{kind} in progress."),
        (None, None) => format!("{kind} from {caller}: ringing…"),
    }
}

/// The line a call leaves in its conversation when it ends.
pub fn line(call: &Call, caller: &str) -> String {
    match (call.answered_at, call.ended_at) {
        (Some(answered), Some(ended)) => {
            let kind = if call.video { "Video call" } else { "Voice call" };
            format!("{kind} · {}", duration((ended - answered).max(0) / 1000))
        }
        _ if call.video => format!("Missed video call from {caller}"),
        _ => format!("Missed call from {caller}"),
    }
}

/// 0:05, 2:31, 1:02:03.
fn duration(seconds: i64) -> String {
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if h > 0 { format!("{h}:{m:02}:{s:02}") } else { format!("{m}:{s:02}") }
}

/// The banners for everyone the call rings for, each into that person's slot (a page
/// shows only its viewer's slot, so each person gets only their own).
pub fn ring_frame(ringing: &[Ringing]) -> askama::Result<String> {
    let mut html = String::new();
    for r in ringing {
        place_into(&mut html, Op::Into(&format!("#calls-for-{}", r.user_id)), &Banner { r }.render()?)?;
    }
    Ok(html)
}

/// Removes the call's banner from the pages of `users`.
pub fn unring_frame(call_id: i64, users: &[i64]) -> askama::Result<String> {
    let mut html = String::new();
    for user in users {
        place_into(&mut html, Op::Remove(&format!("call-{call_id}-for-{user}")), "")?;
    }
    Ok(html)
}

/// The conversation's bar and the call page's state line, as they are now.
pub fn state_frame(conversation_id: i64, ongoing: Option<&Call>, text: &str, ended: bool) -> askama::Result<String> {
    let mut html = String::new();
    let bar = CallBar { conversation_id, call: ongoing }.render()?;
    place_into(&mut html, Op::Each(&format!(".call-bar-{conversation_id}")), &bar)?;
    place_into(&mut html, Op::Replace, &CallState { conversation_id, text, ended }.render()?)?;
    Ok(html)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(answered_at: Option<i64>, ended_at: Option<i64>, video: bool) -> Call {
        Call { id: 1, conversation_id: 2, started_by: 3, video, started_at: 0, answered_at, ended_at, outcome: None }
    }

    #[test]
    fn lines_say_how_long_or_who_was_missed() {
        assert_eq!(line(&call(Some(1_000), Some(152_400), false), "Alice"), "Voice call · 2:31");
        assert_eq!(line(&call(Some(0), Some(5_999), true), "Alice"), "Video call · 0:05");
        assert_eq!(line(&call(Some(0), Some(3_723_000), false), "Alice"), "Voice call · 1:02:03");
        assert_eq!(line(&call(None, Some(9_000), false), "Alice"), "Missed call from Alice");
        assert_eq!(line(&call(None, Some(9_000), true), "Alice"), "Missed video call from Alice");
    }
}
