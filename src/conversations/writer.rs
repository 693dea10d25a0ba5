//! Group commit for messages: one task per process takes every pending send, writes
//! the batch in a single transaction, and only then answers each sender. Durable
//! before acknowledged, and one fsync shared by many sends instead of one each.

use std::collections::HashMap;

use tokio::sync::{mpsc, oneshot};

use crate::error::{AppError, AppResult};
use crate::store::{Store, now_ms};
use crate::with_db;

/// A message to store; `client_id` makes a resubmission return the first message.
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub conversation_id: i64,
    pub author_id: i64,
    pub kind: &'static str,
    pub body: String,
    pub html: String,
    pub reply_to_id: Option<i64>,
    pub client_id: Option<String>,
    pub mentions: Vec<i64>,
}

/// The stored message's id, and whether this call created it.
pub type Written = (i64, bool);

struct Job {
    message: NewMessage,
    done: oneshot::Sender<Result<Written, String>>,
}

/// Most messages one transaction takes; bounds the latency a batch adds.
const MAX_BATCH: usize = 512;

#[derive(Clone)]
pub struct MessageWriter {
    jobs: mpsc::Sender<Job>,
}

impl MessageWriter {
    pub fn spawn(store: Store) -> MessageWriter {
        let (jobs, mut queue) = mpsc::channel::<Job>(16_384);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
                write_batch(&store, std::mem::take(&mut batch)).await;
            }
        });
        MessageWriter { jobs }
    }

    pub async fn write(&self, message: NewMessage) -> AppResult<Written> {
        let (done, answer) = oneshot::channel();
        self.jobs.send(Job { message, done }).await.map_err(|_| AppError::Unavailable)?;
        match answer.await {
            Ok(Ok(written)) => Ok(written),
            Ok(Err(why)) => Err(AppError::Internal(why)),
            Err(_) => Err(AppError::Unavailable),
        }
    }
}

async fn write_batch(store: &Store, jobs: Vec<Job>) {
    let messages: Vec<&NewMessage> = jobs.iter().map(|j| &j.message).collect();
    match insert_all(store, &messages).await {
        Ok(results) => {
            for (job, result) in jobs.into_iter().zip(results) {
                let _ = job.done.send(Ok(result));
            }
        }
        // One bad message (say, its conversation was just deleted) must not fail the
        // others: write them one by one and answer each with its own outcome.
        Err(_) if jobs.len() > 1 => {
            for job in jobs {
                let result = insert_all(store, &[&job.message]).await;
                let _ = job.done.send(result.map(|mut r| r.remove(0)).map_err(|e| e.to_string()));
            }
        }
        Err(error) => {
            for job in jobs {
                let _ = job.done.send(Err(error.to_string()));
            }
        }
    }
}

/// Inserts `messages` in one transaction. Conversation activity and the authors'
/// read positions are updated once per conversation, not once per message.
async fn insert_all(store: &Store, messages: &[&NewMessage]) -> Result<Vec<Written>, sqlx::Error> {
    let now = now_ms();
    with_db!(store, pool => {
        let mut tx = pool.begin().await?;
        let mut results = Vec::with_capacity(messages.len());
        let mut latest: HashMap<i64, i64> = HashMap::new();
        let mut read: HashMap<(i64, i64), i64> = HashMap::new();
        for new in messages {
            let inserted: Option<i64> = sqlx::query_scalar(
                "INSERT INTO messages (conversation_id, author_id, kind, body, html, reply_to_id, client_id, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (author_id, client_id) DO NOTHING RETURNING id",
            )
            .bind(new.conversation_id)
            .bind(new.author_id)
            .bind(new.kind)
            .bind(&new.body)
            .bind(&new.html)
            .bind(new.reply_to_id)
            .bind(&new.client_id)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(id) = inserted else {
                let existing: i64 = sqlx::query_scalar("SELECT id FROM messages WHERE author_id = $1 AND client_id = $2")
                    .bind(new.author_id)
                    .bind(&new.client_id)
                    .fetch_one(&mut *tx)
                    .await?;
                results.push((existing, false));
                continue;
            };
            for user_id in &new.mentions {
                sqlx::query("INSERT INTO mentions (message_id, user_id, conversation_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                    .bind(id)
                    .bind(user_id)
                    .bind(new.conversation_id)
                    .execute(&mut *tx)
                    .await?;
            }
            latest.insert(new.conversation_id, id);
            read.insert((new.conversation_id, new.author_id), id);
            results.push((id, true));
        }
        for (conversation_id, id) in latest {
            sqlx::query("UPDATE conversations SET last_message_id = $1, last_activity_at = $2 WHERE id = $3")
                .bind(id)
                .bind(now)
                .bind(conversation_id)
                .execute(&mut *tx)
                .await?;
        }
        // What you wrote yourself is read.
        for ((conversation_id, author_id), id) in read {
            sqlx::query("UPDATE members SET last_read_id = $1 WHERE conversation_id = $2 AND user_id = $3 AND last_read_id < $1")
                .bind(id)
                .bind(conversation_id)
                .bind(author_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(results)
    })
}
