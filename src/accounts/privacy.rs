//! Privacy and blocking: who sees a person's "last seen", who may start a DM with them
//! or add them to groups, and the people they blocked.
//!
//! A person's circle is everyone they share a conversation (DM, group or channel) or a
//! server with. A blocked person is never told of the block: they see the blocker as
//! offline with no status or last seen; a DM to the blocker is refused with a plain
//! "You can't send messages to this person." (403), and adding the blocker to a group
//! gets the same sentence a "who may add me" choice gives.

use std::collections::HashSet;

use crate::store::{BeginWrite, Store, now_ms};
use crate::with_db;

use super::presence::Shown;

/// Who a choice admits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    Everyone,
    /// People I share a conversation or a server with.
    Shared,
    Nobody,
}

pub const AUDIENCES: [(&str, &str); 3] =
    [("everyone", "Everyone"), ("shared", "People I share a conversation or server with"), ("nobody", "Nobody")];

impl Audience {
    pub fn parse(input: &str) -> Option<Audience> {
        Some(match input.trim() {
            "everyone" => Audience::Everyone,
            "shared" => Audience::Shared,
            "nobody" => Audience::Nobody,
            _ => return None,
        })
    }

    /// Stored text; anything unknown reads as the default, `everyone`.
    pub fn from_stored(text: &str) -> Audience {
        Audience::parse(text).unwrap_or(Audience::Everyone)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Audience::Everyone => "everyone",
            Audience::Shared => "shared",
            Audience::Nobody => "nobody",
        }
    }

    /// Whether someone in (or out of) the circle is admitted.
    pub fn admits(self, in_circle: bool) -> bool {
        match self {
            Audience::Everyone => true,
            Audience::Shared => in_circle,
            Audience::Nobody => false,
        }
    }
}

/// How much of `subject`'s presence a viewer sees: nothing when the subject blocked
/// them; the time they were last seen only when the subject's choice admits them.
/// Online, idle and do-not-disturb show either way (Invisible hides those).
pub fn shown(blocked_viewer: bool, last_seen_audience: &str, in_circle: bool) -> Shown {
    if blocked_viewer {
        Shown::Nothing
    } else if Audience::from_stored(last_seen_audience).admits(in_circle) {
        Shown::All
    } else {
        Shown::NoLastSeen
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    pub last_seen: Audience,
    pub dms: Audience,
    pub groups: Audience,
}

pub async fn settings_of(store: &Store, user_id: i64) -> Result<Settings, sqlx::Error> {
    let sql = "SELECT last_seen_audience, dm_audience, group_audience FROM users WHERE id = $1";
    let row: Option<(String, String, String)> = with_db!(store, pool => sqlx::query_as(sql).bind(user_id).fetch_optional(pool).await?);
    let (last_seen, dms, groups) = row.unwrap_or_default();
    Ok(Settings { last_seen: Audience::from_stored(&last_seen), dms: Audience::from_stored(&dms), groups: Audience::from_stored(&groups) })
}

pub async fn save(store: &Store, user_id: i64, settings: Settings) -> Result<(), sqlx::Error> {
    let sql = "UPDATE users SET last_seen_audience = $1, dm_audience = $2, group_audience = $3 WHERE id = $4";
    with_db!(store, pool => sqlx::query(sql)
        .bind(settings.last_seen.as_str()).bind(settings.dms.as_str()).bind(settings.groups.as_str()).bind(user_id)
        .execute(pool).await.map(|_| ()))
}

/// Whether `a` and `b` share a conversation or a server.
pub async fn in_circle(store: &Store, a: i64, b: i64) -> Result<bool, sqlx::Error> {
    let sql = "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM members x JOIN members y ON y.conversation_id = x.conversation_id AND y.user_id = $2
                                            WHERE x.user_id = $1 LIMIT 1) c)
                    + (SELECT COUNT(*) FROM (SELECT 1 FROM server_members x JOIN server_members y ON y.server_id = x.server_id AND y.user_id = $2
                                            WHERE x.user_id = $1 LIMIT 1) s)";
    let n: i64 = with_db!(store, pool => sqlx::query_scalar(sql).bind(a).bind(b).fetch_one(pool).await?);
    Ok(n > 0)
}

