//! SQL for conversations and their members: opening DMs, creating groups, the
//! sidebar list, membership changes and read positions.

use crate::store::BeginWrite;
use crate::store::sqlite::Arg;
use crate::store::{Db, Store, now_ms};
use crate::store::log::{AppendEvents, Kind, NewEvent};
use crate::with_db;

use super::model::Role;

/// Opens the DM between `a` and `b` (the same conversation every time; `a == b` is
/// the user's "Saved messages"). With `request`, `b` is not made a member (unless they
/// already are one): the DM waits in their message requests until they accept.
pub async fn open_dm(store: &Store, a: i64, b: i64, request: bool) -> Result<i64, sqlx::Error> {
    let key = format!("{}:{}", a.min(b), a.max(b));
    let now = now_ms();
    with_db!(store, pool => {
        let mut tx = pool.begin_write().await?;
        sqlx::query(
            "INSERT INTO conversations (kind, dm_key, created_by, created_at, last_activity_at)
             VALUES ('dm', $1, $2, $3, $3) ON CONFLICT (dm_key) DO NOTHING",
        )
        .bind(&key)
        .bind(a)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let id: i64 = sqlx::query_scalar("SELECT id FROM conversations WHERE dm_key = $1").bind(&key).fetch_one(&mut *tx).await?;
        // Whoever becomes a member now gets a `Joined` event (their sidebar and stream
        // follow it): both on creation, the recipient alone when a request is bypassed later.
        let mut joined = Vec::new();
        let members: &[i64] = if request { &[a] } else { &[a, b] };
        for &user in members {
            let added = sqlx::query(
                "INSERT INTO members (conversation_id, user_id, role, joined_at) VALUES ($1, $2, 'member', $3)
                 ON CONFLICT (conversation_id, user_id) DO NOTHING",
            )
            .bind(id)
            .bind(user)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected() > 0;
            if added && !joined.contains(&user) {
                joined.push(user);
            }
        }
        if request {
            sqlx::query(
                "INSERT INTO message_requests (conversation_id, user_id, from_id, created_at)
                 SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM members WHERE conversation_id = $1 AND user_id = $2)
                 ON CONFLICT (user_id, conversation_id) DO NOTHING",
            )
            .bind(id)
            .bind(b)
            .bind(a)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        } else {
            // An accepted path: a request that was waiting is answered.
            sqlx::query("DELETE FROM message_requests WHERE conversation_id = $1 AND user_id = $2").bind(id).bind(b).execute(&mut *tx).await?;
        }
        if !joined.is_empty() {
            let events: Vec<NewEvent> = joined.iter().map(|&u| NewEvent::new(Kind::Joined, id).user(u)).collect();
            (*tx).append_events(&events).await?;
        }
        tx.commit().await?;
        store.signal_commit();
        Ok(id)
    })
}

pub async fn create_group(store: &Store, owner: i64, name: &str, members: &[i64]) -> Result<i64, sqlx::Error> {
    let now = now_ms();
    with_db!(store, pool => {
        let mut tx = pool.begin_write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO conversations (kind, name, created_by, created_at, last_activity_at)
             VALUES ('group', $1, $2, $3, $3) RETURNING id",
        )
        .bind(name)
        .bind(owner)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO members (conversation_id, user_id, role, joined_at) VALUES ($1, $2, 'owner', $3)")
            .bind(id)
            .bind(owner)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        for member in members.iter().filter(|m| **m != owner) {
            sqlx::query(
                "INSERT INTO members (conversation_id, user_id, role, joined_at) VALUES ($1, $2, 'member', $3)
                 ON CONFLICT (conversation_id, user_id) DO NOTHING",
            )
            .bind(id)
            .bind(member)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        let mut joined = vec![NewEvent::new(Kind::Joined, id).user(owner)];
        let mut others: Vec<i64> = members.iter().copied().filter(|&m| m != owner).collect();
        others.sort_unstable();
        others.dedup();
        joined.extend(others.into_iter().map(|m| NewEvent::new(Kind::Joined, id).user(m)));
        (*tx).append_events(&joined).await?;
        tx.commit().await?;
        store.signal_commit();
        Ok(id)
    })
}

#[derive(sqlx::FromRow)]
pub struct SidebarRow {
    pub id: i64,
    pub kind: String,
    pub name: String,
    pub last_activity_at: i64,
    pub unread: i64,
    pub mentioned: i64,
    pub last_body: Option<String>,
    pub last_kind: Option<String>,
    pub last_deleted_at: Option<i64>,
    pub last_author: Option<String>,
    pub last_message_id: i64,
    pub other_name: Option<String>,
    pub other_id: Option<i64>,
    pub other_presence: Option<String>,
    pub other_last_seen: Option<i64>,
    pub other_last_seen_audience: Option<String>,
    pub other_status_emoji: Option<String>,
    pub other_status_text: Option<String>,
    pub other_status_expires_at: Option<i64>,
    pub other_avatar_key: Option<String>,
    /// The viewer's own notification choice here (`notifications`), if they made one.
    pub notify_level: Option<String>,
    pub muted_until: Option<i64>,
}

