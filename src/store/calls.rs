//! Calls as stored: one row per call in a DM or group, and each person's answer to
//! it. Here, not in `calls/`, because two sides read it: the calls domain writes it,
//! and every live page (whatever domain draws it) shows the viewer's ringing calls
//! and a conversation's "Call in progress".

use super::{Store, now_ms};
use crate::with_db;

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Call {
    pub id: i64,
    pub conversation_id: i64,
    pub started_by: i64,
    pub video: bool,
    pub started_at: i64,
    /// When someone other than the caller first joined.
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub outcome: Option<String>,
}

impl Call {
    /// Still ringing for whoever has not answered, given how long calls ring
    /// (`--call-ring-seconds`). A DM call nobody answered by then ends as missed; a
    /// group call goes on without ringing.
    pub fn ringing(&self, now: i64, ring_ms: i64) -> bool {
        self.ended_at.is_none() && now - self.started_at < ring_ms
    }
}

/// How a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Someone else joined: the call had a duration.
    Answered,
    /// The other person (every other member, in a group) declined.
    Declined,
    /// Nobody answered while it rang.
    Missed,
    /// The caller hung up before anyone answered.
    Cancelled,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::Declined => "declined",
            Outcome::Missed => "missed",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// A person's answer to a call that rang for them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Joined,
    Declined,
}

/// A call ringing for the viewer, as the banner in the layout shows it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Ringing {
    pub call_id: i64,
    pub conversation_id: i64,
    /// Whose page it is on (the banner's id says so: their devices drop it together).
    pub user_id: i64,
    pub caller: String,
    pub video: bool,
    /// The group's name; empty in a DM (the caller's name says it all).
    pub group: String,
}

crate::direct_row!(Call { id, conversation_id, started_by, video, started_at, answered_at, ended_at, outcome });
crate::direct_row!(Ringing { call_id, conversation_id, user_id, caller, video, group });

const COLUMNS: &str = "id, conversation_id, started_by, video, started_at, answered_at, ended_at, outcome";

pub async fn by_id(store: &Store, id: i64) -> Result<Option<Call>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM calls WHERE id = $1");
    with_db!(store, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await)
}

/// The conversation's call that has not ended, if any.
pub async fn ongoing(store: &Store, conversation_id: i64) -> Result<Option<Call>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM calls WHERE conversation_id = $1 AND ended_at IS NULL");
    store.row(&sql, &[super::Arg::Int(conversation_id)]).await
}

/// Starts a call, or finds the one already going on; true when this started it.
/// The partial unique index decides between two starts at the same moment.
pub async fn start(store: &Store, conversation_id: i64, user_id: i64, video: bool) -> Result<(Call, bool), sqlx::Error> {
    let sql = "INSERT INTO calls (conversation_id, started_by, video, started_at) VALUES ($1, $2, $3, $4)
               ON CONFLICT (conversation_id) WHERE ended_at IS NULL DO NOTHING RETURNING id";
    // The ongoing call may end between the failed insert and the read: try again then.
    for _ in 0..3 {
        let id: Option<i64> = with_db!(store, pool => sqlx::query_scalar(sql).bind(conversation_id).bind(user_id).bind(video).bind(now_ms()).fetch_optional(pool).await?);
        if let Some(id) = id {
            let call = by_id(store, id).await?.ok_or(sqlx::Error::RowNotFound)?;
            return Ok((call, true));
        }
        if let Some(call) = ongoing(store, conversation_id).await? {
            return Ok((call, false));
        }
    }
    Err(sqlx::Error::RowNotFound)
}

/// Notes that someone other than the caller joined (the first such time counts).
pub async fn answered(store: &Store, id: i64) -> Result<(), sqlx::Error> {
    let sql = "UPDATE calls SET answered_at = COALESCE(answered_at, $2) WHERE id = $1 AND ended_at IS NULL";
    with_db!(store, pool => sqlx::query(sql).bind(id).bind(now_ms()).execute(pool).await.map(|_| ()))?;
    Ok(())
}

/// Ends the call; the ended row when this call ended it (once, whoever races).
pub async fn end(store: &Store, id: i64, outcome: Outcome) -> Result<Option<Call>, sqlx::Error> {
    let sql = format!("UPDATE calls SET ended_at = $2, outcome = $3 WHERE id = $1 AND ended_at IS NULL RETURNING {COLUMNS}");
    with_db!(store, pool => sqlx::query_as(&sql).bind(id).bind(now_ms()).bind(outcome.as_str()).fetch_optional(pool).await)
}

