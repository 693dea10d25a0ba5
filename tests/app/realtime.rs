//! Issue 5: realtime over SSE — live updates, typing, presence, receipts, resume,
//! revocation and the commit order of the event log.

use std::time::Duration;

use axum::http::StatusCode;

use crate::conversations::{open_dm, send};
use crate::support::{Client, TestApp};

const SOON: Duration = Duration::from_secs(3);

async fn alice_and_bob(app: &TestApp) -> (Client, Client, i64) {
    let mut alice = app.client();
    alice.register("alice").await;
    let mut bob = app.client();
    bob.register("bob").await;
    let dm = open_dm(&mut alice, "bob").await;
    (alice, bob, dm)
}

/// The `<article id="message-N">…</article>` element as a page shows it.
fn message_element(page: &str, id: i64) -> String {
    let start = page.find(&format!("<article id=\"message-{id}\"")).expect("message on the page");
    let end = page[start..].find("</article>").expect("end of message") + start + "</article>".len();
    page[start..end].to_string()
}

async fn bob_sees_everything_alice_does_live(app: TestApp) {
    let (mut alice, mut bob, dm) = alice_and_bob(&app).await;
    let mut stream = bob.events("/events", None).await;
    assert_eq!(stream.status, StatusCode::OK);

    // A new message: the element in the event is the page's, byte for byte.
    let id = send(&mut alice, dm, "hello **bob**").await;
    let event = stream.expect(&format!("id=\"message-{id}\""), SOON).await;
    assert_eq!(event.name, "update");
    assert!(event.id.is_some(), "logged events carry an id");
    let page = bob.get(&format!("/c/{dm}")).await.body;
    assert!(event.data.contains(&message_element(&page, id)), "event HTML is the page's partial:\n{}\n---\n{}", event.data, message_element(&page, id));
    // Opening the page marks nothing; its script then posts what Bob saw.
    let seen = bob.post(&format!("/c/{dm}/read"), &[("up_to", &id.to_string())]).await;
    assert_eq!(seen.status, StatusCode::NO_CONTENT);
    // Bob's unread badge went up on the way (a per-viewer frame).
    let mut stream2 = bob.events("/events", None).await;

    // Bob opened the page, so Alice's stream sees the receipt.
    let mut alice_stream = alice.events("/events", None).await;
    let id2 = send(&mut alice, dm, "second").await;
    let badge = stream2.expect(&format!("id=\"badges-{dm}\""), SOON).await;
    assert!(badge.data.contains("1 unread"), "{}", badge.data);
    assert!(badge.id.is_none(), "per-viewer frames do not move the cursor");
    let read = bob.post(&format!("/c/{dm}/read"), &[("up_to", &id2.to_string())]).await;
    assert_eq!(read.status, StatusCode::NO_CONTENT);
    alice_stream.expect(">Seen</p>", SOON).await;

    // Edit, reaction, pin, delete.
    let edit = alice.post(&format!("/c/{dm}/m/{id}/edit"), &[("body", "hello again")]).await;
    assert_eq!(edit.status, StatusCode::SEE_OTHER);
    let event = stream.expect("hello again", SOON).await;
    assert!(event.data.contains("(edited)"));
    alice.post(&format!("/c/{dm}/m/{id}/react"), &[("emoji", "👍")]).await;
    stream.expect("👍", SOON).await;
    alice.post(&format!("/c/{dm}/m/{id}/pin"), &[]).await;
    stream.expect("Unpin message", SOON).await;
    stream.expect("pinned a message", SOON).await;
    alice.post(&format!("/c/{dm}/m/{id2}/delete"), &[]).await;
    let event = stream.expect("Message deleted", SOON).await;
    assert!(event.data.contains(&format!("id=\"message-{id2}\"")));

    // Typing: appears, then goes at once when she sends.
    let typing = alice.post(&format!("/c/{dm}/typing"), &[]).await;
    assert_eq!(typing.status, StatusCode::NO_CONTENT);
    stream.expect("alice is typing…", SOON).await;
    send(&mut alice, dm, "done typing").await;
    let cleared = stream.expect(&format!("id=\"typing-{dm}\""), SOON).await;
    assert!(!cleared.data.contains("is typing"), "{}", cleared.data);
}

