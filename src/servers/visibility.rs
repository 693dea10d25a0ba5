//! Who sees which channel, kept as conversation membership. A channel's (text or
//! voice) `members` rows are exactly the server members whose permissions include
//! VIEW_CHANNEL there; every change that could move that line (joining, leaving, a
//! role, an override, a new channel) re-plans the server's rows in the same write
//! transaction and logs `joined` / `left` events for the difference.
//!
//! Why rows and not a check at read time: the conversation engine, the sidebar, search,
//! unread counts, the live stream's filter and replay (`store::log::for_user`) all
//! already decide by membership. Materialising visibility means each of them obeys
//! channel permissions without a second code path, and losing VIEW_CHANNEL reaches an
//! open stream (on every instance) as the same `left` event a removal from a group is.
//! Voice channels have rows too: their live roster reaches exactly those rows' streams,
//! and a `left` row takes the person out of the room.

use std::collections::HashSet;

use crate::store::log::{Kind, NewEvent};

use super::context::{MemberFacts, ServerShape};
use super::permissions::Permissions;

/// Rows to add (channel, user, the channel's newest message: nothing is unread yet)
/// and rows to remove (channel, user).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub add: Vec<(i64, i64, i64)>,
    pub remove: Vec<(i64, i64)>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }

    pub fn events(&self) -> Vec<NewEvent> {
        let added = self.add.iter().map(|&(c, u, _)| NewEvent::new(Kind::Joined, c).user(u));
        let removed = self.remove.iter().map(|&(c, u)| NewEvent::new(Kind::Left, c).user(u));
        // Removals first: whoever loses a channel stops receiving it before anything else.
        removed.chain(added).collect()
    }
}

/// The difference between `current` (channel, user) rows and what the permissions say;
/// `shape` is None when the server is gone (everything goes).
pub fn plan(shape: Option<&ServerShape>, members: &[MemberFacts], current: &[(i64, i64)]) -> Plan {
    let mut wanted: HashSet<(i64, i64)> = HashSet::new();
    let mut plan = Plan::default();
    if let Some(shape) = shape {
        let held: Vec<_> = members.iter().map(|m| shape.held_roles(m)).collect();
        for channel in &shape.channels {
            for (member, roles) in members.iter().zip(&held) {
                if shape.channel_permissions_held(channel, member, roles).contains(Permissions::VIEW_CHANNEL) {
                    wanted.insert((channel.id, member.user_id));
                    if !current.contains(&(channel.id, member.user_id)) {
                        plan.add.push((channel.id, member.user_id, channel.last_message_id));
                    }
                }
            }
        }
    }
    let mut remove: Vec<(i64, i64)> = current.iter().copied().filter(|row| !wanted.contains(row)).collect();
    remove.sort_unstable();
    remove.dedup();
    plan.remove = remove;
    plan
}

pub const CURRENT_SQL: &str = "SELECT m.conversation_id, m.user_id FROM members m
     JOIN conversations c ON c.id = m.conversation_id WHERE c.server_id = $1";
/// One member's rows (a separate statement so SQLite uses the member index).
pub const ONE_CURRENT_SQL: &str = "SELECT m.conversation_id, m.user_id FROM members m
     JOIN conversations c ON c.id = m.conversation_id WHERE m.user_id = $2 AND c.server_id = $1";

/// Re-plans a server's channel membership inside the write transaction `$tx` (an
/// identifier), applies it and appends its events. Evaluates to
/// `Result<bool, sqlx::Error>`: true when something changed (signal the commit).
/// With a third argument (a user id), only that member is re-planned: joining,
/// leaving or being kicked changes nobody else's access.
#[macro_export]
macro_rules! sync_channel_access {
    ($tx:ident, $server_id:expr) => {
        $crate::sync_channel_access!($tx, $server_id, 0i64)
    };
    ($tx:ident, $server_id:expr, $only:expr) => {
        async {
            use $crate::store::log::AppendEvents;
            let server_id: i64 = $server_id;
            let only: i64 = $only;
            // Postgres: the server row's lock orders concurrent re-plans of one server
            // (SQLite's single writer already does). A whole-server re-plan follows a
            // change to the server's shape, so it also moves the version that cached
            // shapes are checked against; one member's re-plan changes no shape.
            sqlx::query("UPDATE servers SET version = version + CASE WHEN $2 = 0 THEN 1 ELSE 0 END WHERE id = $1")
                .bind(server_id).bind(only).execute(&mut *$tx).await?;
            let shape = $crate::fetch_server_shape!(&mut *$tx, server_id).await?;
            let members = $crate::fetch_member_facts!(&mut *$tx, server_id, only).await?;
            let current: Vec<(i64, i64)> = if only == 0 {
                sqlx::query_as($crate::servers::visibility::CURRENT_SQL).bind(server_id).fetch_all(&mut *$tx).await?
            } else {
                sqlx::query_as($crate::servers::visibility::ONE_CURRENT_SQL).bind(server_id).bind(only).fetch_all(&mut *$tx).await?
            };
            let plan = $crate::servers::visibility::plan(shape.as_ref(), &members, &current);
            let now = $crate::store::now_ms();
            for chunk in plan.add.chunks(500) {
                let mut insert = sqlx::QueryBuilder::new("INSERT INTO members (conversation_id, user_id, role, joined_at, last_read_id) ");
                insert.push_values(chunk, |mut row, &(c, u, last)| {
                    row.push_bind(c).push_bind(u).push_bind("member").push_bind(now).push_bind(last);
                });
                insert.push(" ON CONFLICT (conversation_id, user_id) DO NOTHING");
                insert.build().persistent(false).execute(&mut *$tx).await?;
            }
            for &(c, u) in &plan.remove {
                sqlx::query("DELETE FROM members WHERE conversation_id = $1 AND user_id = $2").bind(c).bind(u).execute(&mut *$tx).await?;
            }
            (*$tx).append_events(&plan.events()).await?;
            Ok::<bool, sqlx::Error>(!plan.is_empty())
        }
    };
}
