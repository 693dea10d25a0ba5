//! SQL for messages and what hangs off them: history pages, edits, tombstones,
//! reactions, pins and mentions. New messages are written by `writer` (group commit).

use crate::store::log::{AppendEvents, Kind, NewEvent};
use crate::store::sqlite::Arg;
use crate::store::{BeginWrite, Db, Store, now_ms};
use crate::with_db;

use super::model::PAGE_SIZE;

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct MessageRow {
    pub id: i64,
    pub conversation_id: i64,
    pub author_id: i64,
    pub username: String,
    pub display_name: String,
    pub kind: String,
    pub body: String,
    pub html: String,
    pub reply_to_id: Option<i64>,
    pub created_at: i64,
    pub edited_at: Option<i64>,
    pub deleted_at: Option<i64>,
    pub pinned_at: Option<i64>,
    /// The replied-to message, joined in so a page needs no query for reply quotes:
    /// its author's name (None if it is gone), source and deletion time.
    pub reply_author: Option<String>,
    pub reply_body: Option<String>,
    pub reply_deleted_at: Option<i64>,
    /// The author's custom status (shown in the header while it lasts).
    pub status_emoji: String,
    pub status_text: String,
    pub status_expires_at: Option<i64>,
    pub avatar_key: Option<String>,
}

const SELECT: &str = concat!("SELECT m.id, m.conversation_id, m.author_id, u.username, u.display_name, m.kind, m.body, m.html,
    m.reply_to_id, m.created_at, m.edited_at, m.deleted_at, m.pinned_at,
    ", crate::shown_name_sql!("ru"), " AS reply_author, r.body AS reply_body, r.deleted_at AS reply_deleted_at,
    ", crate::status_sql!("u"), ", u.avatar_key
    FROM messages m JOIN users u ON u.id = m.author_id
    LEFT JOIN messages r ON r.id = m.reply_to_id LEFT JOIN users ru ON ru.id = r.author_id");

/// Which slice of history a page shows.
#[derive(Clone, Copy, Debug)]
pub enum Window {
    Latest,
    Before(i64),
    After(i64),
    Around(i64),
}

/// Up to a page of messages in ascending order, plus whether older (and newer) ones exist.
pub struct Page {
    pub messages: Vec<MessageRow>,
    pub has_older: bool,
    pub has_newer: bool,
}

crate::direct_row!(MessageRow {
    id, conversation_id, author_id, username, display_name, kind, body, html, reply_to_id, created_at, edited_at,
    deleted_at, pinned_at, reply_author, reply_body, reply_deleted_at, status_emoji, status_text, status_expires_at, avatar_key,
});

async fn slice(store: &Store, conversation_id: i64, older_than: Option<i64>, limit: i64) -> Result<Vec<MessageRow>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE m.conversation_id = $1 AND m.id < $2 ORDER BY m.id DESC LIMIT $3");
    let older_than = older_than.unwrap_or(i64::MAX);
    let mut rows: Vec<MessageRow> = match &store.db {
        Db::Sqlite(db) => db.select(&sql, &[Arg::Int(conversation_id), Arg::Int(older_than), Arg::Int(limit)]).await,
        Db::Postgres(pool) => sqlx::query_as(&sql).bind(conversation_id).bind(older_than).bind(limit).fetch_all(pool).await,
    }?;
    rows.reverse();
    Ok(rows)
}

async fn slice_after(store: &Store, conversation_id: i64, from: i64, limit: i64) -> Result<Vec<MessageRow>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE m.conversation_id = $1 AND m.id >= $2 ORDER BY m.id ASC LIMIT $3");
    match &store.db {
        Db::Sqlite(db) => db.select(&sql, &[Arg::Int(conversation_id), Arg::Int(from), Arg::Int(limit)]).await,
        Db::Postgres(pool) => sqlx::query_as(&sql).bind(conversation_id).bind(from).bind(limit).fetch_all(pool).await,
    }
}

/// Keyset pagination (`id < cursor`, never OFFSET): a page stays exact while new
/// messages arrive.
pub async fn page(store: &Store, conversation_id: i64, window: Window) -> Result<Page, sqlx::Error> {
    match window {
        Window::Latest | Window::Before(_) => {
            let cursor = if let Window::Before(id) = window { Some(id) } else { None };
            let mut messages = slice(store, conversation_id, cursor, PAGE_SIZE + 1).await?;
            let has_older = messages.len() as i64 > PAGE_SIZE;
            if has_older {
                messages.remove(0);
            }
            Ok(Page { messages, has_older, has_newer: cursor.is_some() })
        }
        Window::After(id) => {
            let mut messages = slice_after(store, conversation_id, id + 1, PAGE_SIZE + 1).await?;
            let has_newer = messages.len() as i64 > PAGE_SIZE;
            messages.truncate(PAGE_SIZE as usize);
            Ok(Page { messages, has_older: true, has_newer })
        }
        Window::Around(id) => {
            let half = PAGE_SIZE / 2;
            let mut older = slice(store, conversation_id, Some(id), half + 1).await?;
            let has_older = older.len() as i64 > half;
            if has_older {
                older.remove(0);
            }
            let mut newer = slice_after(store, conversation_id, id, half + 1).await?;
            let has_newer = newer.len() as i64 > half;
            newer.truncate(half as usize);
            older.extend(newer);
            Ok(Page { messages: older, has_older, has_newer })
        }
    }
}