/// The user's DMs and groups (server channels are listed in their server), latest
/// activity first, with what the sidebar shows.
pub async fn sidebar(store: &Store, user_id: i64) -> Result<Vec<SidebarRow>, sqlx::Error> {
    sidebar_rows(store, user_id, None, false).await
}

/// Every conversation of the user, server channels included: the unread badges a live
/// stream keeps up to date.
pub async fn badge_rows(store: &Store, user_id: i64) -> Result<Vec<SidebarRow>, sqlx::Error> {
    sidebar_rows(store, user_id, None, true).await
}

/// One conversation's row for the user (a conversation they just joined), channel or not.
pub async fn sidebar_row(store: &Store, user_id: i64, conversation_id: i64) -> Result<Option<SidebarRow>, sqlx::Error> {
    Ok(sidebar_rows(store, user_id, Some(conversation_id), true).await?.pop())
}

async fn sidebar_rows(store: &Store, user_id: i64, only: Option<i64>, channels: bool) -> Result<Vec<SidebarRow>, sqlx::Error> {
    // A DM has exactly one other member (none for "Saved messages"). The other member
    // is looked up only for DMs: a join conditioned on `c.kind = 'dm'` still walked every
    // member of every channel and group (a million rows, 265 ms, for one member of a
    // 10,000-member server with 100 channels).
    let sql = concat!("SELECT c.id, c.kind, c.name, c.last_activity_at,
          (SELECT COUNT(*) FROM messages x WHERE x.conversation_id = c.id AND x.id > m.last_read_id
              AND x.author_id <> $1 AND x.deleted_at IS NULL AND x.kind = 'text') AS unread,
          (SELECT COUNT(*) FROM mentions n WHERE n.user_id = $1 AND n.conversation_id = c.id
              AND n.message_id > m.last_read_id) AS mentioned,
          lm.body AS last_body, lm.kind AS last_kind, lm.deleted_at AS last_deleted_at,
          ", crate::shown_name_sql!("lu"), " AS last_author, c.last_message_id,
          ", crate::shown_name_sql!("ou"), " AS other_name, ou.id AS other_id,
          ou.presence AS other_presence, ou.last_seen_at AS other_last_seen, ou.last_seen_audience AS other_last_seen_audience,
          ou.status_emoji AS other_status_emoji, ou.status_text AS other_status_text, ou.status_expires_at AS other_status_expires_at, ou.avatar_key AS other_avatar_key,
          ns.level AS notify_level, ns.muted_until AS muted_until
        FROM members m JOIN conversations c ON c.id = m.conversation_id
        LEFT JOIN notification_settings ns ON ns.user_id = m.user_id AND ns.conversation_id = c.id
        LEFT JOIN messages lm ON lm.id = c.last_message_id
        LEFT JOIN users lu ON lu.id = lm.author_id
        LEFT JOIN users ou ON ou.id = CASE WHEN c.kind = 'dm' THEN
            (SELECT o.user_id FROM members o WHERE o.conversation_id = c.id AND o.user_id <> $1 LIMIT 1) END
        WHERE m.user_id = $1 AND ($2 = 0 OR c.id = $2) AND ($3 OR c.server_id IS NULL)
        ORDER BY c.last_activity_at DESC, c.id DESC LIMIT 500");
    match &store.db {
        Db::Sqlite(db) => db.select(sql, &[Arg::Int(user_id), Arg::Int(only.unwrap_or(0)), Arg::Bool(channels)]).await,
        Db::Postgres(pool) => sqlx::query_as(sql).bind(user_id).bind(only.unwrap_or(0)).bind(channels).fetch_all(pool).await,
    }
}

crate::direct_row!(SidebarRow {
    id, kind, name, last_activity_at, unread, mentioned, last_body, last_kind, last_deleted_at, last_author, last_message_id,
    other_name, other_id, other_presence, other_last_seen, other_last_seen_audience, other_status_emoji, other_status_text,
    other_status_expires_at, other_avatar_key, notify_level, muted_until,
});

#[derive(Clone, sqlx::FromRow)]
pub struct MemberRow {
    pub user_id: i64,
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub joined_at: i64,
    pub last_read_id: i64,
    pub presence: String,
    pub last_seen_at: Option<i64>,
    pub last_seen_audience: String,
    pub status_emoji: String,
    pub status_text: String,
    pub status_expires_at: Option<i64>,
    pub avatar_key: Option<String>,
}

impl MemberRow {
    pub fn name(&self) -> &str {
        crate::accounts::model::shown_name(&self.display_name, &self.username)
    }

    /// Their face (avatars are not hidden from blockers: names are not either).
    pub fn avatar(&self) -> crate::accounts::profile::AvatarView {
        crate::accounts::profile::AvatarView::new(self.user_id, self.name(), self.avatar_key.as_deref())
    }

    /// Their status as a viewer sees it, `None` when they blocked the viewer.
    pub fn status(&self, blockers: &std::collections::HashSet<i64>) -> crate::accounts::profile::StatusView {
        if blockers.contains(&self.user_id) {
            return crate::accounts::profile::StatusView::hidden(self.user_id);
        }
        crate::accounts::profile::StatusView::current(self.user_id, &self.status_emoji, &self.status_text, self.status_expires_at)
    }

    /// Their presence as a viewer who shares this conversation with them sees it.
    pub fn presence(&self, online: bool, blockers: &std::collections::HashSet<i64>) -> crate::accounts::presence::PresenceView {
        let shown = crate::accounts::privacy::shown(blockers.contains(&self.user_id), &self.last_seen_audience, true);
        crate::accounts::presence::view(self.user_id, &self.presence, online, self.last_seen_at, shown)
    }

    pub fn role(&self) -> Role {
        Role::parse(&self.role)
    }
}

/// Members, owner first, then admins, then by how long they have been in.
pub async fn members(store: &Store, conversation_id: i64) -> Result<Vec<MemberRow>, sqlx::Error> {
    let sql = "SELECT m.user_id, u.username, u.display_name, m.role, m.joined_at, m.last_read_id, u.presence, u.last_seen_at,
                      u.last_seen_audience, u.status_emoji, u.status_text, u.status_expires_at, u.avatar_key
               FROM members m JOIN users u ON u.id = m.user_id WHERE m.conversation_id = $1
               ORDER BY CASE m.role WHEN 'owner' THEN 0 WHEN 'admin' THEN 1 ELSE 2 END, m.joined_at, m.user_id";
    store.rows(sql, &[Arg::Int(conversation_id)]).await
}

crate::direct_row!(MemberRow {
    user_id, username, display_name, role, joined_at, last_read_id, presence, last_seen_at, last_seen_audience,
    status_emoji, status_text, status_expires_at, avatar_key,
});

/// Runs one statement and, when it changed a row, appends `event` in the same
/// transaction. True when a row changed.
async fn change_with_event(store: &Store, sql: &str, binds: &[Bind<'_>], event: NewEvent) -> Result<bool, sqlx::Error> {
    let changed = with_db!(store, pool => {
        let mut tx = pool.begin_write().await?;
        let mut query = sqlx::query(sql);
        for bind in binds {
            query = match *bind {
                Bind::Int(v) => query.bind(v),
                Bind::Text(v) => query.bind(v),
            };
        }
        let changed = query.execute(&mut *tx).await?.rows_affected() > 0;
        if changed {
            (*tx).append_events(&[event]).await?;
        }
        tx.commit().await?;
        changed
    });
    if changed {
        store.signal_commit();
    }
    Ok(changed)
}

enum Bind<'a> {
    Int(i64),
    Text(&'a str),
}

/// How many members a conversation has.
pub async fn member_count(store: &Store, conversation_id: i64) -> Result<i64, sqlx::Error> {
    let sql = "SELECT COUNT(*) FROM members WHERE conversation_id = $1";
    with_db!(store, pool => sqlx::query_scalar(sql).bind(conversation_id).fetch_one(pool).await)
}

/// Members other than `author_id` who have read up to `message_id`: the first 21 (what
/// "Seen by" names) and how many there are in all.
pub async fn readers(store: &Store, conversation_id: i64, message_id: i64, author_id: i64) -> Result<(Vec<MemberRow>, i64), sqlx::Error> {
    let sql = "SELECT m.user_id, u.username, u.display_name, m.role, m.joined_at, m.last_read_id, u.presence, u.last_seen_at,
                      u.last_seen_audience, u.status_emoji, u.status_text, u.status_expires_at, u.avatar_key
               FROM members m JOIN users u ON u.id = m.user_id
               WHERE m.conversation_id = $1 AND m.last_read_id >= $2 AND m.user_id <> $3
               ORDER BY m.joined_at, m.user_id LIMIT 21";
    let count_sql = "SELECT COUNT(*) FROM members WHERE conversation_id = $1 AND last_read_id >= $2 AND user_id <> $3";
    with_db!(store, pool => {
        let rows: Vec<MemberRow> = sqlx::query_as(sql).bind(conversation_id).bind(message_id).bind(author_id).fetch_all(pool).await?;
        let count: i64 = if rows.len() > 20 {
            sqlx::query_scalar(count_sql).bind(conversation_id).bind(message_id).bind(author_id).fetch_one(pool).await?
        } else {
            rows.len() as i64
        };
        Ok((rows, count))
    })
}

pub async fn rename(store: &Store, conversation_id: i64, name: &str) -> Result<(), sqlx::Error> {
    let sql = "UPDATE conversations SET name = $1 WHERE id = $2";
    let event = NewEvent::new(Kind::Conversation, conversation_id);
    change_with_event(store, sql, &[Bind::Text(name), Bind::Int(conversation_id)], event).await.map(|_| ())
}

/// Adds a member; false when they already were one.
pub async fn add_member(store: &Store, conversation_id: i64, user_id: i64) -> Result<bool, sqlx::Error> {
    let sql = "INSERT INTO members (conversation_id, user_id, role, joined_at, last_read_id)
               SELECT $1, $2, 'member', $3, c.last_message_id FROM conversations c WHERE c.id = $1
               ON CONFLICT (conversation_id, user_id) DO NOTHING";
    let event = NewEvent::new(Kind::Joined, conversation_id).user(user_id);
    change_with_event(store, sql, &[Bind::Int(conversation_id), Bind::Int(user_id), Bind::Int(now_ms())], event).await
}

pub async fn remove_member(store: &Store, conversation_id: i64, user_id: i64) -> Result<(), sqlx::Error> {
    let sql = "DELETE FROM members WHERE conversation_id = $1 AND user_id = $2";
    let event = NewEvent::new(Kind::Left, conversation_id).user(user_id);
    change_with_event(store, sql, &[Bind::Int(conversation_id), Bind::Int(user_id)], event).await.map(|_| ())
}

pub async fn set_role(store: &Store, conversation_id: i64, user_id: i64, role: Role) -> Result<(), sqlx::Error> {
    let sql = "UPDATE members SET role = $1 WHERE conversation_id = $2 AND user_id = $3";
    let event = NewEvent::new(Kind::Conversation, conversation_id).user(user_id);
    let binds = [Bind::Text(role.as_str()), Bind::Int(conversation_id), Bind::Int(user_id)];
    change_with_event(store, sql, &binds, event).await.map(|_| ())
}

/// Moves the read position forward (never back) to `message_id`.
pub async fn mark_read(store: &Store, conversation_id: i64, user_id: i64, message_id: i64) -> Result<(), sqlx::Error> {
    let sql = "UPDATE members SET last_read_id = $1 WHERE conversation_id = $2 AND user_id = $3 AND last_read_id < $1";
    let event = NewEvent::new(Kind::Read, conversation_id).user(user_id).subject(message_id);
    let binds = [Bind::Int(message_id), Bind::Int(conversation_id), Bind::Int(user_id)];
    change_with_event(store, sql, &binds, event).await.map(|_| ())
}

#[derive(sqlx::FromRow)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub display_name: String,
}

impl UserRow {
    pub fn name(&self) -> &str {
        crate::accounts::model::shown_name(&self.display_name, &self.username)
    }
}

/// People whose username or display name contains `query` (case-insensitive).
pub async fn search_users(store: &Store, query: &str, limit: i64) -> Result<Vec<UserRow>, sqlx::Error> {
    let escaped = query.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    let pattern = format!("%{escaped}%");
    let sql = "SELECT id, username, display_name FROM users
               WHERE username LIKE $1 ESCAPE '\\' OR LOWER(display_name) LIKE $1 ESCAPE '\\'
               ORDER BY CASE WHEN username = $2 THEN 0 ELSE 1 END, username LIMIT $3";
    with_db!(store, pool => {
        sqlx::query_as(sql).bind(&pattern).bind(query.to_lowercase()).bind(limit).fetch_all(pool).await
    })
}

pub async fn user_by_username(store: &Store, username: &str) -> Result<Option<UserRow>, sqlx::Error> {
    with_db!(store, pool => {
        sqlx::query_as("SELECT id, username, display_name FROM users WHERE username = $1")
            .bind(username.trim().trim_start_matches('@').to_lowercase())
            .fetch_optional(pool)
            .await
    })
}

/// Which of `names` are existing usernames (for turning `@name` into mentions).
pub async fn existing_usernames(store: &Store, names: &[String]) -> Result<Vec<(i64, String)>, sqlx::Error> {
    let mut found = Vec::new();
    for name in names.iter().take(50) {
        if let Some(user) = user_by_username(store, name).await? {
            found.push((user.id, user.username));
        }
    }
    Ok(found)
}
