//! SQL for message requests: DMs from outside the recipient's circle, waiting for them
//! to accept (they become a member, and the DM a normal one) or decline.

use crate::store::log::{AppendEvents, Kind, NewEvent};
use crate::store::{BeginWrite, Store, now_ms};
use crate::with_db;

/// How many requests wait for `user_id`.
pub async fn waiting(store: &Store, user_id: i64) -> Result<i64, sqlx::Error> {
    let sql = "SELECT COUNT(*) FROM message_requests WHERE user_id = $1";
    store.scalar(sql, &[crate::store::Arg::Int(user_id)]).await
}

#[derive(Debug, sqlx::FromRow)]
pub struct RequestRow {
    pub conversation_id: i64,
    pub from_id: i64,
    pub from_username: String,
    pub from_name: String,
    pub created_at: i64,
    /// How many messages the sender wrote so far.
    pub messages: i64,
}

const SELECT: &str = concat!("SELECT r.conversation_id, r.from_id, u.username AS from_username, ",
    crate::shown_name_sql!("u"), " AS from_name, r.created_at,
    (SELECT COUNT(*) FROM messages x WHERE x.conversation_id = r.conversation_id AND x.deleted_at IS NULL) AS messages
    FROM message_requests r JOIN users u ON u.id = r.from_id");

/// The requests waiting for `user_id`, newest first.
pub async fn list(store: &Store, user_id: i64) -> Result<Vec<RequestRow>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE r.user_id = $1 ORDER BY r.created_at DESC, r.conversation_id DESC LIMIT 200");
    with_db!(store, pool => sqlx::query_as(&sql).bind(user_id).fetch_all(pool).await)
}

/// One request for `user_id`; `None` for anyone else (404).
pub async fn get(store: &Store, user_id: i64, conversation_id: i64) -> Result<Option<RequestRow>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE r.user_id = $1 AND r.conversation_id = $2");
    with_db!(store, pool => sqlx::query_as(&sql).bind(user_id).bind(conversation_id).fetch_optional(pool).await)
}

/// Accepts: the recipient joins the DM with everything unread, in one transaction
/// with its `Joined` event (their sidebar and stream pick it up from there). False when
/// there was no such request.
pub async fn accept(store: &Store, user_id: i64, conversation_id: i64) -> Result<bool, sqlx::Error> {
    let accepted = with_db!(store, pool => {
        let mut tx = pool.begin_write().await?;
        let removed = sqlx::query("DELETE FROM message_requests WHERE user_id = $1 AND conversation_id = $2")
            .bind(user_id).bind(conversation_id).execute(&mut *tx).await?.rows_affected() > 0;
        if removed {
            sqlx::query(
                "INSERT INTO members (conversation_id, user_id, role, joined_at, last_read_id) VALUES ($1, $2, 'member', $3, 0)
                 ON CONFLICT (conversation_id, user_id) DO NOTHING",
            )
            .bind(conversation_id).bind(user_id).bind(now_ms()).execute(&mut *tx).await?;
            (*tx).append_events(&[NewEvent::new(Kind::Joined, conversation_id).user(user_id)]).await?;
        }
        tx.commit().await?;
        removed
    });
    if accepted {
        store.signal_commit();
    }
    Ok(accepted)
}

/// Removes the request; the caller blocks the sender. The sender's side of the DM
/// stays as it was: they are not told.
pub async fn remove(store: &Store, user_id: i64, conversation_id: i64) -> Result<(), sqlx::Error> {
    let sql = "DELETE FROM message_requests WHERE user_id = $1 AND conversation_id = $2";
    with_db!(store, pool => sqlx::query(sql).bind(user_id).bind(conversation_id).execute(pool).await.map(|_| ()))
}