pub async fn get(store: &Store, conversation_id: i64, message_id: i64) -> Result<Option<MessageRow>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE m.id = $1 AND m.conversation_id = $2");
    with_db!(store, pool => sqlx::query_as(&sql).bind(message_id).bind(conversation_id).fetch_optional(pool).await)
}

/// The message just before `message_id` in its conversation (one step back along the
/// (conversation, id) index): what grouping and day separators compare with.
pub async fn previous(store: &Store, conversation_id: i64, message_id: i64) -> Result<Option<super::timeline::Prev>, sqlx::Error> {
    let sql = "SELECT author_id, created_at, kind FROM messages WHERE conversation_id = $1 AND id < $2 ORDER BY id DESC LIMIT 1";
    let row: Option<(i64, i64, String)> = store.row(sql, &[Arg::Int(conversation_id), Arg::Int(message_id)]).await?;
    Ok(row.map(|(author_id, created_at, kind)| super::timeline::Prev { author_id, created_at, system: kind == "system" }))
}

/// When `author_id` last wrote a message here (for slowmode).
pub async fn last_sent_at(store: &Store, conversation_id: i64, author_id: i64) -> Result<Option<i64>, sqlx::Error> {
    let sql = "SELECT MAX(created_at) FROM messages WHERE conversation_id = $1 AND author_id = $2 AND kind = 'text'";
    with_db!(store, pool => sqlx::query_scalar(sql).bind(conversation_id).bind(author_id).fetch_one(pool).await)
}

pub async fn get_many(store: &Store, ids: &[i64]) -> Result<Vec<MessageRow>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("{SELECT} WHERE m.id IN ({})", ID_LIST);
    match &store.db {
        Db::Sqlite(db) => db.select(&sql.replace(ID_LIST, SQLITE_IDS), &[Arg::Text(&json_ids(ids))]).await,
        Db::Postgres(pool) => sqlx::query_as(&sql.replace(ID_LIST, POSTGRES_IDS)).bind(ids).fetch_all(pool).await,
    }
}

/// Where a statement takes a list of ids: one bound parameter, not a formatted list,
/// so the statement text (and its prepared statement) is the same for every list.
pub(crate) const ID_LIST: &str = "<ids>";
pub(crate) const SQLITE_IDS: &str = "SELECT value FROM json_each($1)";
pub(crate) const POSTGRES_IDS: &str = "SELECT unnest($1::bigint[])";

pub(crate) fn json_ids(ids: &[i64]) -> String {
    let mut json = String::with_capacity(ids.len() * 8 + 2);
    json.push('[');
    for (n, id) in ids.iter().enumerate() {
        if n > 0 {
            json.push(',');
        }
        json.push_str(&id.to_string());
    }
    json.push(']');
    json
}

pub async fn pinned(store: &Store, conversation_id: i64) -> Result<Vec<MessageRow>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE m.conversation_id = $1 AND m.pinned_at IS NOT NULL AND m.deleted_at IS NULL ORDER BY m.pinned_at DESC LIMIT 100");
    with_db!(store, pool => sqlx::query_as(&sql).bind(conversation_id).fetch_all(pool).await)
}