async fn typing_vanishes_by_itself_and_is_never_shown_to_the_typer(app: TestApp) {
    let (mut alice, mut bob, dm) = alice_and_bob(&app).await;
    let mut bob_stream = bob.events("/events", None).await;
    let mut alice_stream = alice.events("/events", None).await;
    alice.post(&format!("/c/{dm}/typing"), &[]).await;
    bob_stream.expect("alice is typing…", SOON).await;
    let own = alice_stream.expect(&format!("id=\"typing-{dm}\""), SOON).await;
    assert!(!own.data.contains("typing…"), "nobody reads that they are typing themselves");
    let started = std::time::Instant::now();
    let gone = bob_stream.expect(&format!("id=\"typing-{dm}\" class=\"typing muted\" aria-live=\"polite\"></p>"), Duration::from_secs(8)).await;
    assert!(gone.id.is_none());
    assert!(started.elapsed() <= Duration::from_secs(6), "vanished after {:?}", started.elapsed());
}

async fn presence_follows_streams_and_the_chosen_status(app: TestApp) {
    let (_alice, mut bob, dm) = alice_and_bob(&app).await;
    let mut alice = app.client();
    alice.login("alice", crate::support::PASSWORD).await;
    let mut bob_stream = bob.events("/events", None).await;
    let page = bob.get(&format!("/c/{dm}")).await.body;
    assert!(page.contains("data-state=\"offline\""), "alice is offline before she connects");
    let alice_stream = alice.events("/events", None).await;
    let online = bob_stream.expect("presence-", SOON).await;
    assert!(online.data.contains("data-state=\"online\""), "{}", online.data);
    let page = bob.get(&format!("/c/{dm}")).await.body;
    assert!(page.contains("title=\"Online\""));

    // Do not disturb, then invisible (which looks offline).
    alice.post("/settings/status", &[("status", "dnd")]).await;
    bob_stream.expect("data-state=\"dnd\"", SOON).await;
    alice.post("/settings/status", &[("status", "invisible")]).await;
    bob_stream.expect("data-state=\"offline\"", SOON).await;
    alice.post("/settings/status", &[("status", "online")]).await;
    bob_stream.expect("data-state=\"online\"", SOON).await;

    // Closing her only stream: offline after the grace period, with "last seen".
    drop(alice_stream);
    let offline = bob_stream.expect("Last seen", Duration::from_secs(10)).await;
    assert!(offline.data.contains("data-state=\"offline\""));
}

async fn a_reconnecting_stream_gets_every_missed_message_once_in_order(app: TestApp) {
    let (mut alice, mut bob, dm) = alice_and_bob(&app).await;
    let mut stream = bob.events("/events", None).await;
    let first = send(&mut alice, dm, "before the drop").await;
    stream.expect(&format!("message-{first}"), SOON).await;
    let cursor = stream.last_id.expect("a cursor");
    drop(stream);

    let mut sent = Vec::new();
    for n in 0..50 {
        sent.push(send(&mut alice, dm, &format!("missed {n}")).await);
    }
    // Both ways back: the browser's Last-Event-ID, and htmx-ext-sse's fresh URL.
    for (path, header) in [("/events".to_string(), Some(cursor)), (format!("/events?since={cursor}"), None)] {
        let mut stream = bob.events(&path, header).await;
        let mut seen = Vec::new();
        while seen.len() < sent.len() {
            let Some(event) = stream.next(SOON).await else { break };
            for piece in event.data.split("<article id=\"message-").skip(1) {
                seen.push(piece.split('"').next().and_then(|id| id.parse::<i64>().ok()).expect("id"));
            }
        }
        assert_eq!(seen, sent, "{path}: all 50, in order, once each");
    }
}

async fn too_far_behind_means_reload(app: TestApp) {
    let (mut alice, mut bob, dm) = alice_and_bob(&app).await;
    send(&mut alice, dm, "one").await;
    send(&mut alice, dm, "two").await;
    let newest = reale::store::log::newest(&app.state.store).await.expect("newest");
    // Everything but the newest event is past the retention window.
    reale::store::log::prune(&app.state.store, -1_000_000, 1).await.expect("prune");
    let mut stream = bob.events("/events?since=1", None).await;
    let event = stream.next(SOON).await.expect("an event");
    assert_eq!(event.name, "resync");
    // Up to date: no resync.
    let mut stream = bob.events(&format!("/events?since={newest}"), None).await;
    let third = send(&mut alice, dm, "three").await;
    let event = stream.next(SOON).await.expect("an event");
    assert_eq!(event.name, "update");
    assert!(event.data.contains(&format!("message-{third}")) || stream.expect(&format!("message-{third}"), SOON).await.name == "update");
}

