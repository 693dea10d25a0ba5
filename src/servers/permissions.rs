//! Who may do what in a server: the permission bitfield, per-channel overrides, the one
//! function that resolves a member's permissions in a channel (Discord's order, design
//! notes §5 and §11), the server-wide resolution, and the role hierarchy.
//!
//! Everything here is pure — no database, no async — so every handler, search, the SSE
//! filter, replay and unread counts can call the same code and the tests can try it
//! exhaustively.

use std::ops::{BitAnd, BitOr, BitOrAssign, Sub};

/// A set of permissions, stored as a `u64` in role and override rows.
///
/// The bit positions are part of the stored data: a bit, once given a meaning, keeps it
/// forever. New permissions take the next free bit; a retired one leaves its bit unused.
/// All bits sit below bit 63, so `bits() as i64` is lossless for an SQL `BIGINT`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Permissions(u64);

impl Permissions {
    pub const VIEW_CHANNEL: Self = Self(1 << 0);
    pub const SEND_MESSAGES: Self = Self(1 << 1);
    pub const READ_MESSAGE_HISTORY: Self = Self(1 << 2);
    pub const ADD_REACTIONS: Self = Self(1 << 3);
    pub const ATTACH_FILES: Self = Self(1 << 4);
    pub const EMBED_LINKS: Self = Self(1 << 5);
    pub const MENTION_EVERYONE: Self = Self(1 << 6);
    pub const MANAGE_MESSAGES: Self = Self(1 << 7);
    pub const MANAGE_CHANNELS: Self = Self(1 << 8);
    pub const MANAGE_ROLES: Self = Self(1 << 9);
    pub const MANAGE_SERVER: Self = Self(1 << 10);
    pub const CREATE_INVITE: Self = Self(1 << 11);
    pub const KICK_MEMBERS: Self = Self(1 << 12);
    pub const BAN_MEMBERS: Self = Self(1 << 13);
    pub const MODERATE_MEMBERS: Self = Self(1 << 14);
    pub const VIEW_AUDIT_LOG: Self = Self(1 << 15);
    pub const CONNECT: Self = Self(1 << 16);
    pub const SPEAK: Self = Self(1 << 17);
    pub const MUTE_MEMBERS: Self = Self(1 << 18);
    pub const ADMINISTRATOR: Self = Self(1 << 19);

    pub const fn empty() -> Self {
        Self(0)
    }

    /// Every permission in [`ALL`].
    pub const fn all() -> Self {
        let mut bits = 0;
        let mut i = 0;
        while i < ALL.len() {
            bits |= ALL[i].0.0;
            i += 1;
        }
        Self(bits)
    }

    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Reads stored bits. Bits this build does not know (written by a newer version) are
    /// dropped: a permission nobody here can check must not survive into a grant check.
    pub const fn from_bits(bits: u64) -> Self {
        Self(bits & Self::all().0)
    }

    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    pub const fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    pub const fn difference(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    /// The keys of the permissions in this set, in [`ALL`]'s order (for forms and the
    /// audit log's before/after).
    pub fn keys(self) -> impl Iterator<Item = &'static str> {
        ALL.iter().filter(move |(p, ..)| self.contains(*p)).map(|(_, key, ..)| *key)
    }
}

impl BitOr for Permissions {
    type Output = Self;
    fn bitor(self, other: Self) -> Self {
        self.union(other)
    }
}

impl BitOrAssign for Permissions {
    fn bitor_assign(&mut self, other: Self) {
        *self = self.union(other);
    }
}

impl BitAnd for Permissions {
    type Output = Self;
    fn bitand(self, other: Self) -> Self {
        self.intersection(other)
    }
}

impl Sub for Permissions {
    type Output = Self;
    fn sub(self, other: Self) -> Self {
        self.difference(other)
    }
}

