//! Removing stored files nobody can reach any more: those of deleted messages (by their
//! author, a moderator, or a ban's sweep), of deleted conversations, and uploads whose
//! send never happened. Runs after a deletion and every few minutes, so every way a
//! message goes is covered by one place; the object goes first, then its row, so a
//! failure leaves the row to try again.

use std::time::Duration;

use crate::state::AppState;

use super::store::{self, AttachmentRow};

/// How often the sweep runs by itself.
const EVERY: Duration = Duration::from_secs(300);
/// Rows one pass handles.
const BATCH: i64 = 500;

pub fn spawn(state: AppState) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(EVERY);
        loop {
            ticks.tick().await;
            run(&state).await;
        }
    });
}

/// One pass now, in the background: what a deletion calls.
pub fn soon(state: &AppState) {
    let state = state.clone();
    tokio::spawn(async move { run(&state).await });
}

/// Removes everything doomed now; returns how many attachments went.
pub async fn run(state: &AppState) -> usize {
    let mut removed = 0;
    loop {
        let rows = match store::doomed(&state.store, BATCH).await {
            Ok(rows) => rows,
            Err(error) => {
                tracing::warn!(%error, "file sweep could not list attachments");
                return removed;
            }
        };
        let full = rows.len() as i64 == BATCH;
        let before = removed;
        for row in &rows {
            if remove_one(state, row).await {
                removed += 1;
            }
        }
        // A full batch that removed nothing would come back the same: try later.
        if !full || removed == before {
            return removed;
        }
    }
}

/// Deletes one attachment's objects, then its row. False if something stayed.
pub async fn remove_one(state: &AppState, row: &AttachmentRow) -> bool {
    for key in std::iter::once(&row.object_key).chain(row.thumb_key.as_ref()) {
        if let Err(error) = state.files.delete(key).await {
            tracing::warn!(%error, attachment = row.id, "could not delete a stored file");
            return false;
        }
    }
    store::remove(&state.store, row.id).await.is_ok()
}
