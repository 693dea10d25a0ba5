//! PLACEHOLDER until the permission engine lands (branch perms); replaced on merge.

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Permissions(pub u64);

impl Permissions {
    pub const VIEW_CHANNEL: Permissions = Permissions(1 << 0);
    pub const SEND_MESSAGES: Permissions = Permissions(1 << 1);
    pub const READ_MESSAGE_HISTORY: Permissions = Permissions(1 << 2);
    pub const ADD_REACTIONS: Permissions = Permissions(1 << 3);
    pub const MANAGE_MESSAGES: Permissions = Permissions(1 << 7);
    pub const MANAGE_CHANNELS: Permissions = Permissions(1 << 8);
    pub const MANAGE_ROLES: Permissions = Permissions(1 << 9);
    pub const MANAGE_SERVER: Permissions = Permissions(1 << 10);
    pub const CREATE_INVITE: Permissions = Permissions(1 << 11);
    pub const VIEW_AUDIT_LOG: Permissions = Permissions(1 << 15);
    pub const ADMINISTRATOR: Permissions = Permissions(1 << 19);
    pub const DEFAULT_EVERYONE: Permissions = Permissions(0b1111 | 1 << 11);
    pub fn all() -> Permissions { Permissions(u64::MAX >> 1) }
    pub fn empty() -> Permissions { Permissions(0) }
    pub fn contains(self, other: Permissions) -> bool { self.0 & other.0 == other.0 }
    pub fn bits(self) -> u64 { self.0 }
    pub fn from_bits(bits: u64) -> Permissions { Permissions(bits) }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Override { pub allow: Permissions, pub deny: Permissions }

#[derive(Clone, Debug, Default)]
pub struct OverrideSet { pub everyone: Option<Override>, pub roles: Vec<(i64, Override)>, pub member: Option<Override> }

pub fn server_permissions(is_owner: bool, everyone: Permissions, roles: &[Permissions], _timed_out: bool) -> Permissions {
    if is_owner { return Permissions::all(); }
    let mut p = everyone.0;
    for r in roles { p |= r.0; }
    if p & Permissions::ADMINISTRATOR.0 != 0 { return Permissions::all(); }
    Permissions(p)
}

pub fn channel_permissions(is_owner: bool, everyone: Permissions, roles: &[Permissions], overrides: &OverrideSet, timed_out: bool) -> Permissions {
    let base = server_permissions(is_owner, everyone, roles, timed_out);
    if base == Permissions::all() { return base; }
    let mut p = base.0;
    if let Some(o) = overrides.everyone { p &= !o.deny.0; p |= o.allow.0; }
    let (mut d, mut a) = (0, 0);
    for (_, o) in &overrides.roles { d |= o.deny.0; a |= o.allow.0; }
    p &= !d; p |= a;
    if let Some(o) = overrides.member { p &= !o.deny.0; p |= o.allow.0; }
    if p & Permissions::VIEW_CHANNEL.0 == 0 { return Permissions(0); }
    Permissions(p)
}