/// Every permission with its form key, label and one line of help, in the order forms
/// show them.
pub const ALL: &[(Permissions, &str, &str, &str)] = &[
    (Permissions::VIEW_CHANNEL, "view_channel", "View channel", "See the channel and its messages as they arrive."),
    (Permissions::SEND_MESSAGES, "send_messages", "Send messages", "Post messages in text channels."),
    (Permissions::READ_MESSAGE_HISTORY, "read_message_history", "Read message history", "Read messages sent before they opened the channel."),
    (Permissions::ADD_REACTIONS, "add_reactions", "Add reactions", "React to messages with emoji."),
    (Permissions::ATTACH_FILES, "attach_files", "Attach files", "Upload files and images with their messages."),
    (Permissions::EMBED_LINKS, "embed_links", "Embed links", "Show previews of the links they post."),
    (Permissions::MENTION_EVERYONE, "mention_everyone", "Mention @everyone and @here", "Notify everyone in the channel at once."),
    (Permissions::MANAGE_MESSAGES, "manage_messages", "Manage messages", "Delete other people's messages and pin messages."),
    (Permissions::MANAGE_CHANNELS, "manage_channels", "Manage channels", "Create, edit, reorder and delete channels and categories."),
    (Permissions::MANAGE_ROLES, "manage_roles", "Manage roles", "Create and edit roles below their highest role, and channel overrides."),
    (Permissions::MANAGE_SERVER, "manage_server", "Manage server", "Rename the server and change its description and settings."),
    (Permissions::CREATE_INVITE, "create_invite", "Create invites", "Make invite links that bring people into the server."),
    (Permissions::KICK_MEMBERS, "kick_members", "Kick members", "Remove members below their highest role; they may rejoin by invite."),
    (Permissions::BAN_MEMBERS, "ban_members", "Ban members", "Remove members below their highest role and keep them out."),
    (Permissions::MODERATE_MEMBERS, "moderate_members", "Time out members", "Stop members below their highest role from talking for a while."),
    (Permissions::VIEW_AUDIT_LOG, "view_audit_log", "View audit log", "Read the record of moderator and admin actions."),
    (Permissions::CONNECT, "connect", "Connect", "Join voice channels."),
    (Permissions::SPEAK, "speak", "Speak", "Talk in voice channels."),
    (Permissions::MUTE_MEMBERS, "mute_members", "Mute members", "Silence other people in voice channels."),
    (Permissions::ADMINISTRATOR, "administrator", "Administrator", "Every permission, in every channel, whatever the overrides say."),
];

/// What @everyone holds in a new server: taking part, not running the place.
pub const DEFAULT_EVERYONE: Permissions = Permissions::VIEW_CHANNEL
    .union(Permissions::SEND_MESSAGES)
    .union(Permissions::READ_MESSAGE_HISTORY)
    .union(Permissions::ADD_REACTIONS)
    .union(Permissions::ATTACH_FILES)
    .union(Permissions::EMBED_LINKS)
    .union(Permissions::CREATE_INVITE)
    .union(Permissions::CONNECT)
    .union(Permissions::SPEAK);

/// The set named by form keys (the values of ticked checkboxes). A key this build does
/// not know is skipped: it can only come from a stale or forged form, and ignoring it
/// grants nothing.
pub fn parse_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> Permissions {
    keys.into_iter()
        .filter_map(|key| ALL.iter().find(|(_, k, ..)| *k == key).map(|(p, ..)| *p))
        .fold(Permissions::empty(), Permissions::union)
}

/// What a channel (or category) override says for one role or member: these bits are
/// allowed, those denied, the rest inherited. A bit in both is allowed, because deny is
/// applied before allow.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Override {
    pub allow: Permissions,
    pub deny: Permissions,
}

impl Override {
    /// Applies this override on top of `perms`. ADMINISTRATOR is outside any override's
    /// reach: it is a server-wide standing, and a channel that could grant it would make
    /// `can_grant` say yes to anything.
    fn apply(self, perms: Permissions) -> Permissions {
        let touchable = Permissions::all() - Permissions::ADMINISTRATOR;
        (perms - (self.deny & touchable)) | (self.allow & touchable)
    }
}

/// The overrides in force in one channel for one member: a synced channel passes its
/// category's. `roles` may list every role's override; only the member's roles count.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct OverrideSet {
    pub everyone: Option<Override>,
    pub roles: Vec<(i64, Override)>,
    pub member: Option<Override>,
}

/// A role a member holds, with what the permission checks need of it. @everyone is not
/// one of these: it is passed on its own, and sits at position 0, below every other role.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct HeldRole {
    pub id: i64,
    pub position: i64,
    pub permissions: Permissions,
}

/// A member's standing in a server, as far as permissions go.
#[derive(Clone, Copy, Debug)]
pub struct Standing<'a> {
    pub is_owner: bool,
    /// A timeout is in force now.
    pub timed_out: bool,
    pub roles: &'a [HeldRole],
}

