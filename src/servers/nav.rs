//! What the shell shows of servers: the rail (every server a person is in, with an
//! unread dot and mention count) and, inside a server, its channel list by category
//! with per-channel badges. Pages of either domain include these partials.

use crate::error::AppResult;
use crate::store::Store;

use super::context::{ChannelRow, ServerAccess};
use super::permissions::Permissions;
use super::store;

pub struct RailItem {
    pub id: i64,
    pub name: String,
    /// Up to two letters standing for the server in the rail.
    pub initials: String,
    /// The icon's URL, shown instead of the initials.
    pub icon: Option<String>,
    pub unread: bool,
    pub mentioned: i64,
    pub active: bool,
}

/// The same fields `conversations/_badges.html` reads, so channel badges are updated
/// live by the frames that update sidebar badges.
pub struct Badge {
    pub id: i64,
    pub unread: i64,
    pub mentioned: i64,
}

pub struct ChannelItem {
    pub id: i64,
    pub name: String,
    pub voice: bool,
    /// Who is in it now, for a voice channel.
    pub voice_members: Vec<crate::voice::MemberView>,
    pub unread: i64,
    pub mentioned: i64,
    pub active: bool,
}

impl ChannelItem {
    pub fn badges(&self) -> Badge {
        Badge { id: self.id, unread: self.unread, mentioned: self.mentioned }
    }
}

pub struct CategoryGroup {
    pub id: Option<i64>,
    pub name: String,
    pub channels: Vec<ChannelItem>,
}

/// A server's channel list as one member sees it.
pub struct ChannelNav {
    pub server_id: i64,
    pub server_name: String,
    pub groups: Vec<CategoryGroup>,
    pub can_manage_channels: bool,
    pub can_invite: bool,
    pub can_manage_server: bool,
}

pub fn initials(name: &str) -> String {
    let mut words = name.split_whitespace().filter_map(|w| w.chars().next());
    let first: String = words.by_ref().take(2).flat_map(char::to_uppercase).collect();
    if first.is_empty() { "?".into() } else { first }
}

pub async fn rail(store: &Store, user_id: i64, active: Option<i64>) -> AppResult<Vec<RailItem>> {
    Ok(store::rail(store, user_id)
        .await?
        .into_iter()
        .map(|row| RailItem {
            initials: initials(&row.name),
            icon: row.icon_key.as_deref().map(crate::accounts::avatar::url),
            active: active == Some(row.id),
            unread: row.unread > 0,
            mentioned: row.mentioned,
            id: row.id,
            name: row.name,
        })
        .collect())
}

/// Channels grouped under their categories (uncategorised first, as Discord shows
/// them), only those the member can see; `active` is the open channel.
pub async fn channel_nav(store: &Store, voice: &crate::voice::Voice, access: &ServerAccess, active: Option<i64>) -> AppResult<ChannelNav> {
    let states = store::channel_states(store, access.me.user_id, access.id()).await?;
    let item = |c: &ChannelRow| {
        let state = states.iter().find(|s| s.conversation_id == c.id);
        let is_active = active == Some(c.id);
        ChannelItem {
            id: c.id,
            name: c.name.clone(),
            voice: c.is_voice(),
            voice_members: if c.is_voice() { voice.members(c.id) } else { Vec::new() },
            unread: if is_active { 0 } else { state.map_or(0, |s| s.unread) },
            mentioned: if is_active { 0 } else { state.map_or(0, |s| s.mentioned) },
            active: is_active,
        }
    };
    let visible = access.visible_channels();
    let mut groups = vec![CategoryGroup {
        id: None,
        name: String::new(),
        channels: visible.iter().filter(|c| c.category_id.is_none()).map(|c| item(c)).collect(),
    }];
    for category in &access.shape.categories {
        let channels: Vec<ChannelItem> = visible.iter().filter(|c| c.category_id == Some(category.id)).map(|c| item(c)).collect();
        // Discord hides a category whose channels one cannot see, unless one manages channels.
        if channels.is_empty() && !access.can(Permissions::MANAGE_CHANNELS) {
            continue;
        }
        groups.push(CategoryGroup { id: Some(category.id), name: category.name.clone(), channels });
    }
    Ok(ChannelNav {
        server_id: access.id(),
        server_name: access.shape.server.name.clone(),
        groups,
        can_manage_channels: access.can(Permissions::MANAGE_CHANNELS),
        can_invite: access.can(Permissions::CREATE_INVITE),
        can_manage_server: access.can(Permissions::MANAGE_SERVER),
    })
}

/// The rail and the server's channel list, as every server page shows them.
pub struct ServerShell {
    pub rail: Vec<RailItem>,
    pub rail_home: bool,
    pub nav: ChannelNav,
}

pub async fn shell(state: &crate::state::AppState, access: &ServerAccess, active_channel: Option<i64>) -> AppResult<ServerShell> {
    Ok(ServerShell {
        rail: rail(&state.store, access.me.user_id, Some(access.id())).await?,
        rail_home: false,
        nav: channel_nav(&state.store, &state.voice, access, active_channel).await?,
    })
}