async fn signing_out_ends_the_stream_within_a_second(app: TestApp) {
    let (_alice, mut bob, _dm) = alice_and_bob(&app).await;
    let mut anonymous = app.client();
    assert_eq!(anonymous.events("/events", None).await.status, StatusCode::UNAUTHORIZED);

    let mut stream = bob.events("/events", None).await;
    let mut laptop = app.client();
    laptop.login("bob", crate::support::PASSWORD).await;
    let mut laptop_stream = laptop.events("/events", None).await;
    bob.post("/logout", &[]).await;
    assert!(stream.ends_within(Duration::from_secs(1)).await, "logout closes the stream");
    let mut last = None;
    while let Some(event) = stream.next(Duration::from_millis(10)).await {
        last = Some(event.name);
    }
    assert_eq!(last.as_deref(), Some("resync"), "the page reloads to the login form");
    // As long as the positive checks wait: a wrongly closed stream would close as fast.
    assert!(!laptop_stream.ends_within(Duration::from_secs(2)).await, "other devices keep theirs");
    // Signing out everywhere else (from a third device) closes the laptop's too.
    let mut phone = app.client();
    phone.login("bob", crate::support::PASSWORD).await;
    phone.post("/settings/sessions/revoke-others", &[]).await;
    assert!(laptop_stream.ends_within(Duration::from_secs(1)).await, "revoked device's stream closes");
    assert_eq!(bob.events("/events", None).await.status, StatusCode::UNAUTHORIZED);
}

async fn a_removed_member_hears_nothing_more(app: TestApp) {
    let (mut alice, mut bob, _dm) = alice_and_bob(&app).await;
    let mut carol = app.client();
    carol.register("carol").await;
    let created = alice.post("/groups", &[("name", "Plans"), ("members", "bob carol")]).await;
    let group = crate::conversations::conversation_id(&created);
    let mut stream = bob.events("/events", None).await;
    send(&mut alice, group, "welcome").await;
    stream.expect("welcome", SOON).await;
    let bob_id = bob_user_id(&app).await;
    alice.post(&format!("/c/{group}/members/{bob_id}/remove"), &[]).await;
    let removed = stream.expect("no longer a member", SOON).await;
    assert!(removed.data.contains(&format!("data-remove=\"sidebar-{group}\"")));
    send(&mut alice, group, "secret plans").await;
    alice.post(&format!("/c/{group}/rename"), &[("name", "Secret")]).await;
    let mut carol_stream = carol.events(&format!("/events?since={}", stream.last_id.unwrap_or(0)), None).await;
    carol_stream.expect("secret plans", SOON).await;
    while let Some(event) = stream.next(Duration::from_millis(500)).await {
        assert!(!event.data.contains("secret plans") && !event.data.contains("Secret"), "leaked: {}", event.data);
    }
    // Nor on replay.
    let mut replay = bob.events("/events?since=1", None).await;
    while let Some(event) = replay.next(Duration::from_millis(500)).await {
        assert!(!event.data.contains("secret plans"), "leaked on replay: {}", event.data);
    }
    // Added back: the group appears in his sidebar live.
    let mut stream = bob.events("/events", None).await;
    alice.post(&format!("/c/{group}/members"), &[("username", "bob")]).await;
    let added = stream.expect(&format!("id=\"sidebar-{group}\""), SOON).await;
    assert!(added.data.contains("Secret"));
}

async fn nothing_after_removal_reaches_the_removed_member_live_or_replayed(app: TestApp) {
    after_leaving_nothing_more(app, false).await;
}

async fn nothing_after_leaving_reaches_the_member_who_left_live_or_replayed(app: TestApp) {
    after_leaving_nothing_more(app, true).await;
}

