//! SQL for a server's channels and categories: creating, renaming, topic, slowmode,
//! ordering and deleting. Channels are conversations (kind 'text' | 'voice'), so a
//! new text channel gets its members from the channel-access re-plan.

use crate::store::{BeginWrite, Store, now_ms};
use crate::with_db;

use super::audit::Entry;

/// Runs `$body` in a write transaction with a channel-access re-plan and an audit row.
macro_rules! channel_write {
    ($store:expr, $server:expr, $audit:expr, |$tx:ident| $body:expr) => {{
        let store: &Store = $store;
        let entry: &Entry = $audit;
        let value = with_db!(store, pool => {
            let mut $tx = pool.begin_write().await?;
            let value = $body;
            $crate::sync_channel_access!($tx, $server).await?;
            $crate::write_audit!($tx, entry).await?;
            $tx.commit().await?;
            value
        });
        store.signal_commit();
        Ok::<_, sqlx::Error>(value)
    }};
}

pub async fn create_channel(store: &Store, server_id: i64, creator: i64, kind: &str, name: &str, category: Option<i64>, audit: &Entry) -> Result<i64, sqlx::Error> {
    let now = now_ms();
    channel_write!(store, server_id, audit, |tx| {
        let position: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), -1) + 1 FROM conversations WHERE server_id = $1")
            .bind(server_id).fetch_one(&mut *tx).await?;
        sqlx::query_scalar::<_, i64>(
            "INSERT INTO conversations (kind, name, server_id, category_id, position, created_by, created_at, last_activity_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
        )
        .bind(kind).bind(name).bind(server_id).bind(category).bind(position).bind(creator).bind(now)
        .fetch_one(&mut *tx).await?
    })
}

/// Name, topic, slowmode and category of a channel; the conversation event tells open
/// pages about the new name.
/// A channel's editable settings, as checked by the form.
pub struct ChannelSettings<'a> {
    pub name: &'a str,
    pub topic: &'a str,
    pub slowmode_seconds: i64,
    pub category: Option<i64>,
}

pub async fn update_channel(store: &Store, server_id: i64, channel_id: i64, settings: &ChannelSettings<'_>, audit: &Entry) -> Result<(), sqlx::Error> {
    let ChannelSettings { name, topic, slowmode_seconds: slowmode, category } = *settings;
    channel_write!(store, server_id, audit, |tx| {
        sqlx::query("UPDATE conversations SET name = $1, topic = $2, slowmode_seconds = $3, category_id = $4 WHERE id = $5 AND server_id = $6")
            .bind(name).bind(topic).bind(slowmode).bind(category).bind(channel_id).bind(server_id).execute(&mut *tx).await?;
        use crate::store::log::{AppendEvents, Kind, NewEvent};
        (*tx).append_events(&[NewEvent::new(Kind::Conversation, channel_id)]).await?
    })
}

/// Sync a channel with its category's overrides (true) or give it its own (false).
pub async fn set_synced(store: &Store, server_id: i64, channel_id: i64, synced: bool, audit: &Entry) -> Result<(), sqlx::Error> {
    channel_write!(store, server_id, audit, |tx| {
        sqlx::query("UPDATE conversations SET synced = $1 WHERE id = $2 AND server_id = $3")
            .bind(synced).bind(channel_id).bind(server_id).execute(&mut *tx).await?;
    })?;
    Ok(())
}

