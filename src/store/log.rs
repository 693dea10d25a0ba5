//! The event log: what changed, in commit order. Writers append rows in the same
//! transaction as the change; the dispatcher and reconnecting streams read them back
//! by id. Rows only point at what changed (a message, a member); whoever delivers an
//! event renders the thing's current state, so replaying an old event is harmless.

use futures_util::future::BoxFuture;
use sqlx::{PgConnection, SqliteConnection};

use super::{BeginWrite, Store, now_ms};
use crate::with_db;

/// What an event is about; stored as text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A message was written (`subject` is its id).
    Message,
    /// A message was edited, deleted, reacted to, pinned or unpinned.
    MessageChanged,
    /// `user` read up to message `subject`.
    Read,
    /// The conversation was created, renamed, or its members' roles changed.
    Conversation,
    /// `user` joined (was added to) the conversation.
    Joined,
    /// `user` left (was removed from) the conversation.
    Left,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Message => "message",
            Kind::MessageChanged => "message_changed",
            Kind::Read => "read",
            Kind::Conversation => "conversation",
            Kind::Joined => "joined",
            Kind::Left => "left",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        Some(match text {
            "message" => Kind::Message,
            "message_changed" => Kind::MessageChanged,
            "read" => Kind::Read,
            "conversation" => Kind::Conversation,
            "joined" => Kind::Joined,
            "left" => Kind::Left,
            _ => return None,
        })
    }

    /// Membership events change who receives a conversation's events.
    pub fn is_membership(self) -> bool {
        matches!(self, Kind::Joined | Kind::Left)
    }
}

/// An event to append.
#[derive(Clone, Copy, Debug)]
pub struct NewEvent {
    pub conversation_id: i64,
    pub user_id: Option<i64>,
    pub kind: Kind,
    pub subject_id: Option<i64>,
}

impl NewEvent {
    pub fn new(kind: Kind, conversation_id: i64) -> NewEvent {
        NewEvent { conversation_id, user_id: None, kind, subject_id: None }
    }

    pub fn subject(mut self, id: i64) -> NewEvent {
        self.subject_id = Some(id);
        self
    }

    pub fn user(mut self, id: i64) -> NewEvent {
        self.user_id = Some(id);
        self
    }
}

/// A stored event.
#[derive(Clone, Copy, Debug)]
pub struct Event {
    pub id: i64,
    pub conversation_id: i64,
    pub user_id: Option<i64>,
    pub kind: Kind,
    pub subject_id: Option<i64>,
}

type Row = (i64, i64, Option<i64>, String, Option<i64>);

fn from_rows(rows: Vec<Row>) -> Vec<Event> {
    rows.into_iter()
        .filter_map(|(id, conversation_id, user_id, kind, subject_id)| {
            Some(Event { id, conversation_id, user_id, kind: Kind::parse(&kind)?, subject_id })
        })
        .collect()
}

/// Appends events inside the caller's transaction, so they commit (or not) with the
/// change they describe.
pub trait AppendEvents {
    fn append_events<'a>(&'a mut self, events: &'a [NewEvent]) -> BoxFuture<'a, Result<(), sqlx::Error>>;
}

/// Most events one statement carries (5 binds each).
const ROWS_PER_STATEMENT: usize = 1_000;

impl AppendEvents for SqliteConnection {
    fn append_events<'a>(&'a mut self, events: &'a [NewEvent]) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        Box::pin(async move {
            let now = now_ms();
            for chunk in events.chunks(ROWS_PER_STATEMENT) {
                let mut insert =
                    sqlx::QueryBuilder::new("INSERT INTO events (conversation_id, user_id, kind, subject_id, created_at) ");
                insert.push_values(chunk, |mut row, event| {
                    row.push_bind(event.conversation_id)
                        .push_bind(event.user_id)
                        .push_bind(event.kind.as_str())
                        .push_bind(event.subject_id)
                        .push_bind(now);
                });
                insert.build().persistent(false).execute(&mut *self).await?;
            }
            Ok(())
        })
    }
}