/// Blocks `blocked` for `blocker` (again is harmless).
pub async fn block(store: &Store, blocker: i64, blocked: i64) -> Result<(), sqlx::Error> {
    let sql = "INSERT INTO blocks (blocker_id, blocked_id, created_at) VALUES ($1, $2, $3) ON CONFLICT (blocker_id, blocked_id) DO NOTHING";
    with_db!(store, pool => {
        let mut tx = pool.begin_write().await?;
        sqlx::query(sql).bind(blocker).bind(blocked).bind(now_ms()).execute(&mut *tx).await?;
        // Whatever they asked before is answered: a blocked person's request goes.
        sqlx::query("DELETE FROM message_requests WHERE user_id = $1 AND from_id = $2").bind(blocker).bind(blocked).execute(&mut *tx).await?;
        tx.commit().await
    })
}

pub async fn unblock(store: &Store, blocker: i64, blocked: i64) -> Result<(), sqlx::Error> {
    let sql = "DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2";
    with_db!(store, pool => sqlx::query(sql).bind(blocker).bind(blocked).execute(pool).await.map(|_| ()))
}

/// Whether `blocker` blocked `blocked`.
pub async fn blocks(store: &Store, blocker: i64, blocked: i64) -> Result<bool, sqlx::Error> {
    let sql = "SELECT COUNT(*) FROM blocks WHERE blocker_id = $1 AND blocked_id = $2";
    let n: i64 = with_db!(store, pool => sqlx::query_scalar(sql).bind(blocker).bind(blocked).fetch_one(pool).await?);
    Ok(n > 0)
}

/// Everyone who blocked `viewer`: whose presence and status the viewer must not see.
pub async fn blockers_of(store: &Store, viewer: i64) -> Result<HashSet<i64>, sqlx::Error> {
    let sql = "SELECT blocker_id FROM blocks WHERE blocked_id = $1";
    let ids: Vec<(i64,)> = store.rows(sql, &[crate::store::Arg::Int(viewer)]).await?;
    Ok(ids.into_iter().map(|(id,)| id).collect())
}

/// Everyone `user` blocked.
pub async fn blocked_by(store: &Store, user: i64) -> Result<HashSet<i64>, sqlx::Error> {
    let sql = "SELECT blocked_id FROM blocks WHERE blocker_id = $1";
    let ids: Vec<i64> = with_db!(store, pool => sqlx::query_scalar(sql).bind(user).fetch_all(pool).await?);
    Ok(ids.into_iter().collect())
}