/// Deletes a channel: its members' rows go first (with `left` events), then the
/// conversation with its messages.
pub async fn delete_channel(store: &Store, server_id: i64, channel_id: i64, audit: &Entry) -> Result<(), sqlx::Error> {
    channel_write!(store, server_id, audit, |tx| {
        use crate::store::log::{AppendEvents, Kind, NewEvent};
        let users: Vec<i64> = sqlx::query_scalar("SELECT user_id FROM members WHERE conversation_id = $1")
            .bind(channel_id).fetch_all(&mut *tx).await?;
        let events: Vec<NewEvent> = users.iter().map(|&u| NewEvent::new(Kind::Left, channel_id).user(u)).collect();
        (*tx).append_events(&events).await?;
        sqlx::query("DELETE FROM overrides WHERE target_kind = 'channel' AND target_id = $1").bind(channel_id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM conversations WHERE id = $1 AND server_id = $2").bind(channel_id).bind(server_id).execute(&mut *tx).await?;
    })?;
    Ok(())
}

/// Swaps a channel's position with its neighbour's in the same category (`up`: the one
/// before it). Positions are renumbered densely first, so equal positions cannot stick.
pub async fn move_channel(store: &Store, server_id: i64, channel_id: i64, up: bool, audit: &Entry) -> Result<(), sqlx::Error> {
    channel_write!(store, server_id, audit, |tx| {
        let rows: Vec<(i64, Option<i64>)> = sqlx::query_as("SELECT id, category_id FROM conversations WHERE server_id = $1 ORDER BY position, id")
            .bind(server_id).fetch_all(&mut *tx).await?;
        let mut order: Vec<(i64, Option<i64>)> = rows;
        if let Some(at) = order.iter().position(|(id, _)| *id == channel_id) {
            let category = order[at].1;
            let neighbour = if up {
                order[..at].iter().rposition(|(_, c)| *c == category)
            } else {
                order[at + 1..].iter().position(|(_, c)| *c == category).map(|i| i + at + 1)
            };
            if let Some(other) = neighbour {
                order.swap(at, other);
            }
        }
        for (position, (id, _)) in order.iter().enumerate() {
            sqlx::query("UPDATE conversations SET position = $1 WHERE id = $2").bind(position as i64).bind(id).execute(&mut *tx).await?;
        }
    })
}

pub async fn create_category(store: &Store, server_id: i64, name: &str, audit: &Entry) -> Result<i64, sqlx::Error> {
    channel_write!(store, server_id, audit, |tx| {
        let position: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), -1) + 1 FROM categories WHERE server_id = $1")
            .bind(server_id).fetch_one(&mut *tx).await?;
        sqlx::query_scalar::<_, i64>("INSERT INTO categories (server_id, name, position) VALUES ($1, $2, $3) RETURNING id")
            .bind(server_id).bind(name).bind(position).fetch_one(&mut *tx).await?
    })
}

pub async fn rename_category(store: &Store, server_id: i64, category_id: i64, name: &str, audit: &Entry) -> Result<(), sqlx::Error> {
    channel_write!(store, server_id, audit, |tx| {
        sqlx::query("UPDATE categories SET name = $1 WHERE id = $2 AND server_id = $3")
            .bind(name).bind(category_id).bind(server_id).execute(&mut *tx).await?;
    })?;
    Ok(())
}

/// Deletes a category; its channels stay, outside any category, keeping the
/// permissions they had (a synced channel takes a copy of the category's overrides).
pub async fn delete_category(store: &Store, server_id: i64, category_id: i64, audit: &Entry) -> Result<(), sqlx::Error> {
    channel_write!(store, server_id, audit, |tx| {
        let synced: Vec<i64> = sqlx::query_scalar("SELECT id FROM conversations WHERE category_id = $1 AND server_id = $2 AND synced")
            .bind(category_id).bind(server_id).fetch_all(&mut *tx).await?;
        for channel in synced {
            sqlx::query(
                "INSERT INTO overrides (server_id, target_kind, target_id, subject_kind, subject_id, allow_bits, deny_bits)
                 SELECT server_id, 'channel', $1, subject_kind, subject_id, allow_bits, deny_bits FROM overrides
                 WHERE target_kind = 'category' AND target_id = $2
                 ON CONFLICT (target_kind, target_id, subject_kind, subject_id) DO NOTHING",
            )
            .bind(channel).bind(category_id).execute(&mut *tx).await?;
        }
        sqlx::query("UPDATE conversations SET category_id = NULL, synced = FALSE WHERE category_id = $1 AND server_id = $2")
            .bind(category_id).bind(server_id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM overrides WHERE target_kind = 'category' AND target_id = $1").bind(category_id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM categories WHERE id = $1 AND server_id = $2").bind(category_id).bind(server_id).execute(&mut *tx).await?;
    })?;
    Ok(())
}

pub async fn move_category(store: &Store, server_id: i64, category_id: i64, up: bool, audit: &Entry) -> Result<(), sqlx::Error> {
    channel_write!(store, server_id, audit, |tx| {
        let mut order: Vec<i64> = sqlx::query_scalar("SELECT id FROM categories WHERE server_id = $1 ORDER BY position, id")
            .bind(server_id).fetch_all(&mut *tx).await?;
        if let Some(at) = order.iter().position(|id| *id == category_id) {
            let other = if up { at.checked_sub(1) } else { Some(at + 1).filter(|&i| i < order.len()) };
            if let Some(other) = other {
                order.swap(at, other);
            }
        }
        for (position, id) in order.iter().enumerate() {
            sqlx::query("UPDATE categories SET position = $1 WHERE id = $2").bind(position as i64).bind(id).execute(&mut *tx).await?;
        }
    })
}