/// What a timed-out member keeps: they can read, nothing more.
const TIMEOUT_KEEPS: Permissions = Permissions::VIEW_CHANNEL.union(Permissions::READ_MESSAGE_HISTORY);

/// What counts only for someone who may send.
const NEEDS_SEND: Permissions =
    Permissions::MENTION_EVERYONE.union(Permissions::ATTACH_FILES).union(Permissions::EMBED_LINKS);

/// @everyone's permissions with every held role's, before any channel.
fn base(member: &Standing, everyone: Permissions) -> Permissions {
    member.roles.iter().fold(everyone, |perms, role| perms | role.permissions)
}

/// The owner and administrators: every permission, whatever overrides or a timeout say.
fn above_every_rule(member: &Standing, base: Permissions) -> bool {
    member.is_owner || base.contains(Permissions::ADMINISTRATOR)
}

/// The member's permissions across the server, with no channel involved: what decides
/// managing the server, roles, invites, kicks, bans, timeouts and the audit log.
pub fn server_permissions(member: &Standing, everyone: Permissions) -> Permissions {
    let base = base(member, everyone);
    if above_every_rule(member, base) {
        return Permissions::all();
    }
    if member.timed_out { base & TIMEOUT_KEEPS } else { base }
}

/// The member's permissions in one channel, in Discord's order: the owner and
/// administrators hold everything whatever the overrides say; otherwise the base is
/// changed by @everyone's override, then by all the member's roles' overrides together
/// (denies, then allows), then by the member's own. Without VIEW_CHANNEL the channel
/// does not exist for them, so nothing else counts; without SEND_MESSAGES, what only
/// decorates a message does not count; a timeout leaves only reading.
pub fn channel_permissions(member: &Standing, everyone: Permissions, overrides: &OverrideSet) -> Permissions {
    let base = base(member, everyone);
    if above_every_rule(member, base) {
        return Permissions::all();
    }
    let mut perms = base;
    if let Some(o) = overrides.everyone {
        perms = o.apply(perms);
    }
    let held = overrides.roles.iter().filter(|(id, _)| member.roles.iter().any(|r| r.id == *id));
    let roles = held.fold(Override::default(), |acc, (_, o)| Override {
        allow: acc.allow | o.allow,
        deny: acc.deny | o.deny,
    });
    perms = roles.apply(perms);
    if let Some(o) = overrides.member {
        perms = o.apply(perms);
    }

    if !perms.contains(Permissions::VIEW_CHANNEL) {
        return Permissions::empty();
    }
    if !perms.contains(Permissions::SEND_MESSAGES) {
        perms = perms - NEEDS_SEND;
    }
    if member.timed_out { perms & TIMEOUT_KEEPS } else { perms }
}

/// The position of the member's highest role; 0 (@everyone's) when they hold none.
pub fn highest_position(roles: &[HeldRole]) -> i64 {
    roles.iter().map(|r| r.position).max().unwrap_or(0)
}

/// Whether the actor may edit, assign or delete the role at `target_position`: the owner
/// always; anyone else needs MANAGE_ROLES (in `actor_perms`, their server permissions)
/// and a highest role strictly above the target.
pub fn can_manage_role(actor: &Standing, actor_perms: Permissions, target_position: i64) -> bool {
    actor.is_owner
        || (actor_perms.contains(Permissions::MANAGE_ROLES) && highest_position(actor.roles) > target_position)
}

/// Whether the actor ranks above the target member (for kick, ban, timeout, nickname,
/// roles). Nobody acts on the owner; the owner acts on anyone else; otherwise the actor's
/// highest role must be strictly above the target's — so nobody acts on themselves and
/// ADMINISTRATOR does not lift the hierarchy. The permission for the action itself is the
/// caller's separate check.
pub fn can_act_on_member(actor: &Standing, target: &Standing) -> bool {
    if target.is_owner {
        return false;
    }
    actor.is_owner || highest_position(actor.roles) > highest_position(target.roles)
}

/// Whether someone holding `actor_perms` may set `wanted` in a role, or in an override
/// (the caller passes its allow and deny together): only what they hold themselves,
/// unless they are an administrator (the owner's permissions include ADMINISTRATOR).
pub fn can_grant(actor_perms: Permissions, wanted: Permissions) -> bool {
    actor_perms.contains(Permissions::ADMINISTRATOR) || actor_perms.contains(wanted)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod property_tests;