/// The people `user` blocked, for their privacy page: (id, username, shown name).
pub async fn blocked_list(store: &Store, user: i64) -> Result<Vec<(i64, String, String)>, sqlx::Error> {
    let sql = concat!("SELECT u.id, u.username, ", crate::shown_name_sql!("u"), " FROM blocks b JOIN users u ON u.id = b.blocked_id
               WHERE b.blocker_id = $1 ORDER BY u.username");
    with_db!(store, pool => sqlx::query_as(sql).bind(user).fetch_all(pool).await)
}

/// Which of the (author, conversation) pairs have the author blocking a member of the
/// conversation: a live message of theirs there is sent without their status.
pub async fn blockers_among_members(store: &Store, pairs: &[(i64, i64)]) -> Result<HashSet<(i64, i64)>, sqlx::Error> {
    if pairs.is_empty() {
        return Ok(HashSet::new());
    }
    let list = |ids: &mut dyn Iterator<Item = i64>| ids.map(|id| id.to_string()).collect::<Vec<_>>().join(",");
    let (authors, conversations) = (list(&mut pairs.iter().map(|p| p.0)), list(&mut pairs.iter().map(|p| p.1)));
    let sql = format!(
        "SELECT DISTINCT b.blocker_id, m.conversation_id FROM blocks b JOIN members m ON m.user_id = b.blocked_id
         WHERE b.blocker_id IN ({authors}) AND m.conversation_id IN ({conversations})"
    );
    let rows: Vec<(i64, i64)> = with_db!(store, pool => sqlx::query_as(&sql).fetch_all(pool).await?);
    Ok(rows.into_iter().collect())
}

/// What happens when `from` opens a DM with `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// A normal DM, in both sidebars.
    Direct,
    /// A message request: in the sender's sidebar, in the recipient's requests list.
    Request,
    /// Refused (403) with this sentence.
    Refused(&'static str),
}

/// Said to someone the other person blocked: it names no block. The one who blocked
/// is told why instead (`YOU_BLOCKED`).
pub const CANNOT_MESSAGE: &str = "You can't send messages to this person.";
pub const YOU_BLOCKED: &str = "You blocked this person. Unblock them on their profile to send messages.";
pub const CANNOT_ADD: &str = "can't be added to groups by you.";

pub async fn dm_reach(store: &Store, from: i64, to: i64) -> Result<Reach, sqlx::Error> {
    if from == to {
        return Ok(Reach::Direct);
    }
    if blocks(store, to, from).await? {
        return Ok(Reach::Refused(CANNOT_MESSAGE));
    }
    if blocks(store, from, to).await? {
        return Ok(Reach::Refused(YOU_BLOCKED));
    }
    let audience = settings_of(store, to).await?.dms;
    let admitted = match audience {
        Audience::Shared => in_circle(store, from, to).await?,
        other => other.admits(false),
    };
    Ok(if admitted { Reach::Direct } else { Reach::Request })
}

/// Whether `adder` may add `person` to a group.
pub async fn may_add_to_group(store: &Store, adder: i64, person: i64) -> Result<bool, sqlx::Error> {
    if adder == person {
        return Ok(true);
    }
    if blocks(store, person, adder).await? {
        return Ok(false);
    }
    Ok(match settings_of(store, person).await?.groups {
        Audience::Shared => in_circle(store, adder, person).await?,
        other => other.admits(false),
    })
}

/// Why `me` may not send in DM `conversation_id` (the other side blocked them, or
/// they blocked the other side), if so.
pub async fn dm_send_refusal(store: &Store, conversation_id: i64, me: i64) -> Result<Option<&'static str>, sqlx::Error> {
    // The DM's key is "low:high": the two people, whether or not both are members yet.
    let sql = "SELECT COALESCE(dm_key, '') FROM conversations WHERE id = $1";
    let key: Option<String> = with_db!(store, pool => sqlx::query_scalar(sql).bind(conversation_id).fetch_optional(pool).await?);
    let other = key.unwrap_or_default().split(':').filter_map(|id| id.parse::<i64>().ok()).find(|&id| id != me);
    let Some(other) = other else { return Ok(None) };
    if blocks(store, other, me).await? {
        return Ok(Some(CANNOT_MESSAGE));
    }
    if blocks(store, me, other).await? {
        return Ok(Some(YOU_BLOCKED));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiences_admit_as_named() {
        assert!(Audience::Everyone.admits(false));
        assert!(Audience::Shared.admits(true) && !Audience::Shared.admits(false));
        assert!(!Audience::Nobody.admits(true));
        assert_eq!(Audience::from_stored("bogus"), Audience::Everyone);
    }

    #[test]
    fn a_blocked_viewer_sees_nothing_and_last_seen_follows_the_choice() {
        assert_eq!(shown(true, "everyone", true), Shown::Nothing);
        assert_eq!(shown(false, "everyone", false), Shown::All);
        assert_eq!(shown(false, "shared", false), Shown::NoLastSeen);
        assert_eq!(shown(false, "shared", true), Shown::All);
        assert_eq!(shown(false, "nobody", true), Shown::NoLastSeen);
    }
}
