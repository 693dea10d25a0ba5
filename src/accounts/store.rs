//! SQL for users and devices (the signed-in sessions listed on the Sessions page).

use crate::store::{Db, Store, now_ms, unique_violation};
use crate::with_db;

use super::CurrentUser;

pub struct NewUser<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub display_name: &'a str,
    pub password_hash: &'a str,
}

pub enum CreateUserError {
    UsernameTaken,
    EmailTaken,
    Db(sqlx::Error),
}

/// Creates an account; the first account on an instance becomes its administrator.
pub async fn create_user(store: &Store, new: NewUser<'_>) -> Result<i64, CreateUserError> {
    let sql = "INSERT INTO users (username, email, display_name, password_hash, is_admin, created_at)
               VALUES ($1, $2, $3, $4, NOT EXISTS (SELECT 1 FROM users), $5) RETURNING id";
    let result: Result<i64, sqlx::Error> = with_db!(store, pool => {
        sqlx::query_scalar(sql)
            .bind(new.username)
            .bind(new.email)
            .bind(new.display_name)
            .bind(new.password_hash)
            .bind(now_ms())
            .fetch_one(pool)
            .await
    });
    result.map_err(|error| match unique_violation(&error) {
        Some(which) if which.contains("username") => CreateUserError::UsernameTaken,
        Some(which) if which.contains("email") => CreateUserError::EmailTaken,
        _ => CreateUserError::Db(error),
    })
}

/// The id and password hash of the account a login names (a username, or an email
/// when it holds an `@`).
pub async fn find_login(store: &Store, login: &str) -> Result<Option<(i64, String)>, sqlx::Error> {
    let login = login.trim().to_lowercase();
    let sql = if login.contains('@') {
        "SELECT id, password_hash FROM users WHERE email = $1"
    } else {
        "SELECT id, password_hash FROM users WHERE username = $1"
    };
    with_db!(store, pool => sqlx::query_as(sql).bind(&login).fetch_optional(pool).await)
}

pub async fn password_hash(store: &Store, user_id: i64) -> Result<Option<String>, sqlx::Error> {
    with_db!(store, pool => {
        sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1").bind(user_id).fetch_optional(pool).await
    })
}

pub async fn set_password_hash(store: &Store, user_id: i64, hash: &str) -> Result<(), sqlx::Error> {
    with_db!(store, pool => {
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2").bind(hash).bind(user_id).execute(pool).await.map(|r| r.rows_affected())
    })?;
    Ok(())
}

pub async fn create_device(store: &Store, user_id: i64, user_agent: &str, ip: &str) -> Result<i64, sqlx::Error> {
    let now = now_ms();
    with_db!(store, pool => {
        sqlx::query_scalar(
            "INSERT INTO devices (user_id, user_agent, ip, created_at, last_active_at)
             VALUES ($1, $2, $3, $4, $4) RETURNING id",
        )
        .bind(user_id)
        .bind(user_agent)
        .bind(ip)
        .bind(now)
        .fetch_one(pool)
        .await
    })
}

/// The signed-in user behind a device, and when that device was last active; `None`
/// once the device was signed out (from anywhere).
pub async fn user_for_device(store: &Store, device_id: i64) -> Result<Option<(CurrentUser, i64)>, sqlx::Error> {
    let sql = "SELECT u.id, u.username, u.display_name, u.is_admin, d.last_active_at, u.time_zone
               FROM devices d JOIN users u ON u.id = d.user_id WHERE d.id = $1";
    let row: Option<(i64, String, String, bool, i64, String)> = store.row(sql, &[crate::store::Arg::Int(device_id)]).await?;
    Ok(row.map(|(id, username, display_name, is_admin, last_active, time_zone)| {
        let zone = crate::web::time::Zone::stored(&time_zone);
        (CurrentUser { id, username, display_name, is_admin, device_id, zone, zone_chosen: !time_zone.is_empty() }, last_active)
    }))
}

pub async fn touch_device(store: &Store, device_id: i64, ip: &str) -> Result<(), sqlx::Error> {
    with_db!(store, pool => {
        sqlx::query("UPDATE devices SET last_active_at = $1, ip = $2 WHERE id = $3")
            .bind(now_ms())
            .bind(ip)
            .bind(device_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(())
}

#[derive(sqlx::FromRow)]
pub struct DeviceRow {
    pub id: i64,
    pub user_agent: String,
    pub ip: String,
    pub created_at: i64,
    pub last_active_at: i64,
}

/// Activity before this (ms) means the device's session has expired from idleness.
pub fn idle_cutoff() -> i64 {
    now_ms() - super::session::IDLE_DAYS * 24 * 3600 * 1000
}

/// The user's signed-in devices, without those whose session expired from idleness
/// (their rows stay until the hourly sweep).
pub async fn list_devices(store: &Store, user_id: i64) -> Result<Vec<DeviceRow>, sqlx::Error> {
    with_db!(store, pool => {
        sqlx::query_as(
            "SELECT id, user_agent, ip, created_at, last_active_at FROM devices
             WHERE user_id = $1 AND last_active_at > $2 ORDER BY last_active_at DESC, id DESC",
        )
        .bind(user_id)
        .bind(idle_cutoff())
        .fetch_all(pool)
        .await
    })
}

/// Deletes devices idle past the session expiry; the ids deleted.
pub async fn delete_idle_devices(store: &Store) -> Result<Vec<i64>, sqlx::Error> {
    with_db!(store, pool => {
        sqlx::query_scalar("DELETE FROM devices WHERE last_active_at <= $1 RETURNING id").bind(idle_cutoff()).fetch_all(pool).await
    })
}

/// Which of `device_ids` are still signed in: one query for every stream an instance
/// holds, the ids bound as one JSON array (no statement per id, no bind limit).
pub async fn existing_devices(store: &Store, device_ids: &[i64]) -> Result<Vec<i64>, sqlx::Error> {
    let ids = serde_json::to_string(device_ids).unwrap_or_else(|_| "[]".into());
    match &store.db {
        Db::Sqlite(pool) => {
            sqlx::query_scalar("SELECT id FROM devices WHERE id IN (SELECT value FROM json_each($1))").bind(ids).fetch_all(pool).await
        }
        Db::Postgres(pool) => {
            sqlx::query_scalar("SELECT id FROM devices WHERE id IN (SELECT value::bigint FROM json_array_elements_text($1::json))")
                .bind(ids)
                .fetch_all(pool)
                .await
        }
    }
}

/// Signs out one of the user's devices; false when it is not theirs (or already gone).
pub async fn delete_device(store: &Store, user_id: i64, device_id: i64) -> Result<bool, sqlx::Error> {
    let result = with_db!(store, pool => {
        sqlx::query("DELETE FROM devices WHERE id = $1 AND user_id = $2")
            .bind(device_id)
            .bind(user_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })?;
    Ok(result > 0)
}

/// Signs out all the user's devices but `keep`; the ids signed out.
pub async fn delete_other_devices(store: &Store, user_id: i64, keep: i64) -> Result<Vec<i64>, sqlx::Error> {
    with_db!(store, pool => {
        sqlx::query_scalar("DELETE FROM devices WHERE user_id = $1 AND id <> $2 RETURNING id")
            .bind(user_id)
            .bind(keep)
            .fetch_all(pool)
            .await
    })
}