impl AppendEvents for PgConnection {
    fn append_events<'a>(&'a mut self, events: &'a [NewEvent]) -> BoxFuture<'a, Result<(), sqlx::Error>> {
        Box::pin(async move {
            if events.is_empty() {
                return Ok(());
            }
            let now = now_ms();
            // The row lock taken here is held until commit: a second writer waits for
            // it, so ids are handed out in the order transactions commit.
            let last: i64 = sqlx::query_scalar("UPDATE event_counter SET last_id = last_id + $1 RETURNING last_id")
                .bind(events.len() as i64)
                .fetch_one(&mut *self)
                .await?;
            let first = last - events.len() as i64 + 1;
            for (chunk_index, chunk) in events.chunks(ROWS_PER_STATEMENT).enumerate() {
                let base = first + (chunk_index * ROWS_PER_STATEMENT) as i64;
                let mut insert =
                    sqlx::QueryBuilder::new("INSERT INTO events (id, conversation_id, user_id, kind, subject_id, created_at) ");
                insert.push_values(chunk.iter().enumerate(), |mut row, (index, event)| {
                    row.push_bind(base + index as i64)
                        .push_bind(event.conversation_id)
                        .push_bind(event.user_id)
                        .push_bind(event.kind.as_str())
                        .push_bind(event.subject_id)
                        .push_bind(now);
                });
                insert.build().persistent(false).execute(&mut *self).await?;
            }
            Ok(())
        })
    }
}

/// Appends events in a transaction of their own and signals the commit.
pub async fn append(store: &Store, events: &[NewEvent]) -> Result<(), sqlx::Error> {
    with_db!(store, pool => {
        let mut tx = pool.begin_write().await?;
        (*tx).append_events(events).await?;
        tx.commit().await?;
    });
    store.signal_commit();
    Ok(())
}

/// Events after `after`, oldest first, at most `limit`.
pub async fn after(store: &Store, after: i64, limit: i64) -> Result<Vec<Event>, sqlx::Error> {
    let sql = "SELECT id, conversation_id, user_id, kind, subject_id FROM events WHERE id > $1 ORDER BY id LIMIT $2";
    let rows: Vec<Row> = store.rows(sql, &[super::Arg::Int(after), super::Arg::Int(limit)]).await?;
    Ok(from_rows(rows))
}

/// The events in `(after, upto]` a user may see: those of conversations they are in
/// now, and of the others only their own removal — replay renders current state, so
/// anything more would tell a removed member what happened after they left.
pub async fn for_user(store: &Store, user_id: i64, after: i64, upto: i64, limit: i64) -> Result<Vec<Event>, sqlx::Error> {
    let sql = "SELECT e.id, e.conversation_id, e.user_id, e.kind, e.subject_id FROM events e
               WHERE e.id > $1 AND e.id <= $2
                 AND (e.conversation_id IN (SELECT conversation_id FROM members WHERE user_id = $3)
                      OR (e.user_id = $3 AND e.kind = 'left'))
               ORDER BY e.id LIMIT $4";
    use super::Arg::Int;
    let rows: Vec<Row> = store.rows(sql, &[Int(after), Int(upto), Int(user_id), Int(limit)]).await?;
    Ok(from_rows(rows))
}

/// The newest event id (0 before the first event): the cursor a page is rendered at.
pub async fn newest(store: &Store) -> Result<i64, sqlx::Error> {
    store.scalar("SELECT COALESCE(MAX(id), 0) FROM events", &[]).await
}

/// The oldest id still kept; a cursor before `oldest - 1` has lost events to pruning.
pub async fn oldest(store: &Store) -> Result<Option<i64>, sqlx::Error> {
    let sql = "SELECT MIN(id) FROM events";
    with_db!(store, pool => sqlx::query_scalar(sql).fetch_one(pool).await)
}

/// A user's conversations together with the newest event id, read in one statement so
/// both come from the same snapshot.
pub async fn memberships_at(store: &Store, user_id: i64) -> Result<(i64, Vec<i64>), sqlx::Error> {
    let sql = "SELECT (SELECT COALESCE(MAX(id), 0) FROM events) AS newest, m.conversation_id
               FROM (SELECT 1 AS one) AS anchor LEFT JOIN members m ON m.user_id = $1";
    let rows: Vec<(i64, Option<i64>)> = with_db!(store, pool => sqlx::query_as(sql).bind(user_id).fetch_all(pool).await?);
    let newest = rows.first().map(|r| r.0).unwrap_or(0);
    Ok((newest, rows.into_iter().filter_map(|r| r.1).collect()))
}

/// Forgets events older than `keep_ms`, always keeping the newest `keep_at_least`.
pub async fn prune(store: &Store, keep_ms: i64, keep_at_least: i64) -> Result<u64, sqlx::Error> {
    let cutoff = now_ms() - keep_ms;
    let sql = "DELETE FROM events WHERE created_at < $1 AND id <= (SELECT COALESCE(MAX(id), 0) FROM events) - $2";
    with_db!(store, pool => sqlx::query(sql).bind(cutoff).bind(keep_at_least).execute(pool).await.map(|r| r.rows_affected()))
}