/// Bob stops being a member (removed by Alice, or leaving himself) while one tab is
/// live and another sits on an older cursor. Everything the group does afterwards —
/// its new name, messages, member count, receipts, an edit, a reaction — must reach
/// neither: not live, not by `?since=`, not by `Last-Event-ID`.
async fn after_leaving_nothing_more(app: TestApp, leaves_himself: bool) {
    let (mut alice, mut bob, _dm) = alice_and_bob(&app).await;
    let mut carol = app.client();
    carol.register("carol").await;
    let group = crate::conversations::conversation_id(&alice.post("/groups", &[("name", "Plans"), ("members", "bob carol")]).await);
    let mut live = bob.events("/events", None).await;
    let welcome = send(&mut alice, group, "welcome").await;
    live.expect("welcome", SOON).await;
    let cursor = live.last_id.expect("a cursor");
    // His own read, logged after the cursor: replaying it must not show who has seen
    // the group's messages since.
    bob.post(&format!("/c/{group}/read"), &[("up_to", &welcome.to_string())]).await;

    if leaves_himself {
        bob.post(&format!("/c/{group}/leave"), &[]).await.assert_redirect("/");
    } else {
        let bob_id = bob_user_id(&app).await;
        alice.post(&format!("/c/{group}/members/{bob_id}/remove"), &[]).await.assert_redirect(&format!("/c/{group}/members"));
    }
    let removed = live.expect("no longer a member", SOON).await;
    assert!(removed.data.contains(&format!("data-remove=\"sidebar-{group}\"")), "his sidebar entry goes: {}", removed.data);

    let mut dave = app.client();
    dave.register("dave").await;
    alice.post(&format!("/c/{group}/rename"), &[("name", "Secret")]).await;
    alice.post(&format!("/c/{group}/members"), &[("username", "dave")]).await;
    let secret = send(&mut alice, group, "secret plans").await;
    carol.post(&format!("/c/{group}/read"), &[("up_to", &secret.to_string())]).await;
    alice.post(&format!("/c/{group}/m/{welcome}/edit"), &[("body", "welcome, edited after")]).await;
    alice.post(&format!("/c/{group}/m/{welcome}/react"), &[("emoji", "🎉")]).await;
    // Carol sees the last of it, so it has all been dispatched.
    let mut carol_stream = carol.events(&format!("/events?since={cursor}"), None).await;
    carol_stream.expect("🎉", SOON).await;

    let forbidden = ["Secret", "secret plans", "Members (", "edited after", "🎉", "Seen", "dave"];
    let check = |what: &str, event: &crate::support::SseEvent| {
        for word in forbidden {
            assert!(!event.data.contains(word), "{what} told Bob {word:?} after he left:\n{}", event.data);
        }
    };
    check("the removal itself", &removed);
    // As long as the positive wait above, at least.
    while let Some(event) = live.next(SOON).await {
        check("the live stream", &event);
    }
    for (path, last_event_id) in [(format!("/events?since={cursor}"), None), ("/events".to_string(), Some(cursor))] {
        let mut replay = bob.events(&path, last_event_id).await;
        let mut told = false;
        while let Some(event) = replay.next(SOON).await {
            check("replay", &event);
            told |= event.data.contains("no longer a member");
        }
        assert!(told, "the replay from {cursor} tells him he is no longer a member");
    }
}

async fn bob_user_id(app: &TestApp) -> i64 {
    let store = &app.state.store;
    reale::conversations::store::user_by_username(store, "bob").await.expect("query").expect("bob").id
}

/// Acceptance 5: writers commit concurrently (messages through the group-commit
/// writer, reactions and reads in transactions of their own) while a reader follows
/// the log by cursor, as the dispatcher does. The reader must see every event, in
/// ascending order, exactly once — on Postgres that needs commit-ordered ids.
async fn a_cursor_following_reader_misses_no_event_under_concurrent_writers(app: TestApp) {
    use reale::store::log::{self, Kind, NewEvent};
    let (mut alice, _bob, dm) = alice_and_bob(&app).await;
    send(&mut alice, dm, "seed").await;
    let store = app.state.store.clone();
    let start = log::newest(&store).await.expect("newest");
    let writers = 8;
    let per_writer = 150;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut handles = Vec::new();
    for w in 0..writers {
        let (store, done) = (store.clone(), done.clone());
        handles.push(tokio::spawn(async move {
            for n in 0..per_writer {
                // Batches of different sizes, so transactions overlap unevenly.
                let batch: Vec<NewEvent> = (0..(1 + (w + n) % 3)).map(|_| NewEvent::new(Kind::Conversation, dm)).collect();
                log::append(&store, &batch).await.expect("append");
            }
            done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }));
    }
    let expected: i64 = (0..writers).flat_map(|w| (0..per_writer).map(move |n| 1 + (w + n) % 3)).sum::<usize>() as i64;
    let mut cursor = start;
    let mut seen: Vec<i64> = Vec::new();
    loop {
        let finished = done.load(std::sync::atomic::Ordering::SeqCst) == writers;
        let events = log::after(&store, cursor, 100).await.expect("read");
        for event in &events {
            seen.push(event.id);
            cursor = event.id;
        }
        if finished && events.is_empty() {
            break;
        }
    }
    for handle in handles {
        handle.await.expect("writer");
    }
    let all: Vec<i64> = log::after(&store, start, 1_000_000).await.expect("all").iter().map(|e| e.id).collect();
    assert_eq!(all.len() as i64, expected);
    assert_eq!(seen, all, "the cursor-following reader saw every committed event once, in order");
}

crate::on_both_backends!(
    bob_sees_everything_alice_does_live,
    typing_vanishes_by_itself_and_is_never_shown_to_the_typer,
    presence_follows_streams_and_the_chosen_status,
    a_reconnecting_stream_gets_every_missed_message_once_in_order,
    too_far_behind_means_reload,
    signing_out_ends_the_stream_within_a_second,
    a_removed_member_hears_nothing_more,
    nothing_after_removal_reaches_the_removed_member_live_or_replayed,
    nothing_after_leaving_reaches_the_member_who_left_live_or_replayed,
    a_cursor_following_reader_misses_no_event_under_concurrent_writers,
);
