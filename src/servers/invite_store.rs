//! SQL for invites: creating one, listing, revoking, and joining a server through one.
//! A use is counted by one conditional UPDATE, so concurrent joins never overrun
//! `max_uses` and every counted use is a member who really joined.

use rand::Rng;

use crate::store::{BeginWrite, Store, now_ms};
use crate::with_db;

use super::audit::Entry;

/// Ten characters from 62: about 59 bits, far past guessing at any rate limit.
pub fn new_code() -> String {
    rand::rng().sample_iter(rand::distr::Alphanumeric).take(10).map(char::from).collect()
}

pub async fn create(store: &Store, server_id: i64, creator: i64, expires_at: Option<i64>, max_uses: i64, audit: &Entry) -> Result<String, sqlx::Error> {
    let code = new_code();
    let mut entry = audit.clone();
    entry.target_name = code.clone();
    with_db!(store, pool => {
        let mut tx = pool.begin_write().await?;
        sqlx::query("INSERT INTO invites (code, server_id, creator_id, created_at, expires_at, max_uses) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&code).bind(server_id).bind(creator).bind(now_ms()).bind(expires_at).bind(max_uses)
            .execute(&mut *tx).await?;
        crate::write_audit!(tx, &entry).await?;
        tx.commit().await?;
    });
    Ok(code)
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct InviteRow {
    pub code: String,
    pub server_id: i64,
    pub server_name: String,
    pub creator_id: Option<i64>,
    pub creator_name: Option<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub max_uses: i64,
    pub uses: i64,
    pub revoked_at: Option<i64>,
    pub members: i64,
}

impl InviteRow {
    /// Why the invite no longer works, if it does not.
    pub fn dead_reason(&self, now: i64) -> Option<&'static str> {
        if self.revoked_at.is_some() {
            Some("This invite was revoked.")
        } else if self.expires_at.is_some_and(|at| at <= now) {
            Some("This invite has expired.")
        } else if self.max_uses > 0 && self.uses >= self.max_uses {
            Some("This invite has been used as many times as it allows.")
        } else {
            None
        }
    }
}

const SELECT: &str = concat!("SELECT i.code, i.server_id, s.name AS server_name, ", crate::shown_name_sql!("u"), " AS creator_name,
      i.creator_id, i.created_at, i.expires_at, i.max_uses, i.uses, i.revoked_at,
      (SELECT COUNT(*) FROM server_members sm WHERE sm.server_id = i.server_id) AS members
    FROM invites i JOIN servers s ON s.id = i.server_id LEFT JOIN users u ON u.id = i.creator_id");

pub async fn get(store: &Store, code: &str) -> Result<Option<InviteRow>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE i.code = $1");
    with_db!(store, pool => sqlx::query_as(&sql).bind(code).fetch_optional(pool).await)
}

/// The server's invites that still work, newest first.
pub async fn list(store: &Store, server_id: i64) -> Result<Vec<InviteRow>, sqlx::Error> {
    let sql = format!(
        "{SELECT} WHERE i.server_id = $1 AND i.revoked_at IS NULL AND (i.expires_at IS NULL OR i.expires_at > $2)
           AND (i.max_uses = 0 OR i.uses < i.max_uses) ORDER BY i.created_at DESC LIMIT 200"
    );
    with_db!(store, pool => sqlx::query_as(&sql).bind(server_id).bind(now_ms()).fetch_all(pool).await)
}

pub async fn revoke(store: &Store, server_id: i64, code: &str, audit: &Entry) -> Result<bool, sqlx::Error> {
    with_db!(store, pool => {
        let mut tx = pool.begin_write().await?;
        let done = sqlx::query("UPDATE invites SET revoked_at = $1 WHERE code = $2 AND server_id = $3 AND revoked_at IS NULL")
            .bind(now_ms()).bind(code).bind(server_id).execute(&mut *tx).await?.rows_affected() > 0;
        if done {
            crate::write_audit!(tx, audit).await?;
        }
        tx.commit().await?;
        Ok(done)
    })
}

/// What joining through an invite came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Joined {
    /// A new member of this server.
    Joined(i64),
    /// Already a member: no use is counted.
    AlreadyMember(i64),
    Banned,
    /// Revoked, expired or used up.
    Dead,
}

/// Joins `user` to the invite's server: a member already is one; a banned user is
/// refused; otherwise one use is taken (only while the invite still works) and the
/// membership, its channel rows and events commit together.
pub async fn join(store: &Store, code: &str, user: i64) -> Result<Joined, sqlx::Error> {
    let now = now_ms();
    let outcome = with_db!(store, pool => {
        let mut tx = pool.begin_write().await?;
        let server: Option<i64> = sqlx::query_scalar("SELECT server_id FROM invites WHERE code = $1").bind(code).fetch_optional(&mut *tx).await?;
        let Some(server) = server else { return Ok(Joined::Dead) };
        let banned: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM bans WHERE server_id = $1 AND user_id = $2")
            .bind(server).bind(user).fetch_one(&mut *tx).await?;
        if banned > 0 {
            return Ok(Joined::Banned);
        }
        // Inserting first makes a double click (two joins of one person at once) one
        // membership and one use: the second finds the row and rolls back.
        let inserted = sqlx::query(
            "INSERT INTO server_members (server_id, user_id, joined_at) VALUES ($1, $2, $3)
             ON CONFLICT (server_id, user_id) DO NOTHING",
        )
        .bind(server).bind(user).bind(now).execute(&mut *tx).await?.rows_affected() > 0;
        if !inserted {
            return Ok(Joined::AlreadyMember(server));
        }
        let taken = sqlx::query(
            "UPDATE invites SET uses = uses + 1 WHERE code = $1 AND revoked_at IS NULL
               AND (expires_at IS NULL OR expires_at > $2) AND (max_uses = 0 OR uses < max_uses)",
        )
        .bind(code).bind(now).execute(&mut *tx).await?.rows_affected() > 0;
        if !taken {
            return Ok(Joined::Dead);
        }
        crate::sync_channel_access!(tx, server, user).await?;
        tx.commit().await?;
        Joined::Joined(server)
    });
    store.signal_commit();
    Ok(outcome)
}
