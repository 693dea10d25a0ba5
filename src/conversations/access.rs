//! The one authorization check every conversation route goes through. Someone who is
//! not a member gets 404, exactly as if the conversation did not exist.

use crate::error::{AppError, AppResult};
use crate::store::Store;

use crate::servers::{self, permissions::Permissions};

use super::model::{Access, ChannelRights, Conversation, Role};

/// A DM, group or text channel the user may see (a voice channel is not a conversation
/// to write in: 404, like anything else they cannot use here).
pub async fn require(store: &Store, user_id: i64, conversation_id: i64) -> AppResult<Access> {
    let access = require_any(store, user_id, conversation_id).await?;
    if access.conversation.kind == "voice" {
        return Err(AppError::NotFound);
    }
    Ok(access)
}

/// A voice channel the user may see.
pub async fn require_voice(store: &Store, user_id: i64, conversation_id: i64) -> AppResult<Access> {
    let access = require_any(store, user_id, conversation_id).await?;
    if access.conversation.kind != "voice" {
        return Err(AppError::NotFound);
    }
    Ok(access)
}

/// A room one may be in: a voice channel the user may see, or a DM or group they are
/// a member of (where calls happen). Text channels are not rooms.
pub async fn require_room(store: &Store, user_id: i64, conversation_id: i64) -> AppResult<Access> {
    let access = require_any(store, user_id, conversation_id).await?;
    if access.conversation.kind != "voice" && access.is_channel() {
        return Err(AppError::NotFound);
    }
    Ok(access)
}

async fn require_any(store: &Store, user_id: i64, conversation_id: i64) -> AppResult<Access> {
    let sql = "SELECT c.id, c.kind, c.name, c.last_message_id, m.role, m.last_read_id, c.server_id, s.version, ns.level, ns.muted_until
               FROM conversations c JOIN members m ON m.conversation_id = c.id AND m.user_id = $2
               LEFT JOIN servers s ON s.id = c.server_id
               LEFT JOIN notification_settings ns ON ns.user_id = $2 AND ns.conversation_id = c.id
               WHERE c.id = $1";
    type Row = (i64, String, String, i64, String, i64, Option<i64>, Option<i64>, Option<String>, Option<i64>);
    let row: Option<Row> = store.row(sql, &[crate::store::Arg::Int(conversation_id), crate::store::Arg::Int(user_id)]).await?;
    let (id, kind, name, last_message_id, role, last_read_id, server_id, version, level, muted_until) = row.ok_or(AppError::NotFound)?;
    // A channel's member row says VIEW_CHANNEL held when it was last planned; the rest
    // of what one may do there is asked of the permission engine now.
    let channel = match (server_id, version) {
        (Some(server_id), Some(version)) => Some(channel_rights(store, user_id, server_id, version, id).await?),
        (Some(_), None) => return Err(AppError::NotFound),
        _ => None,
    };
    Ok(Access {
        conversation: Conversation { id, kind, name, last_message_id },
        user_id,
        role: Role::parse(&role),
        last_read_id,
        channel,
        notify: crate::notifications::level::Setting::from_row(level.as_deref(), muted_until),
    })
}

async fn channel_rights(store: &Store, user_id: i64, server_id: i64, version: i64, channel_id: i64) -> AppResult<ChannelRights> {
    let server = servers::context::require_at(store, user_id, server_id, version).await?;
    let channel = server.shape.channel(channel_id).ok_or(AppError::NotFound)?;
    let permissions = server.channel_permissions(channel);
    if !permissions.contains(Permissions::VIEW_CHANNEL) {
        return Err(AppError::NotFound);
    }
    let (topic, slowmode_seconds) = (channel.topic.clone(), channel.slowmode_seconds);
    Ok(ChannelRights {
        server_id,
        permissions,
        topic,
        slowmode_seconds,
        timed_out_until: server.me.timeout_until.filter(|&until| until > crate::store::now_ms()),
        server: std::sync::Arc::new(server),
    })
}

/// For members only: they can see the conversation, so a refused action says so (403).
pub fn ensure(allowed: bool) -> AppResult<()> {
    if allowed { Ok(()) } else { Err(AppError::Forbidden("You do not have permission to do that here.")) }
}
