//! The audit log: every moderator and admin action in a server, with who did it, to
//! what, the value before and after, and the reason given. Rows are written in the
//! same transaction as the action (`write_audit!`), so the log never misses one.

use crate::store::{BeginWrite, Store};
use crate::with_db;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    ServerCreate,
    ServerUpdate,
    ServerTransfer,
    ChannelCreate,
    ChannelUpdate,
    ChannelDelete,
    CategoryCreate,
    CategoryUpdate,
    CategoryDelete,
    RoleCreate,
    RoleUpdate,
    RoleDelete,
    MemberRoles,
    OverrideUpdate,
    InviteCreate,
    InviteRevoke,
    MemberKick,
    MemberBan,
    MemberUnban,
    MemberTimeout,
    MessageDelete,
    VoiceMute,
    VoiceDisconnect,
    VoiceMove,
}

/// Every action with its stored key and what the log page calls it.
pub const ACTIONS: &[(Action, &str, &str)] = &[
    (Action::ServerCreate, "server_create", "Created the server"),
    (Action::ServerUpdate, "server_update", "Changed the server"),
    (Action::ServerTransfer, "server_transfer", "Transferred ownership"),
    (Action::ChannelCreate, "channel_create", "Created a channel"),
    (Action::ChannelUpdate, "channel_update", "Changed a channel"),
    (Action::ChannelDelete, "channel_delete", "Deleted a channel"),
    (Action::CategoryCreate, "category_create", "Created a category"),
    (Action::CategoryUpdate, "category_update", "Changed a category"),
    (Action::CategoryDelete, "category_delete", "Deleted a category"),
    (Action::RoleCreate, "role_create", "Created a role"),
    (Action::RoleUpdate, "role_update", "Changed a role"),
    (Action::RoleDelete, "role_delete", "Deleted a role"),
    (Action::MemberRoles, "member_roles", "Changed a member's roles"),
    (Action::OverrideUpdate, "override_update", "Changed permission overrides"),
    (Action::InviteCreate, "invite_create", "Created an invite"),
    (Action::InviteRevoke, "invite_revoke", "Revoked an invite"),
    (Action::MemberKick, "member_kick", "Kicked a member"),
    (Action::MemberBan, "member_ban", "Banned a member"),
    (Action::MemberUnban, "member_unban", "Unbanned a member"),
    (Action::MemberTimeout, "member_timeout", "Timed out a member"),
    (Action::MessageDelete, "message_delete", "Deleted a message"),
    (Action::VoiceMute, "voice_mute", "Muted or unmuted a member in voice"),
    (Action::VoiceDisconnect, "voice_disconnect", "Disconnected a member from voice"),
    (Action::VoiceMove, "voice_move", "Moved a member to another voice channel"),
];

impl Action {
    pub fn as_str(self) -> &'static str {
        ACTIONS.iter().find(|(a, _, _)| *a == self).map(|(_, key, _)| *key).unwrap_or("")
    }

    pub fn label_of(key: &str) -> &'static str {
        ACTIONS.iter().find(|(_, k, _)| *k == key).map(|(_, _, label)| *label).unwrap_or("Changed something")
    }
}

/// One audit row to write.
#[derive(Clone, Debug)]
pub struct Entry {
    pub server_id: i64,
    pub actor_id: i64,
    pub action: Action,
    pub target_kind: &'static str,
    pub target_id: Option<i64>,
    pub target_name: String,
    pub before: String,
    pub after: String,
    pub reason: String,
}

impl Entry {
    pub fn new(server_id: i64, actor_id: i64, action: Action) -> Entry {
        Entry {
            server_id,
            actor_id,
            action,
            target_kind: "",
            target_id: None,
            target_name: String::new(),
            before: String::new(),
            after: String::new(),
            reason: String::new(),
        }
    }

    pub fn target(mut self, kind: &'static str, id: i64, name: &str) -> Entry {
        self.target_kind = kind;
        self.target_id = Some(id);
        self.target_name = name.to_string();
        self
    }

    pub fn change(mut self, before: impl Into<String>, after: impl Into<String>) -> Entry {
        self.before = before.into();
        self.after = after.into();
        self
    }

    pub fn reason(mut self, reason: &str) -> Entry {
        self.reason = reason.to_string();
        self
    }
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub actor_id: Option<i64>,
    pub actor_name: Option<String>,
    pub action: String,
    pub target_kind: String,
    pub target_name: String,
    pub before_text: String,
    pub after_text: String,
    pub reason: String,
    pub created_at: i64,
}

/// The newest entries first, optionally only one actor's or one action's.
pub async fn list(store: &Store, server_id: i64, actor: Option<i64>, action: Option<&str>, before: Option<i64>) -> Result<Vec<AuditRow>, sqlx::Error> {
    let sql = concat!("SELECT a.id, a.actor_id, ", crate::shown_name_sql!("u"), " AS actor_name, a.action, a.target_kind, a.target_name,
          a.before_text, a.after_text, a.reason, a.created_at
        FROM audit_log a LEFT JOIN users u ON u.id = a.actor_id
        WHERE a.server_id = $1 AND ($2 = 0 OR a.actor_id = $2) AND ($3 = '' OR a.action = $3) AND ($4 = 0 OR a.id < $4)
        ORDER BY a.id DESC LIMIT 100");
    with_db!(store, pool => sqlx::query_as(sql)
        .bind(server_id).bind(actor.unwrap_or(0)).bind(action.unwrap_or("")).bind(before.unwrap_or(0))
        .fetch_all(pool).await)
}

/// Writes one entry on its own, for an action whose change is not in the database
/// (voice moderation: rooms live in memory).
pub async fn record(store: &Store, entry: &Entry) -> Result<(), sqlx::Error> {
    with_db!(store, pool => {
        let mut tx = pool.begin_write().await?;
        crate::write_audit!(tx, entry).await?;
        tx.commit().await?;
    });
    Ok(())
}
