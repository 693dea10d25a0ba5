//! SQL for moderation: banning (with the optional sweep of the member's recent
//! messages), unbanning, timeouts and the bans list. Each action commits in one
//! transaction with its audit row; removing someone re-plans their channel rows there
//! too, so the `left` events reach their open streams with the same commit.

use crate::store::log::{AppendEvents, Kind, NewEvent};
use crate::store::{BeginWrite, Store, now_ms};
use crate::with_db;

use super::audit::Entry;

/// Bans `user`: the bans row, their membership gone (channel rows follow with `left`
/// events), and when `delete_since` is given, every text message they wrote in this
/// server's channels since then left as a tombstone, exactly as a normal delete does.
/// Returns how many messages were deleted.
pub async fn ban(store: &Store, server_id: i64, user_id: i64, actor_id: i64, reason: &str, delete_since: Option<i64>, audit: &Entry) -> Result<usize, sqlx::Error> {
    let now = now_ms();
    let deleted = with_db!(store, pool => {
        let mut tx = pool.begin_write().await?;
        sqlx::query(
            "INSERT INTO bans (server_id, user_id, actor_id, reason, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (server_id, user_id) DO UPDATE SET actor_id = excluded.actor_id, reason = excluded.reason, created_at = excluded.created_at",
        )
        .bind(server_id).bind(user_id).bind(actor_id).bind(reason).bind(now).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM server_members WHERE server_id = $1 AND user_id = $2").bind(server_id).bind(user_id).execute(&mut *tx).await?;
        let mut deleted: Vec<(i64, i64)> = Vec::new();
        if let Some(since) = delete_since {
            deleted = sqlx::query_as(
                "UPDATE messages SET body = '', html = '', deleted_at = $1, pinned_at = NULL
                 WHERE author_id = $2 AND kind = 'text' AND deleted_at IS NULL AND created_at >= $3
                   AND conversation_id IN (SELECT id FROM conversations WHERE server_id = $4)
                 RETURNING id, conversation_id",
            )
            .bind(now).bind(user_id).bind(since).bind(server_id).fetch_all(&mut *tx).await?;
            for &(message_id, _) in &deleted {
                sqlx::query("DELETE FROM reactions WHERE message_id = $1").bind(message_id).execute(&mut *tx).await?;
                sqlx::query("DELETE FROM mentions WHERE message_id = $1").bind(message_id).execute(&mut *tx).await?;
            }
            let events: Vec<NewEvent> = deleted.iter().map(|&(m, c)| NewEvent::new(Kind::MessageChanged, c).subject(m)).collect();
            (*tx).append_events(&events).await?;
        }
        crate::sync_channel_access!(tx, server_id, user_id).await?;
        let mut entry = audit.clone();
        if delete_since.is_some() {
            entry.after = format!("{} (deleted {} messages)", entry.after, deleted.len());
        }
        crate::write_audit!(tx, &entry).await?;
        tx.commit().await?;
        deleted.len()
    });
    store.signal_commit();
    Ok(deleted)
}

/// Lifts a ban; false when there was none.
pub async fn unban(store: &Store, server_id: i64, user_id: i64, audit: &Entry) -> Result<bool, sqlx::Error> {
    with_db!(store, pool => {
        let mut tx = pool.begin_write().await?;
        let done = sqlx::query("DELETE FROM bans WHERE server_id = $1 AND user_id = $2")
            .bind(server_id).bind(user_id).execute(&mut *tx).await?.rows_affected() > 0;
        if done {
            crate::write_audit!(tx, audit).await?;
        }
        tx.commit().await?;
        Ok(done)
    })
}

/// Sets (or with None, lifts) a member's timeout. A timeout leaves VIEW_CHANNEL as it
/// is, so channel rows do not change; the conversation engine asks for it per request.
pub async fn set_timeout(store: &Store, server_id: i64, user_id: i64, until: Option<i64>, audit: &Entry) -> Result<bool, sqlx::Error> {
    with_db!(store, pool => {
        let mut tx = pool.begin_write().await?;
        let done = sqlx::query("UPDATE server_members SET timeout_until = $1 WHERE server_id = $2 AND user_id = $3")
            .bind(until).bind(server_id).bind(user_id).execute(&mut *tx).await?.rows_affected() > 0;
        if done {
            crate::write_audit!(tx, audit).await?;
        }
        tx.commit().await?;
        Ok(done)
    })
}

/// The username of `user_id` when banned from the server.
pub async fn banned(store: &Store, server_id: i64, user_id: i64) -> Result<Option<String>, sqlx::Error> {
    let sql = "SELECT u.username FROM bans b JOIN users u ON u.id = b.user_id WHERE b.server_id = $1 AND b.user_id = $2";
    with_db!(store, pool => sqlx::query_scalar(sql).bind(server_id).bind(user_id).fetch_optional(pool).await)
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct BanRow {
    pub user_id: i64,
    pub username: String,
    pub display_name: String,
    pub actor_name: Option<String>,
    pub reason: String,
    pub created_at: i64,
}

impl BanRow {
    pub fn name(&self) -> &str {
        crate::accounts::model::shown_name(&self.display_name, &self.username)
    }
}

/// The server's bans, newest first.
pub async fn bans(store: &Store, server_id: i64) -> Result<Vec<BanRow>, sqlx::Error> {
    let sql = concat!("SELECT b.user_id, u.username, u.display_name, ", crate::shown_name_sql!("a"), " AS actor_name, b.reason, b.created_at
        FROM bans b JOIN users u ON u.id = b.user_id LEFT JOIN users a ON a.id = b.actor_id
        WHERE b.server_id = $1 ORDER BY b.created_at DESC, b.user_id LIMIT 1000");
    with_db!(store, pool => sqlx::query_as(sql).bind(server_id).fetch_all(pool).await)
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct MemberProfile {
    pub user_id: i64,
    pub username: String,
    pub display_name: String,
    pub joined_at: i64,
    pub timeout_until: Option<i64>,
}

impl MemberProfile {
    pub fn name(&self) -> &str {
        crate::accounts::model::shown_name(&self.display_name, &self.username)
    }
}

/// One member of the server; None when `user_id` is not one.
pub async fn member(store: &Store, server_id: i64, user_id: i64) -> Result<Option<MemberProfile>, sqlx::Error> {
    let sql = "SELECT sm.user_id, u.username, u.display_name, sm.joined_at, sm.timeout_until
               FROM server_members sm JOIN users u ON u.id = sm.user_id WHERE sm.server_id = $1 AND sm.user_id = $2";
    with_db!(store, pool => sqlx::query_as(sql).bind(server_id).bind(user_id).fetch_optional(pool).await)
}
