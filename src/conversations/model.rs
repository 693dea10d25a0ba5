//! Conversation types: kinds, member roles, and what a member may do in one.

use serde::Deserialize;

use crate::servers::permissions::Permissions;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Member,
    Admin,
    Owner,
}

impl Role {
    pub fn parse(text: &str) -> Role {
        match text {
            "owner" => Role::Owner,
            "admin" => Role::Admin,
            _ => Role::Member,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Role::Owner => "Owner",
            Role::Admin => "Admin",
            Role::Member => "Member",
        }
    }
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Conversation {
    pub id: i64,
    pub kind: String,
    pub name: String,
    pub last_message_id: i64,
}

/// A user's membership in a conversation: the only way handlers get at one, from
/// `access::require`, so every action is checked against it.
#[derive(Clone, Debug)]
pub struct Access {
    pub conversation: Conversation,
    pub user_id: i64,
    pub role: Role,
    pub last_read_id: i64,
    /// Set for a server channel: what the permission engine allows here.
    pub channel: Option<ChannelRights>,
    /// The member's own notification level and mute here (read with the membership,
    /// so the page needs no query of its own for its Notifications form).
    pub notify: crate::notifications::level::Setting,
}

/// A member's rights in one server channel, from `servers::context`.
#[derive(Clone, Debug)]
pub struct ChannelRights {
    pub server_id: i64,
    pub permissions: Permissions,
    pub topic: String,
    pub slowmode_seconds: i64,
    /// A timeout in force until then (epoch ms): reading only.
    pub timed_out_until: Option<i64>,
    /// The server as this member sees it (for the page's channel list).
    pub server: std::sync::Arc<crate::servers::context::ServerAccess>,
}

impl ChannelRights {
    pub fn has(&self, permission: Permissions) -> bool {
        self.permissions.contains(permission)
    }

    /// MANAGE_MESSAGES or MANAGE_CHANNELS send past slowmode.
    pub fn bypasses_slowmode(&self) -> bool {
        self.has(Permissions::MANAGE_MESSAGES) || self.has(Permissions::MANAGE_CHANNELS)
    }
}

impl Access {
    pub fn is_channel(&self) -> bool {
        self.channel.is_some()
    }

    /// Sending: always in DMs and groups; SEND_MESSAGES in a channel.
    pub fn can_send(&self) -> bool {
        self.channel.as_ref().is_none_or(|c| c.has(Permissions::SEND_MESSAGES))
    }

    /// Files with messages: anyone in DMs and groups, ATTACH_FILES in a channel.
    pub fn can_attach(&self) -> bool {
        self.channel.as_ref().is_none_or(|c| c.has(Permissions::ATTACH_FILES))
    }

    /// Reacting: always in DMs and groups; ADD_REACTIONS in a channel.
    pub fn can_react(&self) -> bool {
        self.channel.as_ref().is_none_or(|c| c.has(Permissions::ADD_REACTIONS))
    }

    /// Deleting or pinning others' messages in a channel.
    fn manages_messages(&self) -> bool {
        self.channel.as_ref().is_some_and(|c| c.has(Permissions::MANAGE_MESSAGES))
    }

    /// Groups and channels: deleting others' messages and pinning are for moderators,
    /// so the message partial marks those buttons `mod-only`.
    pub fn moderated(&self) -> bool {
        self.is_group() || self.is_channel()
    }

    pub fn is_group(&self) -> bool {
        self.conversation.kind == "group"
    }

    pub fn is_dm(&self) -> bool {
        self.conversation.kind == "dm"
    }

    /// Rename, add and remove members.
    pub fn can_manage(&self) -> bool {
        self.is_group() && self.role >= Role::Admin
    }

    /// Promote and demote admins.
    pub fn can_set_roles(&self) -> bool {
        self.is_group() && self.role == Role::Owner
    }

    /// Any member pins in a DM; admins do in groups.
    pub fn can_pin(&self) -> bool {
        if self.is_channel() {
            return self.manages_messages();
        }
        !self.is_group() || self.role >= Role::Admin
    }

    /// Authors delete their own messages; group admins delete anyone's.
    pub fn can_delete(&self, author_id: i64) -> bool {
        author_id == self.user_id || (self.is_group() && self.role >= Role::Admin) || self.manages_messages()
    }

    /// The owner removes anyone but themself; admins remove plain members.
    pub fn can_remove(&self, target: Role) -> bool {
        self.is_group() && target < self.role && self.role >= Role::Admin
    }
}

/// Where in a conversation's history a page starts.
#[derive(Clone, Copy, Debug, Deserialize, Default)]
pub struct HistoryQuery {
    pub before: Option<i64>,
    pub around: Option<i64>,
    pub reply_to: Option<i64>,
}

pub const PAGE_SIZE: i64 = 50;
pub const MAX_MESSAGE_CHARS: usize = 4000;
pub const MAX_GROUP_NAME_CHARS: usize = 100;

/// A message body as typed: trimmed, 1–4,000 characters.
pub fn parse_body(input: &str) -> Result<String, String> {
    let body = input.trim();
    if body.is_empty() {
        return Err("Type a message first.".into());
    }
    let chars = body.chars().count();
    if chars > MAX_MESSAGE_CHARS {
        return Err(format!("Messages can have at most 4,000 characters; this one has {chars}."));
    }
    Ok(body.replace("\r\n", "\n"))
}

/// A group name: trimmed, 1–100 characters, no control characters.
pub fn parse_group_name(input: &str) -> Result<String, &'static str> {
    let name = input.trim();
    if name.is_empty() {
        return Err("Give the group a name.");
    }
    if name.chars().count() > MAX_GROUP_NAME_CHARS {
        return Err("Group names can have at most 100 characters.");
    }
    if name.chars().any(|c| c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c) || ('\u{2066}'..='\u{2069}').contains(&c)) {
        return Err("Group names cannot contain control characters.");
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(kind: &str, role: Role) -> Access {
        Access {
            conversation: Conversation { id: 1, kind: kind.into(), name: String::new(), last_message_id: 0 },
            user_id: 10,
            role,
            last_read_id: 0,
            channel: None,
            notify: Default::default(),
        }
    }

    #[test]
    fn what_each_role_may_do() {
        let dm = access("dm", Role::Member);
        assert!(dm.can_pin() && !dm.can_manage() && dm.can_delete(10) && !dm.can_delete(11));
        let member = access("group", Role::Member);
        assert!(!member.can_pin() && !member.can_manage() && !member.can_remove(Role::Member) && !member.can_delete(11));
        let admin = access("group", Role::Admin);
        assert!(admin.can_pin() && admin.can_manage() && admin.can_delete(11) && !admin.can_set_roles());
        assert!(admin.can_remove(Role::Member) && !admin.can_remove(Role::Admin) && !admin.can_remove(Role::Owner));
        let owner = access("group", Role::Owner);
        assert!(owner.can_set_roles() && owner.can_remove(Role::Admin) && !owner.can_remove(Role::Owner));
    }

    #[test]
    fn bodies_and_names() {
        assert!(parse_body("   ").is_err());
        assert_eq!(parse_body("  hi \r\n there ").unwrap(), "hi \n there");
        assert!(parse_body(&"x".repeat(4000)).is_ok());
        assert!(parse_body(&"x".repeat(4001)).is_err());
        assert!(parse_group_name("").is_err());
        assert!(parse_group_name("Friends").is_ok());
        assert!(parse_group_name("a\u{202e}b").is_err());
    }
}
