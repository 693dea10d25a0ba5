//! Sending Web Pushes. The message send path only queues a `Sent` (never waits on it);
//! a background task decides who gets a push and hands each delivery to a bounded pool
//! of senders, which encrypt the payload for the subscription (RFC 8291 aes128gcm,
//! web-push-native), sign it (VAPID) and POST it with retries.
//!
//! A call that starts rings as a push too (`call_started`): for every other member
//! whose level is not "nothing" and who has not muted the conversation, as a mention
//! would.
//!
//! Who gets one for a message: the other member of a DM; whoever the message mentions (by name, or
//! through @everyone/@here/a role, as the writer already resolved); the author of the
//! message replied to. Never the sender, never someone who is not a member (channel
//! membership is exactly who may see it, `servers::visibility`), never someone who
//! blocked the sender, never someone whose
//! level or mute excludes it, never someone with the conversation open in a visible
//! tab (`push_focus`, kept fresh by the page).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use tokio::sync::{Semaphore, mpsc};
use web_push_native::WebPushBuilder;

use crate::notifications::level::{Setting, effective};
use crate::store::{Arg, Store, now_ms};
use crate::with_db;

use super::endpoint;
use super::store::{self, Subscription};
use super::vapid::Vapid;

/// A message that was just written.
#[derive(Clone, Debug)]
pub struct Sent {
    pub conversation_id: i64,
    pub message_id: i64,
    pub author_id: i64,
    /// Users the message mentions (group mentions already expanded).
    pub mentions: Vec<i64>,
    pub reply_to_id: Option<i64>,
    /// The markdown source; the push carries a short plain excerpt of it.
    pub body: String,
}

/// A call that just started in a DM or group.
#[derive(Clone, Debug)]
pub struct Ring {
    pub conversation_id: i64,
    pub caller_id: i64,
    pub video: bool,
}

/// What the background task works out pushes for.
enum Job {
    Message(Sent),
    Call(Ring),
}

/// How many pushes may be in flight at once: enough to keep a slow push service from
/// holding everything up, few enough not to open thousands of connections.
const CONCURRENCY: usize = 64;
/// Waits before the second and third tries (a push service's 429/5xx or a network error).
const BACKOFF: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(4)];
/// How long a push service should keep an undelivered push (a phone off for the night).
const TTL: Duration = Duration::from_secs(24 * 3600);
/// Messages waiting to be looked at; when full (a flood), pushes are dropped, not sends.
const QUEUE: usize = 10_000;
/// The excerpt in a notification, in characters.
const BODY_CHARS: usize = 120;

#[derive(Clone)]
pub struct Pusher {
    queue: mpsc::Sender<Job>,
    pub vapid: Arc<Vapid>,
}

struct Shared {
    store: Store,
    vapid: Arc<Vapid>,
    client: reqwest::Client,
    permits: Arc<Semaphore>,
    allow_loopback: bool,
}

