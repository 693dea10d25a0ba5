//! A server as one request sees it: its roles, categories, channels and overrides,
//! loaded together, and what a given member may do in it or in one of its channels.
//! Everything that asks "may this person…" in a server goes through here, which hands
//! the facts to the pure `permissions` engine.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use crate::error::{AppError, AppResult};
use crate::store::{Store, now_ms};
use crate::with_db;

use super::permissions::{self, HeldRole, Override, OverrideSet, Permissions, Standing};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ServerRow {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub owner_id: i64,
    pub created_at: i64,
    pub version: i64,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct RoleRow {
    pub id: i64,
    pub name: String,
    pub color: String,
    pub permissions: i64,
    pub position: i64,
    pub hoist: bool,
    pub mentionable: bool,
    pub is_everyone: bool,
}

impl RoleRow {
    pub fn permissions(&self) -> Permissions {
        Permissions::from_bits(self.permissions as u64)
    }
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct CategoryRow {
    pub id: i64,
    pub name: String,
    pub position: i64,
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ChannelRow {
    pub id: i64,
    pub kind: String,
    pub name: String,
    pub category_id: Option<i64>,
    pub position: i64,
    pub topic: String,
    pub slowmode_seconds: i64,
    pub synced: bool,
    pub last_message_id: i64,
}

impl ChannelRow {
    pub fn is_voice(&self) -> bool {
        self.kind == "voice"
    }
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct OverrideRow {
    pub target_kind: String,
    pub target_id: i64,
    pub subject_kind: String,
    pub subject_id: i64,
    pub allow_bits: i64,
    pub deny_bits: i64,
}

impl OverrideRow {
    fn as_override(&self) -> Override {
        Override { allow: Permissions::from_bits(self.allow_bits as u64), deny: Permissions::from_bits(self.deny_bits as u64) }
    }
}

/// One member's standing in a server: their roles and any timeout.
#[derive(Clone, Debug, Default)]
pub struct MemberFacts {
    pub user_id: i64,
    pub role_ids: Vec<i64>,
    pub timeout_until: Option<i64>,
}

impl MemberFacts {
    pub fn timed_out(&self, now: i64) -> bool {
        self.timeout_until.is_some_and(|until| until > now)
    }
}

/// Everything about a server that permissions depend on, minus its members.
#[derive(Clone, Debug)]
pub struct ServerShape {
    pub server: ServerRow,
    /// Highest position first; @everyone (position 0) last.
    pub roles: Vec<RoleRow>,
    pub categories: Vec<CategoryRow>,
    pub channels: Vec<ChannelRow>,
    pub overrides: Vec<OverrideRow>,
    /// Which overrides sit on which channel or category (indexes into `overrides`), so
    /// resolving one member's permissions in one channel touches only those.
    by_target: HashMap<(bool, i64), Vec<usize>>,
}

pub const SERVER_SQL: &str = "SELECT id, name, description, owner_id, created_at, version FROM servers WHERE id = $1";
pub const ROLES_SQL: &str = "SELECT id, name, color, permissions, position, hoist, mentionable, is_everyone
     FROM roles WHERE server_id = $1 ORDER BY position DESC, id";
pub const CATEGORIES_SQL: &str = "SELECT id, name, position FROM categories WHERE server_id = $1 ORDER BY position, id";
pub const CHANNELS_SQL: &str = "SELECT id, kind, name, category_id, position, topic, slowmode_seconds, synced, last_message_id
     FROM conversations WHERE server_id = $1 ORDER BY position, id";
pub const OVERRIDES_SQL: &str = "SELECT target_kind, target_id, subject_kind, subject_id, allow_bits, deny_bits
     FROM overrides WHERE server_id = $1";
/// One row per (member, role); a member without roles has one row with NULL. Two
/// statements, not one with `$2 = 0 OR …`: SQLite cannot use the key for an OR like
/// that, and one member's lookup would scan the whole membership.
pub const MEMBER_ROLES_SQL: &str = "SELECT sm.user_id, sm.timeout_until, mr.role_id FROM server_members sm
     LEFT JOIN member_roles mr ON mr.server_id = sm.server_id AND mr.user_id = sm.user_id
     WHERE sm.server_id = $1";
pub const ONE_MEMBER_ROLES_SQL: &str = "SELECT sm.user_id, sm.timeout_until, mr.role_id FROM server_members sm
     LEFT JOIN member_roles mr ON mr.server_id = sm.server_id AND mr.user_id = sm.user_id
     WHERE sm.server_id = $1 AND sm.user_id = $2";

/// Loads a server's shape through `$exec` (a pool or `&mut *tx`, evaluated per
/// statement), so the same reads serve a page and a write transaction alike.
#[macro_export]
macro_rules! fetch_server_shape {
    ($exec:expr, $server_id:expr) => {
        async {
            use $crate::servers::context::*;
            let server: Option<ServerRow> = sqlx::query_as(SERVER_SQL).bind($server_id).fetch_optional($exec).await?;
            let Some(server) = server else { return Ok::<Option<ServerShape>, sqlx::Error>(None) };
            let roles: Vec<RoleRow> = sqlx::query_as(ROLES_SQL).bind($server_id).fetch_all($exec).await?;
            let categories: Vec<CategoryRow> = sqlx::query_as(CATEGORIES_SQL).bind($server_id).fetch_all($exec).await?;
            let channels: Vec<ChannelRow> = sqlx::query_as(CHANNELS_SQL).bind($server_id).fetch_all($exec).await?;
            let overrides: Vec<OverrideRow> = sqlx::query_as(OVERRIDES_SQL).bind($server_id).fetch_all($exec).await?;
            Ok(Some(ServerShape::new(server, roles, categories, channels, overrides)))
        }
    };
}

/// Loads members' facts (`only` = 0 for all of them) through `$exec`.
#[macro_export]
macro_rules! fetch_member_facts {
    ($exec:expr, $server_id:expr, $only:expr) => {
        async {
            use $crate::servers::context::*;
            let only: i64 = $only;
            let rows: Vec<(i64, Option<i64>, Option<i64>)> = if only == 0 {
                sqlx::query_as(MEMBER_ROLES_SQL).bind($server_id).fetch_all($exec).await?
            } else {
                sqlx::query_as(ONE_MEMBER_ROLES_SQL).bind($server_id).bind(only).fetch_all($exec).await?
            };
            Ok::<Vec<MemberFacts>, sqlx::Error>(group_member_rows(rows))
        }
    };
}

pub fn group_member_rows(rows: Vec<(i64, Option<i64>, Option<i64>)>) -> Vec<MemberFacts> {
    let mut out: Vec<MemberFacts> = Vec::new();
    let mut index: HashMap<i64, usize> = HashMap::new();
    for (user_id, timeout_until, role_id) in rows {
        let at = *index.entry(user_id).or_insert_with(|| {
            out.push(MemberFacts { user_id, role_ids: Vec::new(), timeout_until });
            out.len() - 1
        });
        if let Some(role) = role_id {
            out[at].role_ids.push(role);
        }
    }
    out
}

impl ServerShape {
    pub fn new(server: ServerRow, roles: Vec<RoleRow>, categories: Vec<CategoryRow>, channels: Vec<ChannelRow>, overrides: Vec<OverrideRow>) -> ServerShape {
        let mut by_target: HashMap<(bool, i64), Vec<usize>> = HashMap::new();
        for (index, row) in overrides.iter().enumerate() {
            by_target.entry((row.target_kind == "category", row.target_id)).or_default().push(index);
        }
        ServerShape { server, roles, categories, channels, overrides, by_target }
    }

    pub fn everyone(&self) -> Option<&RoleRow> {
        self.roles.iter().find(|r| r.is_everyone)
    }

    pub fn role(&self, id: i64) -> Option<&RoleRow> {
        self.roles.iter().find(|r| r.id == id)
    }

    pub fn channel(&self, id: i64) -> Option<&ChannelRow> {
        self.channels.iter().find(|c| c.id == id)
    }

    /// The roles a member holds (not @everyone), as the permission engine takes them.
    pub fn held_roles(&self, member: &MemberFacts) -> Vec<HeldRole> {
        member
            .role_ids
            .iter()
            .filter_map(|id| self.role(*id))
            .filter(|r| !r.is_everyone)
            .map(|r| HeldRole { id: r.id, position: r.position, permissions: r.permissions() })
            .collect()
    }

    fn everyone_permissions(&self) -> Permissions {
        self.everyone().map(RoleRow::permissions).unwrap_or_default()
    }

    /// Server-wide permissions (manage server, roles, kick, ban, invites…).
    pub fn server_permissions(&self, member: &MemberFacts) -> Permissions {
        let roles = self.held_roles(member);
        let standing = self.standing(member, &roles);
        permissions::server_permissions(&standing, self.everyone_permissions())
    }

    pub fn standing<'a>(&self, member: &MemberFacts, roles: &'a [HeldRole]) -> Standing<'a> {
        Standing { is_owner: member.user_id == self.server.owner_id, timed_out: member.timed_out(now_ms()), roles }
    }

    /// The overrides that apply in `channel` to `member`: a synced channel in a
    /// category takes the category's; otherwise its own.
    pub fn overrides_for(&self, channel: &ChannelRow, member: &MemberFacts) -> OverrideSet {
        let target = match channel.category_id {
            Some(category) if channel.synced => (true, category),
            _ => (false, channel.id),
        };
        let mut set = OverrideSet::default();
        let everyone_id = self.everyone().map(|r| r.id);
        let rows = self.by_target.get(&target).map(Vec::as_slice).unwrap_or(&[]);
        for row in rows.iter().map(|&i| &self.overrides[i]) {
            match row.subject_kind.as_str() {
                "role" if Some(row.subject_id) == everyone_id => set.everyone = Some(row.as_override()),
                "role" if member.role_ids.contains(&row.subject_id) => set.roles.push((row.subject_id, row.as_override())),
                "member" if row.subject_id == member.user_id => set.member = Some(row.as_override()),
                _ => {}
            }
        }
        set
    }

    pub fn channel_permissions(&self, channel: &ChannelRow, member: &MemberFacts) -> Permissions {
        self.channel_permissions_held(channel, member, &self.held_roles(member))
    }

    /// `channel_permissions` with the member's roles looked up once (`held_roles`), for
    /// loops over many channels: the channel list, the visibility re-plan.
    pub fn channel_permissions_held(&self, channel: &ChannelRow, member: &MemberFacts, roles: &[HeldRole]) -> Permissions {
        let standing = self.standing(member, roles);
        permissions::channel_permissions(&standing, self.everyone_permissions(), &self.overrides_for(channel, member))
    }

    /// The highest role position a member holds (0: only @everyone); the owner
    /// outranks everyone.
    pub fn rank(&self, member: &MemberFacts) -> i64 {
        if member.user_id == self.server.owner_id {
            return i64::MAX;
        }
        member.role_ids.iter().filter_map(|id| self.role(*id)).map(|r| r.position).max().unwrap_or(0)
    }
}

/// A signed-in member's view of a server: the only way handlers get at one, so every
/// server route is checked. Not a member → 404, as if the server did not exist.
#[derive(Debug)]
pub struct ServerAccess {
    pub shape: Arc<ServerShape>,
    pub me: MemberFacts,
    pub permissions: Permissions,
}

impl ServerAccess {
    pub fn id(&self) -> i64 {
        self.shape.server.id
    }

    pub fn is_owner(&self) -> bool {
        self.me.user_id == self.shape.server.owner_id
    }

    pub fn can(&self, permission: Permissions) -> bool {
        self.permissions.contains(permission)
    }

    /// A refused action in a server one can see: 403 with a reason.
    pub fn ensure(&self, permission: Permissions) -> AppResult<()> {
        if self.can(permission) { Ok(()) } else { Err(AppError::Forbidden("You do not have permission to do that in this server.")) }
    }

    pub fn channel_permissions(&self, channel: &ChannelRow) -> Permissions {
        self.shape.channel_permissions(channel, &self.me)
    }

    /// The channels this member can see, in display order.
    pub fn visible_channels(&self) -> Vec<&ChannelRow> {
        let roles = self.shape.held_roles(&self.me);
        let sees = |c: &&ChannelRow| self.shape.channel_permissions_held(c, &self.me, &roles).contains(Permissions::VIEW_CHANNEL);
        self.shape.channels.iter().filter(sees).collect()
    }
}

pub async fn load_shape(store: &Store, server_id: i64) -> AppResult<Option<ServerShape>> {
    Ok(with_db!(store, pool => crate::fetch_server_shape!(pool, server_id).await)?)
}

/// Shapes read recently, per store and server, with the version they were read at.
/// Pages and every channel request ask only for the version (a primary-key read) and
/// reuse the shape while it has not moved; any instance's change moves it.
type ShapeCache = HashMap<(u64, i64), Arc<ServerShape>>;
static SHAPES: LazyLock<Mutex<ShapeCache>> = LazyLock::new(Default::default);
const MAX_CACHED_SHAPES: usize = 4096;

/// The server's shape at `version`, from memory when it is the one cached.
pub async fn shape_at(store: &Store, server_id: i64, version: i64) -> AppResult<Option<Arc<ServerShape>>> {
    let key = (store.id, server_id);
    if let Some(shape) = SHAPES.lock().unwrap_or_else(|p| p.into_inner()).get(&key).filter(|s| s.server.version == version) {
        return Ok(Some(shape.clone()));
    }
    let Some(shape) = load_shape(store, server_id).await?.map(Arc::new) else { return Ok(None) };
    let mut cache = SHAPES.lock().unwrap_or_else(|p| p.into_inner());
    if cache.len() >= MAX_CACHED_SHAPES {
        cache.clear();
    }
    // A newer one may have been stored meanwhile; keep the newest.
    let newer = cache.get(&key).is_some_and(|s| s.server.version > shape.server.version);
    if !newer {
        cache.insert(key, shape.clone());
    }
    Ok(Some(shape))
}

async fn version_of(store: &Store, server_id: i64) -> AppResult<Option<i64>> {
    let sql = "SELECT version FROM servers WHERE id = $1";
    Ok(with_db!(store, pool => sqlx::query_scalar(sql).bind(server_id).fetch_optional(pool).await)?)
}

pub async fn require(store: &Store, user_id: i64, server_id: i64) -> AppResult<ServerAccess> {
    let version = version_of(store, server_id).await?.ok_or(AppError::NotFound)?;
    require_at(store, user_id, server_id, version).await
}

/// `require` when the server's version is already known (read with the channel).
pub async fn require_at(store: &Store, user_id: i64, server_id: i64, version: i64) -> AppResult<ServerAccess> {
    let shape = shape_at(store, server_id, version).await?.ok_or(AppError::NotFound)?;
    let me = with_db!(store, pool => crate::fetch_member_facts!(pool, server_id, user_id).await)?
        .pop()
        .ok_or(AppError::NotFound)?;
    let permissions = shape.server_permissions(&me);
    Ok(ServerAccess { shape, me, permissions })
}
