//! Many people writing at the same moment: no request may fail because another one
//! was writing, and every write that was acknowledged is there afterwards.

use axum::http::StatusCode;

use crate::conversations::{conversation_id, send};
use crate::support::{Backend, Client, Resp, TestApp};

/// People writing at once.
const WRITERS: usize = 16;
const ROUNDS: usize = 6;
/// Bursts each person runs at once (several tabs): more writers meeting each other.
const TABS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_people_writing_at_once_never_see_an_error_on_sqlite() {
    if let Some(app) = TestApp::spawn_with(Backend::Sqlite, crate::support::FLOW_ARGS).await {
        sixteen_people_writing_at_once_never_see_an_error(app).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_people_writing_at_once_never_see_an_error_on_postgres() {
    if let Some(app) = TestApp::spawn_with(Backend::Postgres, crate::support::FLOW_ARGS).await {
        sixteen_people_writing_at_once_never_see_an_error(app).await;
    }
}

fn name(n: usize) -> String {
    format!("w{}", n % WRITERS)
}

/// What one writer was told had been done, to look for afterwards.
#[derive(Default)]
struct Acknowledged {
    /// (group, its final name, the member added, the member removed)
    groups: Vec<(i64, String, String, String)>,
    /// (conversation, message, the text it must show)
    messages: Vec<(i64, i64, String)>,
    pins: Vec<(i64, i64)>,
    reactions: Vec<(i64, i64)>,
    failures: Vec<String>,
}

impl Acknowledged {
    fn check(&mut self, what: &str, response: &Resp, expected: StatusCode) -> bool {
        if response.status == expected {
            return true;
        }
        let body: String = response.body.chars().take(300).collect();
        self.failures.push(format!("{what}: {} (expected {expected}): {body}", response.status));
        false
    }
}

async fn user_id(app: &TestApp, username: &str) -> i64 {
    reale::conversations::store::user_by_username(&app.state.store, username).await.expect("query").expect("user").id
}

/// One person's burst: a new group, renamed, one member added and one removed, messages
/// there, in a group everyone shares and in a DM, an edit, a reaction, a pin, reading.
async fn burst(mut me: Client, k: usize, tab: usize, shared: i64, ids: Vec<i64>) -> Acknowledged {
    let mut ack = Acknowledged::default();
    for round in 0..ROUNDS {
        let (a, b, c) = (name(k + 1), name(k + 2), name(k + 3));
        let created = me.post("/groups", &[("name", &format!("g{k}.{tab}-{round}")), ("members", &format!("{a}, {b}"))]).await;
        if !ack.check("create group", &created, StatusCode::SEE_OTHER) {
            continue;
        }
        let group = conversation_id(&created);
        let renamed = format!("g{k}.{tab}-{round} renamed");
        let response = me.post(&format!("/c/{group}/rename"), &[("name", &renamed)]).await;
        ack.check("rename", &response, StatusCode::SEE_OTHER);
        let response = me.post(&format!("/c/{group}/members"), &[("username", &c)]).await;
        ack.check("add member", &response, StatusCode::SEE_OTHER);
        let response = me.post(&format!("/c/{group}/members/{}/remove", ids[(k + 1) % WRITERS]), &[]).await;
        ack.check("remove member", &response, StatusCode::SEE_OTHER);
        ack.groups.push((group, renamed, c.clone(), a.clone()));

        for (conversation, text) in [(group, format!("in group {k}.{tab} {round}")), (shared, format!("shared {k}.{tab} {round}"))] {
            let client_id = format!("c{k}.{tab}-{round}-{conversation}");
            let response =
                me.post(&format!("/c/{conversation}/messages"), &[("body", &text), ("client_id", &client_id)]).await;
            if !ack.check("send", &response, StatusCode::SEE_OTHER) {
                continue;
            }
            let id: i64 = response.location().and_then(|l| l.rsplit("#message-").next()).and_then(|i| i.parse().ok()).expect("message id");
            ack.messages.push((conversation, id, text));
        }
        let Some(&(_, mine, _)) = ack.messages.last() else { continue };
        let edited = format!("shared {k}.{tab} {round} edited");
        let response = me.post(&format!("/c/{shared}/m/{mine}/edit"), &[("body", &edited)]).await;
        if ack.check("edit", &response, StatusCode::SEE_OTHER) {
            ack.messages.last_mut().expect("the message just sent").2 = edited;
        }
        let response = me.post(&format!("/c/{shared}/m/{mine}/react"), &[("emoji", "👍")]).await;
        if ack.check("react", &response, StatusCode::SEE_OTHER) {
            ack.reactions.push((shared, mine));
        }
        let in_group = ack.messages[ack.messages.len() - 2].1;
        let response = me.post(&format!("/c/{group}/m/{in_group}/pin"), &[]).await;
        if ack.check("pin", &response, StatusCode::SEE_OTHER) {
            ack.pins.push((group, in_group));
        }
        let response = me.post(&format!("/c/{shared}/read"), &[("up_to", &mine.to_string())]).await;
        ack.check("read", &response, StatusCode::NO_CONTENT);
        let dm = me.post(&format!("/u/{a}/message"), &[]).await;
        if ack.check("open DM", &dm, StatusCode::SEE_OTHER) {
            let dm = conversation_id(&dm);
            let text = format!("dm {k}.{tab} {round}");
            let response =
                me.post(&format!("/c/{dm}/messages"), &[("body", &text), ("client_id", &format!("d{k}.{tab}-{round}"))]).await;
            if ack.check("send in DM", &response, StatusCode::SEE_OTHER) {
                let id = response.location().and_then(|l| l.rsplit("#message-").next()).and_then(|i| i.parse().ok()).expect("id");
                ack.messages.push((dm, id, text));
            }
        }
    }
    ack
}

async fn sixteen_people_writing_at_once_never_see_an_error(app: TestApp) {
    let mut people = Vec::new();
    for n in 0..WRITERS {
        let mut client = app.client();
        client.register(&name(n)).await;
        people.push(client);
    }
    let mut ids = Vec::new();
    for n in 0..WRITERS {
        ids.push(user_id(&app, &name(n)).await);
    }
    let everyone: Vec<String> = (1..WRITERS).map(name).collect();
    let shared = conversation_id(&people[0].post("/groups", &[("name", "Everyone"), ("members", &everyone.join(", "))]).await);
    send(&mut people[0], shared, "welcome").await;

    let mut tasks = Vec::new();
    for (k, client) in people.iter().enumerate() {
        for tab in 0..TABS {
            tasks.push(tokio::spawn(burst(client.clone(), k, tab, shared, ids.clone())));
        }
    }
    let mut acks: Vec<Acknowledged> = (0..WRITERS).map(|_| Acknowledged::default()).collect();
    for (n, task) in tasks.into_iter().enumerate() {
        let ack = task.await.expect("a writer panicked");
        let mine = &mut acks[n / TABS];
        mine.failures.extend(ack.failures);
        mine.groups.extend(ack.groups);
        mine.messages.extend(ack.messages);
        mine.pins.extend(ack.pins);
        mine.reactions.extend(ack.reactions);
    }
    let failures: Vec<String> = acks.iter().flat_map(|a| a.failures.clone()).collect();
    assert!(failures.is_empty(), "{} requests failed under contention:\n{}", failures.len(), failures.join("\n"));

    // Everything acknowledged is there, as the person who did it sees it.
    let mut missing = Vec::new();
    for (me, ack) in people.iter_mut().zip(&acks) {
        assert_eq!(ack.groups.len(), ROUNDS * TABS);
        assert_eq!(ack.messages.len(), ROUNDS * TABS * 3);
        for (group, renamed, added, removed) in &ack.groups {
            let page = me.get(&format!("/c/{group}/members")).await;
            if !page.body.contains(renamed.as_str()) {
                missing.push(format!("group {group} is not called {renamed}"));
            }
            if !page.body.contains(&format!("@{added}<")) || page.body.contains(&format!("@{removed}<")) {
                missing.push(format!("group {group}: {added} should be in and {removed} out"));
            }
        }
        for (conversation, message, text) in &ack.messages {
            let page = me.get(&format!("/c/{conversation}/m/{message}/view")).await;
            if page.status != StatusCode::OK || !page.body.contains(&format!("id=\"message-{message}\"")) || !page.body.contains(text.as_str()) {
                missing.push(format!("message {message} in {conversation} does not say {text:?} ({})", page.status));
            }
        }
        for (conversation, message) in &ack.reactions {
            let page = me.get(&format!("/c/{conversation}/m/{message}/view")).await;
            if !page.body.contains("👍 1") {
                missing.push(format!("message {message} lost its reaction"));
            }
        }
        for (conversation, message) in &ack.pins {
            let pins = me.get(&format!("/c/{conversation}/pins")).await;
            if !pins.body.contains(&format!("id=\"message-{message}\"")) {
                missing.push(format!("pin of {message} in {conversation} lost"));
            }
        }
    }
    assert!(missing.is_empty(), "acknowledged writes missing:\n{}", missing.join("\n"));
}
