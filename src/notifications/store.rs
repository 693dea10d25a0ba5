//! Notification settings in the database: one optional row per (person, conversation)
//! and per (person, server).

use crate::store::Store;
use crate::with_db;

use super::level::Setting;

/// Which table a setting lives in.
#[derive(Clone, Copy, Debug)]
pub enum Scope {
    Conversation(i64),
    Server(i64),
}

pub async fn get(store: &Store, user_id: i64, scope: Scope) -> Result<Setting, sqlx::Error> {
    let (sql, id) = match scope {
        Scope::Conversation(id) => ("SELECT level, muted_until FROM notification_settings WHERE user_id = $1 AND conversation_id = $2", id),
        Scope::Server(id) => ("SELECT level, muted_until FROM server_notification_settings WHERE user_id = $1 AND server_id = $2", id),
    };
    let row: Option<(Option<String>, Option<i64>)> =
        with_db!(store, pool => sqlx::query_as(sql).bind(user_id).bind(id).fetch_optional(pool).await)?;
    Ok(row.map(|(level, until)| Setting::from_row(level.as_deref(), until)).unwrap_or_default())
}

pub async fn save(store: &Store, user_id: i64, scope: Scope, setting: Setting) -> Result<(), sqlx::Error> {
    let (sql, id) = match scope {
        Scope::Conversation(id) => (
            "INSERT INTO notification_settings (user_id, conversation_id, level, muted_until) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id, conversation_id) DO UPDATE SET level = excluded.level, muted_until = excluded.muted_until",
            id,
        ),
        Scope::Server(id) => (
            "INSERT INTO server_notification_settings (user_id, server_id, level, muted_until) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id, server_id) DO UPDATE SET level = excluded.level, muted_until = excluded.muted_until",
            id,
        ),
    };
    let level = setting.level.map(|l| l.as_str());
    with_db!(store, pool => sqlx::query(sql).bind(user_id).bind(id).bind(level).bind(setting.muted_until).execute(pool).await.map(|_| ()))?;
    Ok(())
}
