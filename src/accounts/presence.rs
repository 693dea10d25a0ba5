//! Presence: online while any tab or device of a user holds a stream (on any
//! instance), the status they chose (online, idle, do not disturb, invisible), and
//! "last seen" once they are gone. Never logged: it is announced live and read fresh
//! when a page renders.

use askama::Template;

use crate::store::{Store, now_ms};
use crate::web::time::format_time;
use crate::with_db;

/// How long after a user's last stream closes they still count as online: a page
/// navigation closes one stream and opens the next, and that is not going offline.
pub const GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// The statuses a user can choose.
pub const STATUSES: [(&str, &str); 4] =
    [("online", "Online"), ("idle", "Idle"), ("dnd", "Do not disturb"), ("invisible", "Invisible")];

pub fn parse_status(input: &str) -> Option<&'static str> {
    STATUSES.iter().find(|(key, _)| *key == input.trim()).map(|(key, _)| *key)
}

pub struct PresenceView {
    pub user_id: i64,
    /// online | idle | dnd | offline: invisible users look offline.
    pub state: &'static str,
    pub label: String,
}

#[derive(Template)]
#[template(path = "conversations/_presence.html")]
pub struct PresenceFragment {
    pub p: PresenceView,
}

/// How much of a person's presence a viewer may see (`accounts::privacy::shown`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shown {
    All,
    /// Online and the chosen status, never when they were last seen.
    NoLastSeen,
    /// Nothing: always offline (the viewer is blocked).
    Nothing,
}

/// What a viewer sees of a user with `status` who is (or is not) connected.
pub fn view(user_id: i64, status: &str, connected: bool, last_seen: Option<i64>, shown: Shown) -> PresenceView {
    let chosen = STATUSES.iter().find(|(key, _)| *key == status && *key != "invisible");
    match chosen {
        Some((state, label)) if connected && shown != Shown::Nothing => PresenceView { user_id, state, label: (*label).to_string() },
        _ => PresenceView {
            user_id,
            state: "offline",
            label: match last_seen {
                Some(at) if shown == Shown::All => format!("Last seen {}", format_time(at)),
                _ => "Offline".to_string(),
            },
        },
    }
}

/// A user's chosen status and when they were last seen.
pub async fn status_of(store: &Store, user_id: i64) -> Result<(String, Option<i64>), sqlx::Error> {
    let sql = "SELECT presence, last_seen_at FROM users WHERE id = $1";
    let row: Option<(String, Option<i64>)> =
        with_db!(store, pool => sqlx::query_as(sql).bind(user_id).fetch_optional(pool).await?);
    Ok(row.unwrap_or_else(|| ("online".into(), None)))
}

pub async fn set_status(store: &Store, user_id: i64, status: &str) -> Result<(), sqlx::Error> {
    with_db!(store, pool => sqlx::query("UPDATE users SET presence = $1 WHERE id = $2").bind(status).bind(user_id).execute(pool).await.map(|_| ()))?;
    Ok(())
}

pub async fn touch_last_seen(store: &Store, user_id: i64) -> Result<(), sqlx::Error> {
    let sql = "UPDATE users SET last_seen_at = $1 WHERE id = $2";
    with_db!(store, pool => sqlx::query(sql).bind(now_ms()).bind(user_id).execute(pool).await.map(|_| ()))?;
    Ok(())
}

/// The conversations (channels included) whose members see the user's presence. Who
/// of those members is connected is the realtime hub's to say: joining the member
/// lists here would read a million rows for one member of a big server.
pub async fn watched_in(store: &Store, user_id: i64) -> Result<Vec<i64>, sqlx::Error> {
    let sql = "SELECT conversation_id FROM members WHERE user_id = $1";
    with_db!(store, pool => sqlx::query_scalar(sql).bind(user_id).fetch_all(pool).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_looks_offline() {
        assert_eq!(view(1, "online", true, None, Shown::All).state, "online");
        assert_eq!(view(1, "dnd", true, None, Shown::All).label, "Do not disturb");
        let hidden = view(1, "invisible", true, Some(0), Shown::All);
        assert_eq!((hidden.state, hidden.label.as_str()), ("offline", "Last seen 1970-01-01 00:00 UTC"));
        assert_eq!(view(1, "online", false, None, Shown::All).label, "Offline");
        assert_eq!(view(1, "online", false, Some(0), Shown::NoLastSeen).label, "Offline");
        assert_eq!(view(1, "online", true, Some(0), Shown::NoLastSeen).label, "Online");
        assert_eq!(view(1, "online", true, Some(0), Shown::Nothing).state, "offline");
        assert_eq!(parse_status(" idle "), Some("idle"));
        assert_eq!(parse_status("away"), None);
    }
}