impl Pusher {
    /// Starts the background task. `allow_loopback` admits `http://127.0.0.1:PORT`.
    pub fn start(store: Store, vapid: Vapid, allow_loopback: bool) -> Result<Pusher, reqwest::Error> {
        // reqwest is built without a TLS provider of its own (see files::storage).
        #[allow(deprecated)]
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(endpoint::PublicOnly))
            // A redirect could point anywhere; push services do not redirect.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .pool_max_idle_per_host(CONCURRENCY)
            .build()?;
        let vapid = Arc::new(vapid);
        let shared = Arc::new(Shared { store, vapid: vapid.clone(), client, permits: Arc::new(Semaphore::new(CONCURRENCY)), allow_loopback });
        let sweeper = shared.store.clone();
        tokio::spawn(async move {
            // Expired focus records are ignored anyway; this only keeps the table small.
            let mut every = tokio::time::interval(Duration::from_secs(600));
            loop {
                every.tick().await;
                if let Err(error) = store::sweep_focus(&sweeper).await {
                    tracing::warn!(%error, "could not sweep push focus records");
                }
            }
        });
        let (queue, mut jobs) = mpsc::channel::<Job>(QUEUE);
        tokio::spawn(async move {
            while let Some(job) = jobs.recv().await {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let worked = match job {
                        Job::Message(sent) => fan_out(&shared, sent).await,
                        Job::Call(ring) => ring_out(&shared, ring).await,
                    };
                    if let Err(error) = worked {
                        tracing::warn!(%error, "could not work out who to push to");
                    }
                });
            }
        });
        Ok(Pusher { queue, vapid })
    }

    /// Queues pushes for a message just written; returns at once.
    pub fn message_sent(&self, sent: Sent) {
        if let Err(error) = self.queue.try_send(Job::Message(sent)) {
            tracing::warn!(%error, "push queue full: a message's pushes were dropped");
        }
    }

    /// Queues pushes for a call that just started ringing; returns at once.
    pub fn call_started(&self, ring: Ring) {
        if let Err(error) = self.queue.try_send(Job::Call(ring)) {
            tracing::warn!(%error, "push queue full: a call's pushes were dropped");
        }
    }
}

/// What the service worker shows: `showNotification(title, {body, data: {url}})`.
#[derive(serde::Serialize)]
struct Payload {
    title: String,
    body: String,
    url: String,
}

/// The conversation's kind, name and server, and the author's name as shown.
type About = (String, String, Option<i64>, String);

async fn about(store: &Store, conversation_id: i64, author_id: i64) -> Result<Option<About>, sqlx::Error> {
    let sql = concat!("SELECT c.kind, c.name, c.server_id, ", crate::shown_name_sql!("u"), " FROM conversations c, users u WHERE c.id = $1 AND u.id = $2");
    // Every message sent asks this: a direct read on SQLite (`Store::row`).
    store.row(sql, &[Arg::Int(conversation_id), Arg::Int(author_id)]).await
}

/// A call rings for every other member it may reach: treated as a mention of each, so
/// "all" and "mentions" levels get it, "nothing" and a mute do not.
async fn ring_out(shared: &Shared, ring: Ring) -> Result<(), sqlx::Error> {
    let store = &shared.store;
    let Some((kind, name, server_id, caller)) = about(store, ring.conversation_id, ring.caller_id).await? else { return Ok(()) };
    let sql = "SELECT user_id FROM members WHERE conversation_id = $1 AND user_id <> $2";
    let others: Vec<i64> = with_db!(store, pool => sqlx::query_scalar(sql).bind(ring.conversation_id).bind(ring.caller_id).fetch_all(pool).await)?;
    let everyone: HashSet<i64> = others.into_iter().collect();
    let direct = kind == "dm";
    let as_sent = Sent { conversation_id: ring.conversation_id, message_id: 0, author_id: ring.caller_id, mentions: Vec::new(), reply_to_id: None, body: String::new() };
    let recipients = recipients(store, &as_sent, server_id, direct, &everyone).await?;
    let title = if direct { caller } else { format!("{caller} in {name}") };
    let body = if ring.video { "Incoming video call" } else { "Incoming voice call" }.to_string();
    push_to(shared, &recipients, Payload { title, body, url: format!("/c/{}/call", ring.conversation_id) }).await
}

