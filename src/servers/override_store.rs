//! SQL for permission overrides on channels and categories. Each write re-plans channel
//! access in its transaction (an override is what makes a channel private) and writes
//! its audit row there.

use crate::store::{BeginWrite, Store};
use crate::with_db;

use super::audit::Entry;
use super::permissions::Override;
use super::store::server_write;

/// Where an override applies and to whom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    pub target_kind: &'static str,
    pub target_id: i64,
    pub subject_kind: &'static str,
    pub subject_id: i64,
}

/// A synced channel about to get its own overrides starts from a copy of its category's,
/// so un-syncing changes nothing by itself (Discord does the same).
macro_rules! unsync {
    ($tx:ident, $server:expr, $unsync:expr) => {
        async {
            if let Some((channel, category)) = $unsync {
                sqlx::query("DELETE FROM overrides WHERE target_kind = 'channel' AND target_id = $1").bind(channel).execute(&mut *$tx).await?;
                sqlx::query(
                    "INSERT INTO overrides (server_id, target_kind, target_id, subject_kind, subject_id, allow_bits, deny_bits)
                     SELECT server_id, 'channel', $1, subject_kind, subject_id, allow_bits, deny_bits FROM overrides
                     WHERE target_kind = 'category' AND target_id = $2",
                )
                .bind(channel).bind(category).execute(&mut *$tx).await?;
                sqlx::query("UPDATE conversations SET synced = FALSE WHERE id = $1 AND server_id = $2")
                    .bind(channel).bind($server).execute(&mut *$tx).await?;
            }
            Ok::<(), sqlx::Error>(())
        }
    };
}

/// Sets (or, with `keep_existing`, only adds when absent) the override in `slot`.
/// `unsync` = (channel, category) when the channel is synced and gets its own now.
pub async fn put(store: &Store, server_id: i64, slot: Slot, value: Override, keep_existing: bool, unsync: Option<(i64, i64)>, audit: &Entry) -> Result<(), sqlx::Error> {
    let conflict = if keep_existing {
        "DO NOTHING"
    } else {
        "DO UPDATE SET allow_bits = excluded.allow_bits, deny_bits = excluded.deny_bits"
    };
    let sql = format!(
        "INSERT INTO overrides (server_id, target_kind, target_id, subject_kind, subject_id, allow_bits, deny_bits)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (target_kind, target_id, subject_kind, subject_id) {conflict}"
    );
    server_write!(store, server_id, Some(audit), |tx| {
        unsync!(tx, server_id, unsync).await?;
        sqlx::query(&sql)
            .bind(server_id).bind(slot.target_kind).bind(slot.target_id).bind(slot.subject_kind).bind(slot.subject_id)
            .bind(value.allow.bits() as i64).bind(value.deny.bits() as i64)
            .execute(&mut *tx).await?;
    })?;
    Ok(())
}

pub async fn remove(store: &Store, server_id: i64, slot: Slot, unsync: Option<(i64, i64)>, audit: &Entry) -> Result<(), sqlx::Error> {
    server_write!(store, server_id, Some(audit), |tx| {
        unsync!(tx, server_id, unsync).await?;
        sqlx::query("DELETE FROM overrides WHERE server_id = $1 AND target_kind = $2 AND target_id = $3 AND subject_kind = $4 AND subject_id = $5")
            .bind(server_id).bind(slot.target_kind).bind(slot.target_id).bind(slot.subject_kind).bind(slot.subject_id)
            .execute(&mut *tx).await?;
    })?;
    Ok(())
}
