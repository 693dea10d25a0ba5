//! SQL for servers: creating one with its defaults, membership (join, leave), the
//! server rail, settings, channels and categories. Every write that can change who
//! sees a channel re-plans channel access (`sync_channel_access!`) in its transaction,
//! and every moderator or admin action writes its audit row there too.

use crate::store::{BeginWrite, Store, now_ms};
use crate::with_db;

use super::audit::Entry;
use super::permissions::DEFAULT_EVERYONE;

/// Appends an audit `Entry` inside the transaction `$tx`.
#[macro_export]
macro_rules! write_audit {
    ($tx:ident, $entry:expr) => {
        async {
            let e: &$crate::servers::audit::Entry = $entry;
            sqlx::query(
                "INSERT INTO audit_log (server_id, actor_id, action, target_kind, target_id, target_name, before_text, after_text, reason, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(e.server_id)
            .bind(e.actor_id)
            .bind(e.action.as_str())
            .bind(e.target_kind)
            .bind(e.target_id)
            .bind(&e.target_name)
            .bind(&e.before)
            .bind(&e.after)
            .bind(&e.reason)
            .bind($crate::store::now_ms())
            .execute(&mut *$tx)
            .await
        }
    };
}

/// Runs `$body` (which may use `tx`) in a write transaction, then re-plans channel
/// access for `$server`, appends `$audit` (an `Option<&Entry>`), commits, and signals
/// the realtime side when events were logged.
macro_rules! server_write {
    ($store:expr, $server:expr, $audit:expr, |$tx:ident| $body:expr) => {
        server_write!($store, $server, 0i64, $audit, |$tx| $body)
    };
    ($store:expr, $server:expr, $only:expr, $audit:expr, |$tx:ident| $body:expr) => {{
        let store: &Store = $store;
        let (value, changed) = with_db!(store, pool => {
            let mut $tx = pool.begin_write().await?;
            let value = $body;
            let changed = $crate::sync_channel_access!($tx, $server, $only).await?;
            if let Some(entry) = $audit {
                $crate::write_audit!($tx, entry).await?;
            }
            $tx.commit().await?;
            (value, changed)
        });
        if changed {
            store.signal_commit();
        }
        Ok::<_, sqlx::Error>(value)
    }};
}

// Other store modules of this domain use it too (they import `Store`, `BeginWrite`, `with_db`).
pub(crate) use server_write;

/// A new server: its owner as first member, @everyone with the default permissions,
/// a "Text channels" category holding #general and a "Voice channels" one holding
/// the "General" voice channel.
pub async fn create(store: &Store, owner: i64, name: &str) -> Result<i64, sqlx::Error> {
    let now = now_ms();
    let created = with_db!(store, pool => {
        let mut tx = pool.begin_write().await?;
        let id: i64 = sqlx::query_scalar("INSERT INTO servers (name, owner_id, created_at) VALUES ($1, $2, $3) RETURNING id")
            .bind(name).bind(owner).bind(now).fetch_one(&mut *tx).await?;
        sqlx::query("INSERT INTO roles (server_id, name, permissions, position, is_everyone) VALUES ($1, '@everyone', $2, 0, TRUE)")
            .bind(id).bind(DEFAULT_EVERYONE.bits() as i64).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO server_members (server_id, user_id, joined_at) VALUES ($1, $2, $3)")
            .bind(id).bind(owner).bind(now).execute(&mut *tx).await?;
        for (position, (category, channel, kind)) in [("Text channels", "general", "text"), ("Voice channels", "General", "voice")].into_iter().enumerate() {
            let category_id: i64 = sqlx::query_scalar("INSERT INTO categories (server_id, name, position) VALUES ($1, $2, $3) RETURNING id")
                .bind(id).bind(category).bind(position as i64).fetch_one(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO conversations (kind, name, server_id, category_id, position, created_by, created_at, last_activity_at)
                 VALUES ($1, $2, $3, $4, 0, $5, $6, $6)",
            )
            .bind(kind).bind(channel).bind(id).bind(category_id).bind(owner).bind(now).execute(&mut *tx).await?;
        }
        crate::sync_channel_access!(tx, id).await?;
        let entry = Entry::new(id, owner, super::audit::Action::ServerCreate).target("server", id, name);
        crate::write_audit!(tx, &entry).await?;
        tx.commit().await?;
        id
    });
    store.signal_commit();
    Ok(created)
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct RailRow {
    pub id: i64,
    pub name: String,
    pub unread: i64,
    pub mentioned: i64,
    pub icon_key: Option<String>,
}

/// The servers a user is in, oldest membership first, with whether any channel they
/// see has unread messages and how many mention them.
pub async fn rail(store: &Store, user_id: i64) -> Result<Vec<RailRow>, sqlx::Error> {
    let sql = "SELECT s.id, s.name,
          (SELECT COUNT(*) FROM members m JOIN conversations c ON c.id = m.conversation_id
              WHERE m.user_id = $1 AND c.server_id = s.id AND c.last_message_id > m.last_read_id) AS unread,
          (SELECT COUNT(*) FROM members m JOIN conversations c ON c.id = m.conversation_id
              JOIN mentions n ON n.user_id = $1 AND n.conversation_id = c.id AND n.message_id > m.last_read_id
              WHERE m.user_id = $1 AND c.server_id = s.id) AS mentioned, s.icon_key
        FROM server_members sm JOIN servers s ON s.id = sm.server_id
        WHERE sm.user_id = $1 ORDER BY sm.joined_at, s.id";
    store.rows(sql, &[crate::store::Arg::Int(user_id)]).await
}

crate::direct_row!(RailRow { id, name, unread, mentioned, icon_key });

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ChannelState {
    pub conversation_id: i64,
    pub unread: i64,
    pub mentioned: i64,
}

/// Unread and mention counts for the channels of a server the user sees.
pub async fn channel_states(store: &Store, user_id: i64, server_id: i64) -> Result<Vec<ChannelState>, sqlx::Error> {
    // Caught-up channels (most of them) skip both counts.
    let sql = "SELECT m.conversation_id,
          CASE WHEN c.last_message_id > m.last_read_id THEN
            (SELECT COUNT(*) FROM messages x WHERE x.conversation_id = c.id AND x.id > m.last_read_id
              AND x.author_id <> $1 AND x.deleted_at IS NULL AND x.kind = 'text') ELSE 0 END AS unread,
          CASE WHEN c.last_message_id > m.last_read_id THEN
            (SELECT COUNT(*) FROM mentions n WHERE n.user_id = $1 AND n.conversation_id = c.id
              AND n.message_id > m.last_read_id) ELSE 0 END AS mentioned
        FROM members m JOIN conversations c ON c.id = m.conversation_id
        WHERE m.user_id = $1 AND c.server_id = $2";
    with_db!(store, pool => sqlx::query_as(sql).bind(user_id).bind(server_id).fetch_all(pool).await)
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ServerMemberRow {
    pub user_id: i64,
    pub username: String,
    pub display_name: String,
    pub presence: String,
    pub last_seen_at: Option<i64>,
    pub last_seen_audience: String,
    pub status_emoji: String,
    pub status_text: String,
    pub status_expires_at: Option<i64>,
    pub joined_at: i64,
    pub timeout_until: Option<i64>,
    pub avatar_key: Option<String>,
}

impl ServerMemberRow {
    pub fn name(&self) -> &str {
        crate::accounts::model::shown_name(&self.display_name, &self.username)
    }

    /// Their face (avatars are not hidden from blockers: names are not either).
    pub fn avatar(&self) -> crate::accounts::profile::AvatarView {
        crate::accounts::profile::AvatarView::new(self.user_id, self.name(), self.avatar_key.as_deref())
    }
}

pub async fn members(store: &Store, server_id: i64) -> Result<Vec<ServerMemberRow>, sqlx::Error> {
    let sql = "SELECT sm.user_id, u.username, u.display_name, u.presence, u.last_seen_at, u.last_seen_audience, u.status_emoji, u.status_text, u.status_expires_at, sm.joined_at, sm.timeout_until, u.avatar_key
               FROM server_members sm JOIN users u ON u.id = sm.user_id WHERE sm.server_id = $1
               ORDER BY LOWER(COALESCE(NULLIF(u.display_name, ''), u.username)), u.id LIMIT 1000";
    with_db!(store, pool => sqlx::query_as(sql).bind(server_id).fetch_all(pool).await)
}

/// Which of a server's members hold which roles: (user, role).
pub async fn member_roles(store: &Store, server_id: i64) -> Result<Vec<(i64, i64)>, sqlx::Error> {
    let sql = "SELECT user_id, role_id FROM member_roles WHERE server_id = $1";
    with_db!(store, pool => sqlx::query_as(sql).bind(server_id).fetch_all(pool).await)
}

/// The server's name and description.
pub async fn update_profile(store: &Store, server_id: i64, name: &str, description: &str, audit: &Entry) -> Result<(), sqlx::Error> {
    server_write!(store, server_id, Some(audit), |tx| {
        sqlx::query("UPDATE servers SET name = $1, description = $2 WHERE id = $3")
            .bind(name).bind(description).bind(server_id).execute(&mut *tx).await?;
    })?;
    Ok(())
}

/// Deletes a server in one transaction: with its members gone, the re-plan logs a
/// `left` event for every channel row (open streams drop them), then the channels and
/// the server go.
pub async fn delete(store: &Store, server_id: i64) -> Result<(), sqlx::Error> {
    with_db!(store, pool => {
        let mut tx = pool.begin_write().await?;
        sqlx::query("DELETE FROM server_members WHERE server_id = $1").bind(server_id).execute(&mut *tx).await?;
        crate::sync_channel_access!(tx, server_id).await?;
        sqlx::query("DELETE FROM conversations WHERE server_id = $1").bind(server_id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM servers WHERE id = $1").bind(server_id).execute(&mut *tx).await?;
        tx.commit().await?;
    });
    store.signal_commit();
    Ok(())
}

pub async fn transfer(store: &Store, server_id: i64, to: i64, audit: &Entry) -> Result<(), sqlx::Error> {
    server_write!(store, server_id, Some(audit), |tx| {
        sqlx::query("UPDATE servers SET owner_id = $1 WHERE id = $2").bind(to).bind(server_id).execute(&mut *tx).await?;
    })?;
    Ok(())
}

/// Removes a member (leaving, kicked); their channel rows go with the re-plan.
pub async fn remove_member(store: &Store, server_id: i64, user_id: i64, audit: Option<&Entry>) -> Result<bool, sqlx::Error> {
    server_write!(store, server_id, user_id, audit, |tx| {
        sqlx::query("DELETE FROM server_members WHERE server_id = $1 AND user_id = $2")
            .bind(server_id).bind(user_id).execute(&mut *tx).await?.rows_affected() > 0
    })
}

pub async fn is_member(store: &Store, server_id: i64, user_id: i64) -> Result<bool, sqlx::Error> {
    let sql = "SELECT COUNT(*) FROM server_members WHERE server_id = $1 AND user_id = $2";
    let n: i64 = with_db!(store, pool => sqlx::query_scalar(sql).bind(server_id).bind(user_id).fetch_one(pool).await?);
    Ok(n > 0)
}

/// The server a channel belongs to, if it is a channel.
pub async fn server_of(store: &Store, conversation_id: i64) -> Result<Option<i64>, sqlx::Error> {
    let sql = "SELECT server_id FROM conversations WHERE id = $1";
    let row: Option<Option<i64>> = with_db!(store, pool => sqlx::query_scalar(sql).bind(conversation_id).fetch_optional(pool).await?);
    Ok(row.flatten())
}

/// (id, username) of the account called `username` (with or without `@`).
pub async fn user_by_username(store: &Store, username: &str) -> Result<Option<(i64, String)>, sqlx::Error> {
    let name = username.trim().trim_start_matches('@').to_lowercase();
    with_db!(store, pool => sqlx::query_as("SELECT id, username FROM users WHERE username = $1").bind(name).fetch_optional(pool).await)
}
