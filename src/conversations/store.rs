//! SQL for conversations and their members: opening DMs, creating groups, the
//! sidebar list, membership changes and read positions.

use crate::store::{Store, now_ms};
use crate::with_db;

use super::model::Role;

/// Opens the DM between `a` and `b` (the same conversation every time; `a == b` is
/// the user's "Saved messages").
pub async fn open_dm(store: &Store, a: i64, b: i64) -> Result<i64, sqlx::Error> {
    let key = format!("{}:{}", a.min(b), a.max(b));
    let now = now_ms();
    with_db!(store, pool => {
        let mut tx = pool.begin().await?;
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
        for user in [a, b] {
            sqlx::query(
                "INSERT INTO members (conversation_id, user_id, role, joined_at) VALUES ($1, $2, 'member', $3)
                 ON CONFLICT (conversation_id, user_id) DO NOTHING",
            )
            .bind(id)
            .bind(user)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(id)
    })
}

pub async fn create_group(store: &Store, owner: i64, name: &str, members: &[i64]) -> Result<i64, sqlx::Error> {
    let now = now_ms();
    with_db!(store, pool => {
        let mut tx = pool.begin().await?;
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
        tx.commit().await?;
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
    pub other_name: Option<String>,
}

/// Every conversation of the user, latest activity first, with what the sidebar shows.
pub async fn sidebar(store: &Store, user_id: i64) -> Result<Vec<SidebarRow>, sqlx::Error> {
    let sql = "SELECT c.id, c.kind, c.name, c.last_activity_at,
          (SELECT COUNT(*) FROM messages x WHERE x.conversation_id = c.id AND x.id > m.last_read_id
              AND x.author_id <> $1 AND x.deleted_at IS NULL AND x.kind = 'text') AS unread,
          (SELECT COUNT(*) FROM mentions n WHERE n.user_id = $1 AND n.conversation_id = c.id
              AND n.message_id > m.last_read_id) AS mentioned,
          lm.body AS last_body, lm.kind AS last_kind, lm.deleted_at AS last_deleted_at,
          COALESCE(NULLIF(lu.display_name, ''), lu.username) AS last_author,
          (SELECT COALESCE(NULLIF(u.display_name, ''), u.username) FROM members o JOIN users u ON u.id = o.user_id
              WHERE o.conversation_id = c.id AND o.user_id <> $1 LIMIT 1) AS other_name
        FROM members m JOIN conversations c ON c.id = m.conversation_id
        LEFT JOIN messages lm ON lm.id = c.last_message_id
        LEFT JOIN users lu ON lu.id = lm.author_id
        WHERE m.user_id = $1
        ORDER BY c.last_activity_at DESC, c.id DESC LIMIT 200";
    with_db!(store, pool => sqlx::query_as(sql).bind(user_id).fetch_all(pool).await)
}

#[derive(Clone, sqlx::FromRow)]
pub struct MemberRow {
    pub user_id: i64,
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub joined_at: i64,
    pub last_read_id: i64,
}

impl MemberRow {
    pub fn name(&self) -> &str {
        if self.display_name.is_empty() { &self.username } else { &self.display_name }
    }

    pub fn role(&self) -> Role {
        Role::parse(&self.role)
    }
}

/// Members, owner first, then admins, then by how long they have been in.
pub async fn members(store: &Store, conversation_id: i64) -> Result<Vec<MemberRow>, sqlx::Error> {
    let sql = "SELECT m.user_id, u.username, u.display_name, m.role, m.joined_at, m.last_read_id
               FROM members m JOIN users u ON u.id = m.user_id WHERE m.conversation_id = $1
               ORDER BY CASE m.role WHEN 'owner' THEN 0 WHEN 'admin' THEN 1 ELSE 2 END, m.joined_at, m.user_id";
    with_db!(store, pool => sqlx::query_as(sql).bind(conversation_id).fetch_all(pool).await)
}

pub async fn rename(store: &Store, conversation_id: i64, name: &str) -> Result<(), sqlx::Error> {
    with_db!(store, pool => {
        sqlx::query("UPDATE conversations SET name = $1 WHERE id = $2").bind(name).bind(conversation_id).execute(pool).await.map(|_| ())
    })
}

/// Adds a member; false when they already were one.
pub async fn add_member(store: &Store, conversation_id: i64, user_id: i64) -> Result<bool, sqlx::Error> {
    with_db!(store, pool => {
        sqlx::query(
            "INSERT INTO members (conversation_id, user_id, role, joined_at, last_read_id)
             SELECT $1, $2, 'member', $3, c.last_message_id FROM conversations c WHERE c.id = $1
             ON CONFLICT (conversation_id, user_id) DO NOTHING",
        )
        .bind(conversation_id)
        .bind(user_id)
        .bind(now_ms())
        .execute(pool)
        .await
        .map(|r| r.rows_affected() > 0)
    })
}

pub async fn remove_member(store: &Store, conversation_id: i64, user_id: i64) -> Result<(), sqlx::Error> {
    with_db!(store, pool => {
        sqlx::query("DELETE FROM members WHERE conversation_id = $1 AND user_id = $2")
            .bind(conversation_id)
            .bind(user_id)
            .execute(pool)
            .await
            .map(|_| ())
    })
}

pub async fn set_role(store: &Store, conversation_id: i64, user_id: i64, role: Role) -> Result<(), sqlx::Error> {
    with_db!(store, pool => {
        sqlx::query("UPDATE members SET role = $1 WHERE conversation_id = $2 AND user_id = $3")
            .bind(role.as_str())
            .bind(conversation_id)
            .bind(user_id)
            .execute(pool)
            .await
            .map(|_| ())
    })
}

/// Moves the read position forward (never back) to `message_id`.
pub async fn mark_read(store: &Store, conversation_id: i64, user_id: i64, message_id: i64) -> Result<(), sqlx::Error> {
    with_db!(store, pool => {
        sqlx::query(
            "UPDATE members SET last_read_id = $1
             WHERE conversation_id = $2 AND user_id = $3 AND last_read_id < $1",
        )
        .bind(message_id)
        .bind(conversation_id)
        .bind(user_id)
        .execute(pool)
        .await
        .map(|_| ())
    })
}

#[derive(sqlx::FromRow)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub display_name: String,
}

impl UserRow {
    pub fn name(&self) -> &str {
        if self.display_name.is_empty() { &self.username } else { &self.display_name }
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
