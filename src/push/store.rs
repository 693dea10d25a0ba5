//! Push subscriptions and focus records in the database.

use crate::store::{Store, now_ms};
use crate::with_db;

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Subscription {
    pub id: i64,
    pub user_id: i64,
    pub device_id: i64,
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
    pub created_at: i64,
}

/// Stores a browser's subscription for `device_id`. The same endpoint again (the
/// browser re-subscribed, or someone else signed in on it) replaces the old row:
/// an endpoint reaches one browser profile, which belongs to whoever registered last.
pub async fn save(store: &Store, user_id: i64, device_id: i64, endpoint: &str, p256dh: &str, auth: &str) -> Result<(), sqlx::Error> {
    let sql = "INSERT INTO push_subscriptions (user_id, device_id, endpoint, p256dh, auth, created_at)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT (endpoint) DO UPDATE SET user_id = excluded.user_id, device_id = excluded.device_id,
                   p256dh = excluded.p256dh, auth = excluded.auth, created_at = excluded.created_at";
    with_db!(store, pool => sqlx::query(sql).bind(user_id).bind(device_id).bind(endpoint).bind(p256dh).bind(auth).bind(now_ms()).execute(pool).await.map(|_| ()))?;
    Ok(())
}

/// This device's subscriptions (one per browser profile, so usually one).
pub async fn for_device(store: &Store, device_id: i64) -> Result<Vec<Subscription>, sqlx::Error> {
    let sql = "SELECT id, user_id, device_id, endpoint, p256dh, auth, created_at FROM push_subscriptions WHERE device_id = $1 ORDER BY id";
    with_db!(store, pool => sqlx::query_as(sql).bind(device_id).fetch_all(pool).await)
}

/// Whether the user has any subscription at all (focus records matter only then).
pub async fn user_has_any(store: &Store, user_id: i64) -> Result<bool, sqlx::Error> {
    let sql = "SELECT id FROM push_subscriptions WHERE user_id = $1 LIMIT 1";
    let found: Option<i64> = with_db!(store, pool => sqlx::query_scalar(sql).bind(user_id).fetch_optional(pool).await)?;
    Ok(found.is_some())
}

/// Every subscription of these users.
pub async fn for_users(store: &Store, users: &[i64]) -> Result<Vec<Subscription>, sqlx::Error> {
    let mut all = Vec::new();
    for chunk in users.chunks(500) {
        let rows: Vec<Subscription> = with_db!(store, pool => {
            let mut query = sqlx::QueryBuilder::new("SELECT id, user_id, device_id, endpoint, p256dh, auth, created_at FROM push_subscriptions WHERE user_id IN (");
            let mut list = query.separated(", ");
            for user in chunk {
                list.push_bind(*user);
            }
            query.push(")");
            query.build_query_as().persistent(false).fetch_all(pool).await
        })?;
        all.extend(rows);
    }
    Ok(all)
}

/// Removes the user's subscription with `endpoint`; false when there was none.
pub async fn remove(store: &Store, user_id: i64, endpoint: &str) -> Result<bool, sqlx::Error> {
    let sql = "DELETE FROM push_subscriptions WHERE user_id = $1 AND endpoint = $2";
    let done = with_db!(store, pool => sqlx::query(sql).bind(user_id).bind(endpoint).execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(done > 0)
}

/// Removes one of the user's subscriptions by id (the settings page's form).
pub async fn remove_by_id(store: &Store, user_id: i64, id: i64) -> Result<bool, sqlx::Error> {
    let sql = "DELETE FROM push_subscriptions WHERE user_id = $1 AND id = $2";
    let done = with_db!(store, pool => sqlx::query(sql).bind(user_id).bind(id).execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(done > 0)
}

/// The push service said the subscription is gone (404/410).
pub async fn forget(store: &Store, id: i64) -> Result<(), sqlx::Error> {
    let sql = "DELETE FROM push_subscriptions WHERE id = $1";
    with_db!(store, pool => sqlx::query(sql).bind(id).execute(pool).await.map(|_| ()))?;
    Ok(())
}

/// "Open in a visible tab" until `expires_at`.
pub async fn focus(store: &Store, user_id: i64, conversation_id: i64, expires_at: i64) -> Result<(), sqlx::Error> {
    let sql = "INSERT INTO push_focus (user_id, conversation_id, expires_at) VALUES ($1, $2, $3)
               ON CONFLICT (user_id, conversation_id) DO UPDATE SET expires_at = excluded.expires_at";
    with_db!(store, pool => sqlx::query(sql).bind(user_id).bind(conversation_id).bind(expires_at).execute(pool).await.map(|_| ()))?;
    Ok(())
}

pub async fn unfocus(store: &Store, user_id: i64, conversation_id: i64) -> Result<(), sqlx::Error> {
    let sql = "DELETE FROM push_focus WHERE user_id = $1 AND conversation_id = $2";
    with_db!(store, pool => sqlx::query(sql).bind(user_id).bind(conversation_id).execute(pool).await.map(|_| ()))?;
    Ok(())
}

/// Drops focus records that expired (the sweeper's job; expired ones are ignored anyway).
pub async fn sweep_focus(store: &Store) -> Result<(), sqlx::Error> {
    let sql = "DELETE FROM push_focus WHERE expires_at < $1";
    with_db!(store, pool => sqlx::query(sql).bind(now_ms()).execute(pool).await.map(|_| ()))?;
    Ok(())
}