/// Records `user_id`'s answer. Joining wins over an earlier decline (they changed
/// their mind and joined from the conversation); a decline never undoes a join.
pub async fn answer(store: &Store, call_id: i64, user_id: i64, answer: Answer) -> Result<(), sqlx::Error> {
    let sql = match answer {
        Answer::Joined => "INSERT INTO call_answers (call_id, user_id, answer, at) VALUES ($1, $2, 'joined', $3)
                           ON CONFLICT (call_id, user_id) DO UPDATE SET answer = 'joined', at = excluded.at",
        Answer::Declined => "INSERT INTO call_answers (call_id, user_id, answer, at) VALUES ($1, $2, 'declined', $3)
                             ON CONFLICT (call_id, user_id) DO NOTHING",
    };
    with_db!(store, pool => sqlx::query(sql).bind(call_id).bind(user_id).bind(now_ms()).execute(pool).await.map(|_| ()))?;
    Ok(())
}

/// Members of the call's conversation, other than the caller, who have not answered.
pub async fn unanswered(store: &Store, call: &Call) -> Result<Vec<i64>, sqlx::Error> {
    let sql = "SELECT m.user_id FROM members m WHERE m.conversation_id = $1 AND m.user_id <> $2
               AND NOT EXISTS (SELECT 1 FROM call_answers a WHERE a.call_id = $3 AND a.user_id = m.user_id)";
    with_db!(store, pool => sqlx::query_scalar(sql).bind(call.conversation_id).bind(call.started_by).bind(call.id).fetch_all(pool).await)
}

/// What a banner shows, for `ringing` and `ringing_of`.
const RINGING: &str = concat!(
    "SELECT c.id AS call_id, c.conversation_id, m.user_id, ", crate::shown_name_sql!("u"), " AS caller, c.video,
            CASE WHEN conv.kind = 'group' THEN conv.name ELSE '' END AS \"group\"
     FROM calls c
     JOIN members m ON m.conversation_id = c.conversation_id AND m.user_id <> c.started_by
     JOIN conversations conv ON conv.id = c.conversation_id
     JOIN users u ON u.id = c.started_by
     WHERE c.ended_at IS NULL
       AND NOT EXISTS (SELECT 1 FROM call_answers a WHERE a.call_id = c.id AND a.user_id = m.user_id)"
);

/// The calls ringing for `user_id` now: in their DMs and groups, started by someone
/// else less than `ring_ms` ago, not yet joined or declined by them.
pub async fn ringing(store: &Store, user_id: i64, ring_ms: i64) -> Result<Vec<Ringing>, sqlx::Error> {
    let sql = format!("{RINGING} AND m.user_id = $1 AND c.started_at > $2 ORDER BY c.started_at");
    store.rows(&sql, &[super::Arg::Int(user_id), super::Arg::Int(now_ms() - ring_ms)]).await
}

/// The call's banners for everyone it still rings for (not the caller, nobody who
/// answered). Empty once it ended.
pub async fn ringing_of(store: &Store, call_id: i64) -> Result<Vec<Ringing>, sqlx::Error> {
    let sql = format!("{RINGING} AND c.id = $1");
    with_db!(store, pool => sqlx::query_as(&sql).bind(call_id).fetch_all(pool).await)
}

/// The caller's name, as shown (for the call's lines and banners).
pub async fn caller(store: &Store, call: &Call) -> Result<String, sqlx::Error> {
    let sql = concat!("SELECT ", crate::shown_name_sql!("u"), " FROM users u WHERE u.id = $1");
    let name: Option<String> = with_db!(store, pool => sqlx::query_scalar(sql).bind(call.started_by).fetch_optional(pool).await?);
    Ok(name.unwrap_or_default())
}

/// Whether the call is in a DM (else a group).
pub async fn in_dm(store: &Store, call: &Call) -> Result<bool, sqlx::Error> {
    let sql = "SELECT kind FROM conversations WHERE id = $1";
    let kind: Option<String> = with_db!(store, pool => sqlx::query_scalar(sql).bind(call.conversation_id).fetch_optional(pool).await?);
    Ok(kind.as_deref() == Some("dm"))
}
