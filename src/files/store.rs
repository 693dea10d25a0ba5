//! Attachment rows: written when a file is received, attached to their message by the
//! message writer (same transaction as the message), read for pages and downloads,
//! and removed by the sweep once the objects they name are gone.

use crate::conversations::message_store::{ID_LIST, POSTGRES_IDS, SQLITE_IDS, json_ids};
use crate::store::{Db, Store, now_ms};
use crate::with_db;

/// A stored attachment as the database holds it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct AttachmentRow {
    pub id: i64,
    pub conversation_id: i64,
    pub message_id: Option<i64>,
    pub name: String,
    pub content_type: String,
    pub size: i64,
    pub object_key: String,
    pub thumb_key: Option<String>,
    pub width: Option<i32>,
    pub height: Option<i32>,
}

/// What a received file became, before it is attached to a message.
pub struct NewAttachment<'a> {
    pub uploader_id: i64,
    pub conversation_id: i64,
    pub name: &'a str,
    pub content_type: &'a str,
    pub size: i64,
    pub object_key: &'a str,
    pub thumb_key: Option<&'a str>,
    pub dimensions: Option<(u32, u32)>,
}

pub async fn insert(store: &Store, new: &NewAttachment<'_>) -> Result<i64, sqlx::Error> {
    let (width, height) = match new.dimensions {
        Some((w, h)) => (Some(w as i32), Some(h as i32)),
        None => (None, None),
    };
    with_db!(store, pool => sqlx::query_scalar(
        "INSERT INTO attachments (uploader_id, conversation_id, name, content_type, size, object_key, thumb_key, width, height, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
    )
    .bind(new.uploader_id)
    .bind(new.conversation_id)
    .bind(new.name)
    .bind(new.content_type)
    .bind(new.size)
    .bind(new.object_key)
    .bind(new.thumb_key)
    .bind(width)
    .bind(height)
    .bind(now_ms())
    .fetch_one(pool)
    .await)
}

const COLUMNS: &str = "a.id, a.conversation_id, a.message_id, a.name, a.content_type, a.size, a.object_key, a.thumb_key, a.width, a.height";

/// The attachments of `message_ids`, in message and upload order.
pub async fn for_messages(store: &Store, message_ids: &[i64]) -> Result<Vec<AttachmentRow>, sqlx::Error> {
    if message_ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT {COLUMNS} FROM attachments a WHERE a.message_id IN ({ID_LIST}) ORDER BY a.message_id, a.position, a.id");
    match &store.db {
        Db::Sqlite(db) => db.select(&sql.replace(ID_LIST, SQLITE_IDS), &[crate::store::Arg::Text(&json_ids(message_ids))]).await,
        Db::Postgres(pool) => sqlx::query_as(&sql.replace(ID_LIST, POSTGRES_IDS)).bind(message_ids).fetch_all(pool).await,
    }
}

crate::direct_row!(AttachmentRow { id, conversation_id, message_id, name, content_type, size, object_key, thumb_key, width, height });

/// An attachment of a live (not deleted) message in `conversation_id`: what may be served.
pub async fn shown(store: &Store, conversation_id: i64, attachment_id: i64) -> Result<Option<AttachmentRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM attachments a JOIN messages m ON m.id = a.message_id
         WHERE a.id = $1 AND a.conversation_id = $2 AND m.conversation_id = $2 AND m.deleted_at IS NULL"
    );
    with_db!(store, pool => sqlx::query_as(&sql).bind(attachment_id).bind(conversation_id).fetch_optional(pool).await)
}

/// Uploads left unattached longer than this are abandoned (a send that failed after them).
pub const ABANDONED_AFTER_MS: i64 = 60 * 60 * 1000;

/// Rows whose objects should go: their message was deleted (or is gone with its
/// conversation), or they were never attached.
pub async fn doomed(store: &Store, limit: i64) -> Result<Vec<AttachmentRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM attachments a LEFT JOIN messages m ON m.id = a.message_id
         WHERE (a.message_id IS NOT NULL AND (m.id IS NULL OR m.deleted_at IS NOT NULL))
            OR (a.message_id IS NULL AND a.created_at < $1)
         ORDER BY a.id LIMIT $2"
    );
    let before = now_ms() - ABANDONED_AFTER_MS;
    with_db!(store, pool => sqlx::query_as(&sql).bind(before).bind(limit).fetch_all(pool).await)
}

pub async fn remove(store: &Store, attachment_id: i64) -> Result<(), sqlx::Error> {
    with_db!(store, pool => sqlx::query("DELETE FROM attachments WHERE id = $1").bind(attachment_id).execute(pool).await.map(|_| ()))
}

/// Unattached uploads of one sender, by id: a send that failed after storing them.
pub async fn unattached(store: &Store, uploader_id: i64, ids: &[i64]) -> Result<Vec<AttachmentRow>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT {COLUMNS} FROM attachments a WHERE a.id IN ({ID_LIST}) AND a.uploader_id = $2 AND a.message_id IS NULL");
    match &store.db {
        Db::Sqlite(pool) => sqlx::query_as(&sql.replace(ID_LIST, SQLITE_IDS)).bind(json_ids(ids)).bind(uploader_id).fetch_all(pool).await,
        Db::Postgres(pool) => sqlx::query_as(&sql.replace(ID_LIST, POSTGRES_IDS)).bind(ids).bind(uploader_id).fetch_all(pool).await,
    }
}