async fn fan_out(shared: &Shared, sent: Sent) -> Result<(), sqlx::Error> {
    let store = &shared.store;
    let Some((kind, name, server_id, author)) = about(store, sent.conversation_id, sent.author_id).await? else { return Ok(()) };
    let direct = kind == "dm";
    let replied_to = match sent.reply_to_id {
        Some(id) => {
            let sql = "SELECT author_id FROM messages WHERE id = $1 AND conversation_id = $2 AND deleted_at IS NULL";
            store.row::<(i64,)>(sql, &[Arg::Int(id), Arg::Int(sent.conversation_id)]).await?.map(|(author,)| author)
        }
        None => None,
    };
    let mut personal: HashSet<i64> = sent.mentions.iter().copied().collect();
    personal.extend(replied_to);
    personal.remove(&sent.author_id);
    if !direct && personal.is_empty() {
        return Ok(());
    }
    let recipients = recipients(store, &sent, server_id, direct, &personal).await?;
    if recipients.is_empty() {
        return Ok(());
    }
    let title = match (direct, server_id) {
        (true, _) => author,
        (false, Some(_)) => format!("{author} in #{name}"),
        (false, None) => format!("{author} in {name}"),
    };
    let mut body = crate::conversations::markdown::excerpt(&sent.body, BODY_CHARS);
    if body.is_empty() {
        body = "Sent files".into();
    }
    let url = format!("/c/{}/m/{}", sent.conversation_id, sent.message_id);
    push_to(shared, &recipients, Payload { title, body, url }).await
}

/// Sends `payload` to every subscription of `recipients`.
async fn push_to(shared: &Shared, recipients: &[i64], payload: Payload) -> Result<(), sqlx::Error> {
    let store = &shared.store;
    if recipients.is_empty() {
        return Ok(());
    }
    let subscriptions = store::for_users(store, recipients).await?;
    if subscriptions.is_empty() {
        return Ok(());
    }
    let payload = serde_json::to_vec(&payload).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    let payload: Arc<[u8]> = payload.into();
    for subscription in subscriptions {
        let permit = match shared.permits.clone().acquire_owned().await {
            Ok(permit) => permit,
            Err(_) => return Ok(()),
        };
        let (store, vapid, client, payload) = (store.clone(), shared.vapid.clone(), shared.client.clone(), payload.clone());
        let allow_loopback = shared.allow_loopback;
        tokio::spawn(async move {
            deliver(&store, &vapid, &client, allow_loopback, &subscription, &payload).await;
            drop(permit);
        });
    }
    Ok(())
}

/// Members of the conversation (other than the author) who want this message pushed
/// and are not looking at it: in a DM everyone, elsewhere only `personal` (mentioned or
/// replied to) are asked about.
async fn recipients(store: &Store, sent: &Sent, server_id: Option<i64>, direct: bool, personal: &HashSet<i64>) -> Result<Vec<i64>, sqlx::Error> {
    let now = now_ms();
    let head = "SELECT m.user_id, ns.level, ns.muted_until, ss.level, ss.muted_until,
                   (SELECT f.expires_at FROM push_focus f WHERE f.user_id = m.user_id AND f.conversation_id = m.conversation_id) AS focus
               FROM members m
               LEFT JOIN notification_settings ns ON ns.user_id = m.user_id AND ns.conversation_id = m.conversation_id
               LEFT JOIN server_notification_settings ss ON ss.user_id = m.user_id AND ss.server_id = ";
    type Row = (i64, Option<String>, Option<i64>, Option<String>, Option<i64>, Option<i64>);
    let candidates: Vec<i64> = if direct { Vec::new() } else { personal.iter().copied().collect() };
    let mut rows: Vec<Row> = Vec::new();
    // A DM has two members; elsewhere only the named candidates, in chunks.
    let chunks: Vec<&[i64]> = if direct { vec![&[]] } else { candidates.chunks(500).collect() };
    for chunk in chunks {
        let found: Vec<Row> = with_db!(store, pool => {
            let mut query = sqlx::QueryBuilder::new(head);
            query.push_bind(server_id.unwrap_or(0));
            query.push(" WHERE m.conversation_id = ").push_bind(sent.conversation_id);
            query.push(" AND m.user_id <> ").push_bind(sent.author_id);
            // Someone who blocked the author hears nothing from them, mention or not.
            query.push(" AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = m.user_id AND b.blocked_id = ").push_bind(sent.author_id).push(")");
            if !chunk.is_empty() {
                query.push(" AND m.user_id IN (");
                let mut list = query.separated(", ");
                for user in chunk {
                    list.push_bind(*user);
                }
                query.push(")");
            }
            query.build_query_as().persistent(false).fetch_all(pool).await
        })?;
        rows.extend(found);
    }
    Ok(rows
        .into_iter()
        .filter(|(user, own_level, own_until, server_level, server_until, focus)| {
            let own = Setting::from_row(own_level.as_deref(), *own_until);
            let server = server_id.map(|_| Setting::from_row(server_level.as_deref(), *server_until));
            let looking = focus.is_some_and(|until| until > now);
            !looking && effective(own, server, now).wants(direct, personal.contains(user))
        })
        .map(|row| row.0)
        .collect())
}

