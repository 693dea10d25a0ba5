//! The one authorization check every conversation route goes through. Someone who is
//! not a member gets 404, exactly as if the conversation did not exist.

use crate::error::{AppError, AppResult};
use crate::store::Store;
use crate::with_db;

use super::model::{Access, Conversation, Role};

pub async fn require(store: &Store, user_id: i64, conversation_id: i64) -> AppResult<Access> {
    let sql = "SELECT c.id, c.kind, c.name, c.last_message_id, m.role, m.last_read_id
               FROM conversations c JOIN members m ON m.conversation_id = c.id AND m.user_id = $2
               WHERE c.id = $1";
    let row: Option<(i64, String, String, i64, String, i64)> =
        with_db!(store, pool => sqlx::query_as(sql).bind(conversation_id).bind(user_id).fetch_optional(pool).await)?;
    let (id, kind, name, last_message_id, role, last_read_id) = row.ok_or(AppError::NotFound)?;
    Ok(Access {
        conversation: Conversation { id, kind, name, last_message_id },
        user_id,
        role: Role::parse(&role),
        last_read_id,
    })
}

/// For members only: they can see the conversation, so a refused action says so (403).
pub fn ensure(allowed: bool) -> AppResult<()> {
    if allowed { Ok(()) } else { Err(AppError::Forbidden("You do not have permission to do that here.")) }
}
