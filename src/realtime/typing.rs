//! Typing indicators: who is typing where, kept in memory only. A ping keeps a typer
//! for `TTL`; the browser pings at most every few seconds while keys are pressed, so
//! the indicator disappears within `TTL` of the last key, and at once on send.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long one ping keeps "is typing…" up.
pub const TTL: Duration = Duration::from_millis(5_000);

#[derive(Default)]
pub struct Typing {
    by_conversation: Mutex<HashMap<i64, Vec<Typer>>>,
}

struct Typer {
    user_id: i64,
    name: String,
    until: Instant,
}

impl Typing {
    /// Records a ping; true when the user was not typing there before (so others
    /// must be told).
    pub fn ping(&self, conversation_id: i64, user_id: i64, name: &str) -> bool {
        let mut map = self.by_conversation.lock().unwrap_or_else(|p| p.into_inner());
        let typers = map.entry(conversation_id).or_default();
        let until = Instant::now() + TTL;
        match typers.iter_mut().find(|t| t.user_id == user_id) {
            Some(typer) => {
                typer.until = until;
                false
            }
            None => {
                typers.push(Typer { user_id, name: name.to_string(), until });
                true
            }
        }
    }

    /// Forgets a typer (they sent their message); true when they were typing.
    pub fn stop(&self, conversation_id: i64, user_id: i64) -> bool {
        let mut map = self.by_conversation.lock().unwrap_or_else(|p| p.into_inner());
        let Some(typers) = map.get_mut(&conversation_id) else { return false };
        let before = typers.len();
        typers.retain(|t| t.user_id != user_id);
        let changed = typers.len() != before;
        if typers.is_empty() {
            map.remove(&conversation_id);
        }
        changed
    }

    /// Drops expired typers; the conversations whose typers changed.
    pub fn expire(&self) -> Vec<i64> {
        let now = Instant::now();
        let mut map = self.by_conversation.lock().unwrap_or_else(|p| p.into_inner());
        let mut changed = Vec::new();
        map.retain(|conversation, typers| {
            let before = typers.len();
            typers.retain(|t| t.until > now);
            if typers.len() != before {
                changed.push(*conversation);
            }
            !typers.is_empty()
        });
        changed
    }

    /// Who is typing in a conversation now, in the order they started.
    pub fn typers(&self, conversation_id: i64) -> Vec<(i64, String)> {
        let map = self.by_conversation.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&conversation_id).map(|ts| ts.iter().map(|t| (t.user_id, t.name.clone())).collect()).unwrap_or_default()
    }
}

/// What a viewer reads: everyone typing but themselves, summarised.
pub fn summary(typers: &[(i64, String)], viewer: i64) -> String {
    let others: Vec<&str> = typers.iter().filter(|(id, _)| *id != viewer).map(|(_, name)| name.as_str()).collect();
    match others.as_slice() {
        [] => String::new(),
        [one] => format!("{one} is typing…"),
        [one, two] => format!("{one} and {two} are typing…"),
        _ => "Several people are typing…".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_leave_out_the_viewer() {
        let typers = vec![(1, "Alice".to_string()), (2, "Bob".to_string()), (3, "Carol".to_string())];
        assert_eq!(summary(&typers[..1], 2), "Alice is typing…");
        assert_eq!(summary(&typers[..1], 1), "");
        assert_eq!(summary(&typers[..2], 3), "Alice and Bob are typing…");
        assert_eq!(summary(&typers, 3), "Alice and Bob are typing…");
        assert_eq!(summary(&typers, 4), "Several people are typing…");
    }

    #[test]
    fn pings_start_once_and_stop_on_send() {
        let typing = Typing::default();
        assert!(typing.ping(7, 1, "Alice"));
        assert!(!typing.ping(7, 1, "Alice"));
        assert_eq!(typing.typers(7).len(), 1);
        assert!(typing.stop(7, 1));
        assert!(!typing.stop(7, 1));
        assert!(typing.expire().is_empty());
    }
}