/// Encrypts and sends one push, retrying what may pass on a later try; a subscription
/// the push service no longer knows (404, 410) is deleted.
async fn deliver(store: &Store, vapid: &Vapid, client: &reqwest::Client, allow_loopback: bool, subscription: &Subscription, payload: &[u8]) {
    let request = match build(vapid, allow_loopback, subscription, payload) {
        Ok(request) => request,
        Err(why) => {
            tracing::warn!(subscription = subscription.id, %why, "push subscription unusable; removed");
            let _ = store::forget(store, subscription.id).await;
            return;
        }
    };
    for attempt in 0..=BACKOFF.len() {
        let mut post = client.post(request.url.clone()).body(request.body.clone()).header("Authorization", &request.authorization);
        for (name, value) in &request.headers {
            post = post.header(name, value);
        }
        let outcome = post.send().await;
        let retry = match outcome {
            Ok(response) if response.status().is_success() => return,
            Ok(response) if matches!(response.status(), StatusCode::NOT_FOUND | StatusCode::GONE) => {
                tracing::info!(subscription = subscription.id, status = %response.status(), "push subscription expired; removed");
                if let Err(error) = store::forget(store, subscription.id).await {
                    tracing::warn!(%error, "could not remove an expired push subscription");
                }
                return;
            }
            Ok(response) => {
                let status = response.status();
                let again = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
                tracing::warn!(subscription = subscription.id, %status, attempt, "push refused");
                again
            }
            Err(error) => {
                tracing::warn!(subscription = subscription.id, %error, attempt, "push failed");
                true
            }
        };
        match BACKOFF.get(attempt) {
            Some(wait) if retry => tokio::time::sleep(*wait).await,
            _ => return,
        }
    }
}

/// One push, ready to send as often as needed (the same ciphertext on every try).
struct Built {
    url: reqwest::Url,
    headers: Vec<(String, String)>,
    authorization: String,
    body: bytes::Bytes,
}

fn build(vapid: &Vapid, allow_loopback: bool, subscription: &Subscription, payload: &[u8]) -> Result<Built, String> {
    // Checked again at send time: the rules (or the loopback flag) may have changed.
    let url = endpoint::parse(&subscription.endpoint, allow_loopback).map_err(str::to_string)?;
    let keys = super::keys::parse(&subscription.p256dh, &subscription.auth)?;
    let uri: http::Uri = url.as_str().parse().map_err(|e: http::uri::InvalidUri| e.to_string())?;
    let request = WebPushBuilder::new(uri, keys.0, keys.1).with_valid_duration(TTL).build(payload.to_vec()).map_err(|e| e.to_string())?;
    let headers = request
        .headers()
        .iter()
        // reqwest sets the length from the body.
        .filter(|(name, _)| *name != http::header::CONTENT_LENGTH)
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_string())))
        .chain([("Urgency".to_string(), "high".to_string())])
        .collect();
    let authorization = vapid.authorization(&endpoint::origin(&url))?;
    Ok(Built { url, headers, authorization, body: bytes::Bytes::from(request.into_body()) })
}