pub async fn edit(store: &Store, message_id: i64, body: &str, html: &str, mentions: &[i64], conversation_id: i64) -> Result<(), sqlx::Error> {
    with_db!(store, pool => {
        let mut tx = pool.begin_write().await?;
        sqlx::query("UPDATE messages SET body = $1, html = $2, edited_at = $3 WHERE id = $4")
            .bind(body)
            .bind(html)
            .bind(now_ms())
            .bind(message_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM mentions WHERE message_id = $1").bind(message_id).execute(&mut *tx).await?;
        for user_id in mentions {
            sqlx::query("INSERT INTO mentions (message_id, user_id, conversation_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(message_id)
                .bind(user_id)
                .bind(conversation_id)
                .execute(&mut *tx)
                .await?;
        }
        (*tx).append_events(&[NewEvent::new(Kind::MessageChanged, conversation_id).subject(message_id)]).await?;
        tx.commit().await
    })?;
    store.signal_commit();
    Ok(())
}

/// Leaves a tombstone: the row stays so replies still point somewhere, the text goes.
/// A moderator deleting someone else's channel message passes the audit row, written
/// in the same transaction.
pub async fn delete(store: &Store, conversation_id: i64, message_id: i64, audit: Option<&crate::servers::audit::Entry>) -> Result<(), sqlx::Error> {
    with_db!(store, pool => {
        let mut tx = pool.begin_write().await?;
        sqlx::query("UPDATE messages SET body = '', html = '', deleted_at = $1, pinned_at = NULL WHERE id = $2")
            .bind(now_ms())
            .bind(message_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM reactions WHERE message_id = $1").bind(message_id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM mentions WHERE message_id = $1").bind(message_id).execute(&mut *tx).await?;
        (*tx).append_events(&[NewEvent::new(Kind::MessageChanged, conversation_id).subject(message_id)]).await?;
        if let Some(entry) = audit {
            crate::write_audit!(tx, entry).await?;
        }
        tx.commit().await
    })?;
    store.signal_commit();
    Ok(())
}

pub async fn set_pinned(store: &Store, conversation_id: i64, message_id: i64, by: Option<i64>) -> Result<(), sqlx::Error> {
    let pinned_at = by.map(|_| now_ms());
    with_db!(store, pool => {
        let mut tx = pool.begin_write().await?;
        sqlx::query("UPDATE messages SET pinned_at = $1, pinned_by = $2 WHERE id = $3")
            .bind(pinned_at)
            .bind(by)
            .bind(message_id)
            .execute(&mut *tx)
            .await?;
        (*tx).append_events(&[NewEvent::new(Kind::MessageChanged, conversation_id).subject(message_id)]).await?;
        tx.commit().await
    })?;
    store.signal_commit();
    Ok(())
}

/// Adds the reaction, or takes it away if the user had already reacted so.
pub async fn toggle_reaction(store: &Store, conversation_id: i64, message_id: i64, user_id: i64, emoji: &str) -> Result<(), sqlx::Error> {
    with_db!(store, pool => {
        let mut tx = pool.begin_write().await?;
        let removed = sqlx::query("DELETE FROM reactions WHERE message_id = $1 AND user_id = $2 AND emoji = $3")
            .bind(message_id)
            .bind(user_id)
            .bind(emoji)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if removed == 0 {
            sqlx::query("INSERT INTO reactions (message_id, user_id, emoji, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
                .bind(message_id)
                .bind(user_id)
                .bind(emoji)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
        }
        (*tx).append_events(&[NewEvent::new(Kind::MessageChanged, conversation_id).subject(message_id)]).await?;
        tx.commit().await
    })?;
    store.signal_commit();
    Ok(())
}

/// A reaction (`emoji` set) or a mention (`emoji` empty; `name` is the username).
#[derive(sqlx::FromRow)]
pub struct AnnotationRow {
    pub message_id: i64,
    pub emoji: String,
    pub user_id: i64,
    pub name: String,
}

crate::direct_row!(AnnotationRow { message_id, emoji, user_id, name });

/// Reactions (in the order they were made) and mentions of `message_ids`, in one
/// statement: a page's messages need both, and every statement is a round trip.
pub async fn annotations(store: &Store, message_ids: &[i64]) -> Result<Vec<AnnotationRow>, sqlx::Error> {
    if message_ids.is_empty() {
        return Ok(Vec::new());
    }
    const SQL: &str = concat!("SELECT r.message_id, r.emoji, r.user_id, ", crate::shown_name_sql!("u"), " AS name, r.created_at AS at
         FROM reactions r JOIN users u ON u.id = r.user_id WHERE r.message_id IN (<ids>)
         UNION ALL
         SELECT n.message_id, '' AS emoji, n.user_id, u.username AS name, 0 AS at
         FROM mentions n JOIN users u ON u.id = n.user_id WHERE n.message_id IN (<ids>)
         ORDER BY 1, 5, 3");
    match &store.db {
        Db::Sqlite(db) => db.select(&SQL.replace(ID_LIST, SQLITE_IDS), &[Arg::Text(&json_ids(message_ids))]).await,
        Db::Postgres(pool) => sqlx::query_as(&SQL.replace(ID_LIST, POSTGRES_IDS)).bind(message_ids).fetch_all(pool).await,
    }
}

/// The first message after `last_read_id` that someone else wrote.
pub async fn first_unread(store: &Store, conversation_id: i64, user_id: i64, last_read_id: i64) -> Result<Option<i64>, sqlx::Error> {
    let sql = "SELECT MIN(id) FROM messages WHERE conversation_id = $1 AND id > $2 AND author_id <> $3 AND deleted_at IS NULL";
    store.scalar(sql, &[Arg::Int(conversation_id), Arg::Int(last_read_id), Arg::Int(user_id)]).await
}
