//! SQL for roles and who holds them: creating, editing, ordering and deleting roles,
//! and setting a member's roles. Each write re-plans channel access in its transaction
//! (a role's VIEW_CHANNEL decides who sees channels) and writes its audit row there.

use crate::store::{BeginWrite, Store};
use crate::with_db;

use super::audit::Entry;
use super::permissions::Permissions;
use super::store::{ServerMemberRow, server_write};

/// What a role form sets (for @everyone only `permissions` is used).
#[derive(Clone, Debug)]
pub struct RoleValues {
    pub name: String,
    pub color: String,
    pub hoist: bool,
    pub mentionable: bool,
    pub permissions: Permissions,
}

/// One member of the server, if they are one.
pub async fn member(store: &Store, server_id: i64, user_id: i64) -> Result<Option<ServerMemberRow>, sqlx::Error> {
    let sql = "SELECT sm.user_id, u.username, u.display_name, u.presence, u.last_seen_at, u.last_seen_audience, u.status_emoji, u.status_text, u.status_expires_at, sm.joined_at, sm.timeout_until, u.avatar_key
               FROM server_members sm JOIN users u ON u.id = sm.user_id WHERE sm.server_id = $1 AND sm.user_id = $2";
    with_db!(store, pool => sqlx::query_as(sql).bind(server_id).bind(user_id).fetch_optional(pool).await)
}

/// How many members hold each role: (role, count).
pub async fn member_counts(store: &Store, server_id: i64) -> Result<Vec<(i64, i64)>, sqlx::Error> {
    let sql = "SELECT role_id, COUNT(*) FROM member_roles WHERE server_id = $1 GROUP BY role_id";
    with_db!(store, pool => sqlx::query_as(sql).bind(server_id).fetch_all(pool).await)
}

/// A new role goes just above @everyone, as in Discord: below every existing role, so
/// whoever made it ranks above it and can go on managing it.
pub async fn create(store: &Store, server_id: i64, values: &RoleValues, audit: &Entry) -> Result<i64, sqlx::Error> {
    server_write!(store, server_id, Some(audit), |tx| {
        sqlx::query("UPDATE roles SET position = position + 1 WHERE server_id = $1 AND NOT is_everyone")
            .bind(server_id).execute(&mut *tx).await?;
        sqlx::query_scalar::<_, i64>(
            "INSERT INTO roles (server_id, name, color, permissions, position, hoist, mentionable, is_everyone)
             VALUES ($1, $2, $3, $4, 1, $5, $6, FALSE) RETURNING id",
        )
        .bind(server_id).bind(&values.name).bind(&values.color).bind(values.permissions.bits() as i64)
        .bind(values.hoist).bind(values.mentionable)
        .fetch_one(&mut *tx).await?
    })
}

/// Saves a role; for @everyone only its permissions (its name and place are fixed).
pub async fn update(store: &Store, server_id: i64, role_id: i64, values: &RoleValues, audit: &Entry) -> Result<(), sqlx::Error> {
    server_write!(store, server_id, Some(audit), |tx| {
        sqlx::query(
            "UPDATE roles SET permissions = $1,
                 name = CASE WHEN is_everyone THEN name ELSE $2 END,
                 color = CASE WHEN is_everyone THEN '' ELSE $3 END,
                 hoist = CASE WHEN is_everyone THEN FALSE ELSE $4 END,
                 mentionable = CASE WHEN is_everyone THEN FALSE ELSE $5 END
             WHERE id = $6 AND server_id = $7",
        )
        .bind(values.permissions.bits() as i64).bind(&values.name).bind(&values.color).bind(values.hoist).bind(values.mentionable)
        .bind(role_id).bind(server_id)
        .execute(&mut *tx).await?;
    })?;
    Ok(())
}

/// Deletes a role with its overrides (its memberships go by the schema's cascade); the
/// roles above it close the gap.
pub async fn delete(store: &Store, server_id: i64, role_id: i64, audit: &Entry) -> Result<(), sqlx::Error> {
    server_write!(store, server_id, Some(audit), |tx| {
        sqlx::query("DELETE FROM overrides WHERE server_id = $1 AND subject_kind = 'role' AND subject_id = $2")
            .bind(server_id).bind(role_id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM roles WHERE id = $1 AND server_id = $2 AND NOT is_everyone").bind(role_id).bind(server_id).execute(&mut *tx).await?;
        let order: Vec<i64> = sqlx::query_scalar("SELECT id FROM roles WHERE server_id = $1 AND NOT is_everyone ORDER BY position, id")
            .bind(server_id).fetch_all(&mut *tx).await?;
        for (at, id) in order.iter().enumerate() {
            sqlx::query("UPDATE roles SET position = $1 WHERE id = $2").bind(at as i64 + 1).bind(id).execute(&mut *tx).await?;
        }
    })?;
    Ok(())
}

/// Gives the server's roles (not @everyone) the positions 1, 2, … in `lowest_first`
/// order; the caller decided the order the actor may make.
pub async fn reorder(store: &Store, server_id: i64, lowest_first: &[i64], audit: &Entry) -> Result<(), sqlx::Error> {
    server_write!(store, server_id, Some(audit), |tx| {
        for (at, id) in lowest_first.iter().enumerate() {
            sqlx::query("UPDATE roles SET position = $1 WHERE id = $2 AND server_id = $3 AND NOT is_everyone")
                .bind(at as i64 + 1).bind(id).bind(server_id).execute(&mut *tx).await?;
        }
    })?;
    Ok(())
}

/// Gives a member the roles in `add` and takes those in `remove` (all of this server's;
/// the caller checked the hierarchy). Only that member's channel access is re-planned.
pub async fn set_member_roles(store: &Store, server_id: i64, user_id: i64, add: &[i64], remove: &[i64], audit: &Entry) -> Result<(), sqlx::Error> {
    server_write!(store, server_id, user_id, Some(audit), |tx| {
        for role in add {
            sqlx::query(
                "INSERT INTO member_roles (server_id, user_id, role_id) VALUES ($1, $2, $3)
                 ON CONFLICT (server_id, user_id, role_id) DO NOTHING",
            )
            .bind(server_id).bind(user_id).bind(role).execute(&mut *tx).await?;
        }
        for role in remove {
            sqlx::query("DELETE FROM member_roles WHERE server_id = $1 AND user_id = $2 AND role_id = $3")
                .bind(server_id).bind(user_id).bind(role).execute(&mut *tx).await?;
        }
    })?;
    Ok(())
}
