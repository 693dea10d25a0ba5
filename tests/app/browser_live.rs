//! Live updates in a real browser (JavaScript on): Alice and Bob, each in their own
//! headless Chromium, with their DM open. Everything Alice does shows on Bob's page
//! without a reload, each within about a second (measured, printed, and held to
//! `LIVE_LIMIT` so a busy CI machine passes): her typing, her message, her edit,
//! reaction, pin and deletion, the read receipt she gets back, her presence going
//! offline and online, and the sidebar of a conversation Bob does not have open.
//! Each message shows exactly once and in order, on both pages.
//!
//! Bob's browser talks to the app through `Gate`, a TCP forwarder that can cut his
//! stream and keep it cut while Alice sends 50 messages, in two ways: refusing
//! connections (the browser's EventSource retries by itself, with `Last-Event-ID`)
//! and answering `503` (the EventSource gives up and htmx-ext-sse opens a new one
//! from the `sse-connect` URL, `/events?since=N`). The gate reads the requests that
//! pass, so the test knows which way each reconnect went. Bob's page must then show
//! all 50, in order, once each, without a reload.
//!
//! Finally axe finds nothing on the live pages (the DM after all this, and a group
//! opened at its "New messages" divider), and the browsers logged no CSP violation.
//! Runs on SQLite and on Postgres. Uses the WebDriver plumbing of `browser.rs`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::browser::{Browser, Findings, with_two_browsers, with_two_browsers_on};
use crate::support::{Backend, FLOW_ARGS, PASSWORD};

/// What we aim for: Bob sees Alice's change within a second.
const LIVE_GOAL: Duration = Duration::from_secs(1);
/// What the test holds it to, leaving room for a loaded CI machine.
const LIVE_LIMIT: Duration = Duration::from_secs(2);
/// How long to look before declaring that something never arrived (htmx-ext-sse backs
/// off up to 64 s between reconnects, and a loaded machine makes outages long).
const DEADLINE: Duration = Duration::from_secs(20);
/// A user is online for this long after their last stream closed (`presence::GRACE`).
const GRACE: Duration = Duration::from_secs(5);
/// How often the page is looked at while waiting for something live.
const TICK: Duration = Duration::from_millis(20);
/// Messages sent while Bob's stream is cut, each time.
const BURST: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_updates_in_chromium_on_sqlite() {
    with_two_browsers("live", true, FLOW_ARGS, ["alice", "bob"], run_flow).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_updates_in_chromium_on_postgres() {
    with_two_browsers_on(Backend::Postgres, "live", true, FLOW_ARGS, ["alice", "bob"], run_flow).await;
}

async fn run_flow(base: &str, alice: &Browser, bob: &Browser) {
    let mut findings = Findings::default();
    let mut times = Timings::default();
    let app: SocketAddr = base.trim_start_matches("http://").parse().expect("the app's address");
    let gate = Gate::start(app).await;
    let bob_base = format!("http://{}", gate.addr);

    // Both register; Alice opens a DM with Bob, and both look at it.
    tokio::join!(register(alice, base, "alice"), register(bob, &bob_base, "bob"));
    let dm = alice.message_through_people("bob").await;
    let alice_id = viewer_id(alice).await;
    bob.goto(&format!("{bob_base}/c/{dm}")).await;
    bob.wait_for_path(&format!("/c/{dm}"), "opening the DM").await;
    let presence = format!(".conversation-header .presence-{alice_id}");
    let state = presence_state(bob, &presence).await;
    assert_eq!(state.0, "online", "alice's page is open, so bob sees her online: {state:?}");
    // A mark that a reload would wipe: Bob's page must stay the same page to the end.
    bob.client.execute("window.__sameBobPage = true", vec![]).await.expect("mark bob's page");
    check_log(alice, "DM (alice)", &mut findings).await;
    check_log(bob, "DM (bob)", &mut findings).await;

    // Typing: "alice is typing…" while she types, gone once she sends.
    let compose = alice.field("Message").await;
    compose.click().await.expect("focus the compose field");
    let typing = format!("typing-{dm}");
    let started = Instant::now();
    compose.send_keys("Hello Bob, live").await.expect("type");
    let text = wait_js(bob, "alice is typing", started, TEXT_IS, json!([typing, "alice is typing…"])).await;
    times.record("typing indicator shows", text.1);
    let sent = Instant::now();
    alice.button("Send").await.click().await.expect("click Send");
    let (hello, took) = wait_message(bob, dm, "Hello Bob, live", sent).await;
    times.record("new message", took);
    let empty = bob.client.execute("const p = document.getElementById('no-messages'); return !p || p.hidden", vec![]).await.expect("no-messages");
    assert_eq!(empty, json!(true), "bob's \"No messages yet\" goes when the first one arrives");
    let gone = wait_js(bob, "the typing indicator gone", sent, TEXT_IS, json!([typing, ""])).await;
    times.record("typing indicator goes on send", gone.1);

    // Bob's page, visible, read it: Alice sees "Seen" under her message.
    let seen = wait_js(alice, "Seen under her message", sent, SEEN, json!([format!("seen-{dm}")])).await;
    times.record("read receipt (Seen)", seen.1);

    // Edit.
    in_message(alice, hello, "//button[normalize-space(.)='Edit message']", "Edit message").await.click().await.expect("click Edit");
    let field = alice.field("Edit message").await;
    field.clear().await.expect("clear");
    field.send_keys("Hello Bob, edited live").await.expect("type the edit");
    let saved = Instant::now();
    alice.button("Save").await.click().await.expect("click Save");
    let edited = wait_js(bob, "the edit", saved, EDITED, json!([format!("message-{hello}"), "Hello Bob, edited live"])).await;
    times.record("edit", edited.1);

    // Reaction.
    in_message(alice, hello, "//a[normalize-space(.)='Add reaction']", "Add reaction").await.click().await.expect("open Add reaction");
    let react = in_message(alice, hello, "//button[@aria-label='React with 👍']", "React with 👍").await;
    let reacted = Instant::now();
    react.click().await.expect("click React with 👍");
    let selector = format!("#message-{hello} button.reaction[aria-label^='👍 1: alice']");
    let shown = wait_js(bob, "the reaction", reacted, EXISTS, json!([selector])).await;
    times.record("reaction", shown.1);

    // Pin, with its "alice pinned a message" line.
    let pin = in_message(alice, hello, "//button[normalize-space(.)='Pin message']", "Pin message").await;
    let pinned = Instant::now();
    pin.click().await.expect("click Pin message");
    let shown = wait_js(bob, "the pin and its system line", pinned, PINNED, json!([hello, "alice pinned a message"])).await;
    times.record("pin + system line", shown.1);

    // A second message, then its deletion.
    let sent = Instant::now();
    send(alice, "Oops, not for you").await;
    let (oops, took) = wait_message(bob, dm, "Oops, not for you", sent).await;
    times.record("second message", took);
    in_message(alice, oops, "//button[normalize-space(.)='Delete message']", "Delete message").await.click().await.expect("click Delete");
    let client = &alice.client;
    alice
        .eventually("expected the delete confirmation", || async move { client.get_alert_text().await.map_err(|e| e.to_string()) })
        .await;
    let deleted = Instant::now();
    alice.client.accept_alert().await.expect("confirm the deletion");
    let shown = wait_js(bob, "the deletion", deleted, DELETED, json!([format!("message-{oops}"), "Oops"])).await;
    times.record("deletion", shown.1);

    // Bob answers; Alice sees it live, once.
    let sent = Instant::now();
    send(bob, "Hi Alice, I see you live").await;
    let (_, took) = wait_message(alice, dm, "Hi Alice, I see you live", sent).await;
    times.record("bob's reply on alice's page", took);
    let mut expected = vec!["Hello Bob, edited live".to_string(), "Message deleted".into(), "Hi Alice, I see you live".into()];
    for b in [alice, bob] {
        wait_js(b, "no request in flight", Instant::now(), IDLE, json!([])).await;
        let list = messages(b, dm).await;
        assert_once_in_order(b, &list, &expected);
    }
    check_log(alice, "DM after live changes (alice)", &mut findings).await;
    check_log(bob, "DM after live changes (bob)", &mut findings).await;

    // A group Alice creates with Bob appears in his sidebar while he sits in the DM;
    // her messages there raise its unread badge.
    alice.link("New group").await.click().await.expect("click New group");
    alice.wait_for_path("/groups/new", "following New group").await;
    alice.fill("Group name", "Live group").await;
    alice.fill("Members", "bob").await;
    let created = Instant::now();
    alice.button("Create group").await.click().await.expect("click Create group");
    let item = wait_js(bob, "the new group in the sidebar", created, SIDEBAR_ITEM, json!(["Live group"])).await;
    times.record("new group in the sidebar", item.1);
    let group = alice.wait_for_conversation("creating the group").await;
    assert_eq!(item.0, json!(format!("sidebar-{group}")), "the sidebar item is the group's");
    for n in 1..=2 {
        let sent = Instant::now();
        send(alice, &format!("Group message {n}")).await;
        let badge = wait_js(bob, &format!("an unread badge of {n}"), sent, BADGE, json!([group, n.to_string()])).await;
        times.record(&format!("sidebar unread badge → {n}"), badge.1);
    }
    let url = bob.client.current_url().await.expect("url");
    assert_eq!(url.path(), format!("/c/{dm}"), "bob never left the DM");
    alice.goto(&format!("{base}/c/{dm}")).await;
    alice.wait_for_path(&format!("/c/{dm}"), "back to the DM").await;

    // Bob's stream is cut while Alice sends 50 messages; he gets them all when it is
    // back: (a) by the browser's own retry, with Last-Event-ID …
    let took = outage(&gate, Mode::Refuse, alice, bob, dm, "Burst A").await;
    times.record("50 missed messages, from the EventSource's retry (Last-Event-ID)", took);
    expected.extend(burst("Burst A"));
    // … and (b) by htmx-ext-sse's new EventSource, from `/events?since=N`.
    let took = outage(&gate, Mode::Unavailable, alice, bob, dm, "Burst B").await;
    times.record("50 missed messages, from htmx-ext-sse's new EventSource (?since=)", took);
    expected.extend(burst("Burst B"));

    // Still live after the reconnects; both pages (neither reloaded since before the
    // bursts) show every message once, in order.
    let sent = Instant::now();
    send(alice, "After the outage").await;
    let (_, took) = wait_message(bob, dm, "After the outage", sent).await;
    times.record("message after the reconnects", took);
    wait_message(alice, dm, "After the outage", sent).await;
    expected.push("After the outage".into());
    for b in [alice, bob] {
        wait_js(b, "no request in flight", Instant::now(), IDLE, json!([])).await;
        let list = messages(b, dm).await;
        assert_once_in_order(b, &list, &expected);
    }

    // Alice leaves for a page without a stream: after the grace period Bob sees her
    // offline ("Last seen …"); she comes back and he sees her online.
    let left = Instant::now();
    alice.goto(&format!("{base}/settings/sessions")).await;
    let state = wait_js(bob, "alice offline", left, PRESENCE, json!([presence, "offline", "Last seen "])).await;
    times.record_beyond("offline after leaving (5 s grace included)", state.1, GRACE);
    let back = Instant::now();
    alice.goto(&format!("{base}/c/{dm}")).await;
    let state = wait_js(bob, "alice online", back, PRESENCE, json!([presence, "online", "Online"])).await;
    times.record("online after coming back", state.1);

    // The pages after all this: Bob's, never reloaded, still shows every message
    // once, in order (Alice's, just loaded, the newest of them); accessible; no CSP
    // violation.
    alice.wait_for_path(&format!("/c/{dm}"), "back to the DM").await;
    for b in [alice, bob] {
        let list = messages(b, dm).await;
        let shown = list.iter().filter(|m| !m.system).count();
        assert!(b.name == "alice" || shown == expected.len(), "bob's page still has all {} messages: {shown}", expected.len());
        assert_once_in_order(b, &list, &expected[expected.len() - shown..]);
        b.run_axe(&format!("live DM ({})", b.name), &mut findings).await;
        check_log(b, &format!("live DM at the end ({})", b.name), &mut findings).await;
    }
    let same = bob.client.execute("return window.__sameBobPage === true", vec![]).await.expect("bob's mark");
    assert_eq!(same, json!(true), "bob's page was never reloaded");
    let requests = gate.requests();
    eprintln!("gate: {} event-stream request(s): {requests:#?}", requests.len());
    assert!(requests.iter().any(|r| r.answer == Mode::Refuse) && requests.iter().any(|r| r.answer == Mode::Unavailable));

    // The group Bob has not read yet opens at the "New messages" divider; that page
    // too is accessible.
    bob.goto(&format!("{bob_base}/c/{group}")).await;
    bob.wait_for_path(&format!("/c/{group}"), "opening the group").await;
    bob.the_one("//*[@id='messages']/*[@id='unread']", "the New messages divider").await;
    bob.run_axe("live group with unread messages (bob)", &mut findings).await;
    check_log(bob, "live group (bob)", &mut findings).await;
    // Opening the page (a GET) marked nothing; its script posted the read once the
    // page was visible, so Alice sees Bob's receipt.
    alice.goto(&format!("{base}/c/{group}")).await;
    wait_js(alice, "Seen by bob in the group", Instant::now(), SEEN_BY, json!([format!("seen-{group}"), "bob"])).await;
    drop(gate);

    times.report();
    findings.assert_none();
}

/// The texts Alice sends while Bob's stream is cut.
fn burst(prefix: &str) -> Vec<String> {
    (1..=BURST).map(|i| format!("{prefix} {i:02}")).collect()
}

/// Cuts Bob's stream (`mode`: how the gate treats him meanwhile), has Alice send a
/// burst of messages over HTTP, waits until Bob's browser tried to reconnect in
/// vain, opens the gate, and waits until his page shows the whole burst. Checks that
/// the reconnect that got through was the kind `mode` forces. Returns how long the
/// burst took to show after that reconnect reached the gate (the wait before it is
/// the browser's retry interval: `retry: 2000` or htmx-ext-sse's back-off).
async fn outage(gate: &Gate, mode: Mode, alice: &Browser, bob: &Browser, dm: i64, prefix: &str) -> Duration {
    let closed_at = gate.close(mode);
    let started = Instant::now();
    let texts = burst(prefix);
    let result = alice.client.execute_async(SEND_BURST, vec![json!(dm), json!(texts)]).await.expect("send the burst");
    assert_eq!(result, Value::Null, "alice's burst was sent: {result}");
    eprintln!("{prefix}: {BURST} messages sent over HTTP in {} ms while bob is cut off", started.elapsed().as_millis());
    let deadline = Instant::now() + DEADLINE;
    while !gate.requests()[closed_at..].iter().any(|r| r.answer == mode) {
        assert!(Instant::now() < deadline, "bob's browser did not try to reconnect within {DEADLINE:?}: {:#?}", gate.requests());
        tokio::time::sleep(TICK).await;
    }
    // Bob's cursor: the last event he saw before the cut (nothing reached him since).
    let cursor = cursor(bob).await;
    let opened_at = gate.open();
    let opened = Instant::now();
    let (_, took) = wait_js(bob, &format!("all of {prefix}"), opened, HAS_ALL, json!([dm, texts])).await;
    let shown = opened + took;
    let requests = gate.requests();
    let back = requests[opened_at..]
        .iter()
        .find(|r| r.answer == Mode::Pass)
        .unwrap_or_else(|| panic!("no stream request passed the gate after it opened: {requests:#?}"));
    let since = back.since();
    match mode {
        Mode::Refuse => {
            assert_eq!(back.last_event_id, Some(cursor), "the browser's retry resumes with Last-Event-ID: {back:?}");
            assert!(since.is_some_and(|s| s < cursor), "… and its URL is the page's old one: {back:?}");
        }
        Mode::Unavailable => {
            assert_eq!(back.last_event_id, None, "a new EventSource has no Last-Event-ID: {back:?}");
            assert_eq!(since, Some(cursor), "… it resumes from the cursor app.js kept in sse-connect: {back:?}");
        }
        Mode::Pass => unreachable!(),
    }
    eprintln!(
        "{prefix}: the gate opened; {} ms later the browser reconnected with {back:?}; the burst showed {} ms after that",
        (back.at - opened).as_millis(),
        (shown - back.at).as_millis()
    );
    shown - back.at
}

// ---- Looking at the pages ---------------------------------------------------------

/// Each script gets `arguments` and returns something truthy once its condition holds.
const TEXT_IS: &str = r##"
    const el = document.getElementById(arguments[0]);
    return el && el.textContent.trim() === arguments[1];
"##;

/// `#seen-N` reads "Seen" and is shown (it is hidden from everyone but the author).
const SEEN: &str = r##"
    const el = document.getElementById(arguments[0]);
    return el && el.textContent.trim() === "Seen" && getComputedStyle(el).display !== "none";
"##;

const EXISTS: &str = "return document.querySelector(arguments[0]) !== null;";

const EDITED: &str = r##"
    const el = document.getElementById(arguments[0]);
    const body = el && el.querySelector(".body");
    return body && body.textContent.trim() === arguments[1] && el.querySelector(".edited") !== null;
"##;

const PINNED: &str = r##"
    const el = document.getElementById("message-" + arguments[0]);
    if (!el || !el.querySelector(".pinned-badge")) return false;
    return Array.from(document.querySelectorAll("#messages > .message.system")).some((s) => s.textContent.includes(arguments[1]));
"##;

const DELETED: &str = r##"
    const el = document.getElementById(arguments[0]);
    return el && el.querySelector(".tombstone") !== null && !document.getElementById("messages").textContent.includes(arguments[1]);
"##;

/// The id of the sidebar item titled `arguments[0]`.
const SIDEBAR_ITEM: &str = r##"
    for (const title of document.querySelectorAll("#conversation-list > li .title")) {
        if (title.textContent.trim() === arguments[0]) return title.closest("li").id;
    }
    return null;
"##;

/// Conversation `arguments[0]`'s unread badge (not the mention one) reads `arguments[1]`.
/// `#seen-N` names `arguments[1]` among the readers.
const SEEN_BY: &str = r##"
    const el = document.getElementById(arguments[0]);
    return el && el.textContent.includes("Seen by") && el.textContent.includes(arguments[1]);
"##;

const BADGE: &str = r##"
    const badge = document.querySelector(`#badges-${arguments[0]} .badge:not(.mention)`);
    return badge && badge.textContent.trim() === arguments[1];
"##;

/// The presence `arguments[0]` shows state `arguments[1]` with a label starting `arguments[2]`.
const PRESENCE: &str = r##"
    const el = document.querySelector(arguments[0]);
    return el && el.dataset.state === arguments[1] && el.textContent.trim().startsWith(arguments[2]) && el.title.startsWith(arguments[2]);
"##;

/// Conversation `arguments[0]` shows a message with each of the texts `arguments[1]`.
const HAS_ALL: &str = r##"
    const list = document.querySelector(`#messages[data-conversation-id="${arguments[0]}"]`);
    if (!list) return false;
    const shown = new Set(Array.from(list.querySelectorAll(":scope > .message .body")).map((b) => b.textContent.trim()));
    return arguments[1].every((t) => shown.has(t));
"##;

/// The newest message whose body reads `arguments[1]`, in conversation `arguments[0]`.
pub(crate) const MESSAGE_WITH: &str = r##"
    const list = document.querySelector(`#messages[data-conversation-id="${arguments[0]}"]`);
    if (!list) return null;
    const found = Array.from(list.querySelectorAll(":scope > .message")).filter((m) => {
        const body = m.querySelector(".body");
        return body && body.textContent.trim() === arguments[1];
    });
    return found.length ? Number(found[found.length - 1].id.replace("message-", "")) : null;
"##;

/// True once no htmx request is in flight.
pub(crate) const IDLE: &str = r##"
    return document.querySelectorAll(".htmx-request").length === 0;
"##;

/// `[id, is system line, text, elements with that id]` for each message, in page order.
const MESSAGES: &str = r##"
    const list = document.querySelector(`#messages[data-conversation-id="${arguments[0]}"]`);
    if (!list) return null;
    return Array.from(list.querySelectorAll(":scope > .message")).map((m) => {
        const body = m.querySelector(".body");
        return [Number(m.id.replace("message-", "")), m.classList.contains("system"),
                (body ? body.textContent : m.textContent).trim(),
                document.querySelectorAll(`[id="${m.id}"]`).length];
    });
"##;

/// Alice's page posts `arguments[1]` one after another to `/c/{arguments[0]}/messages`
/// as a plain form would (no htmx), and reports null or what went wrong.
const SEND_BURST: &str = r##"
    const [dm, texts, done] = arguments;
    (async () => {
        for (const text of texts) {
            const response = await fetch(`/c/${dm}/messages`, {
                method: "POST",
                body: new URLSearchParams({ body: text }),
                redirect: "manual",
                credentials: "same-origin",
            });
            if (response.type !== "opaqueredirect") return `${text}: ${response.status}`;
        }
        return null;
    })().then(done, (e) => done(String(e)));
"##;

/// Polls `script` in `b` every `TICK` until it returns something truthy; returns that
/// and the time since `since`. Panics after `DEADLINE`.
pub(crate) async fn wait_js(b: &Browser, what: &str, since: Instant, script: &str, args: Value) -> (Value, Duration) {
    let Value::Array(args) = args else { panic!("arguments are an array") };
    let deadline = Instant::now() + DEADLINE;
    loop {
        let value = b.client.execute(script, args.clone()).await.unwrap_or_else(|e| panic!("browser {}: {what}: {e}", b.name));
        let truthy = !matches!(&value, Value::Null | Value::Bool(false)) && value != json!("") && value != json!(0);
        if truthy {
            return (value, since.elapsed());
        }
        if Instant::now() > deadline {
            let url = b.client.current_url().await.map(|u| u.to_string()).unwrap_or_default();
            let html = b.client.execute("return document.querySelector('main')?.outerHTML", vec![]).await.unwrap_or_default();
            let html = html.as_str().unwrap_or_default();
            let tail: String = html.chars().rev().take(3000).collect::<Vec<_>>().into_iter().rev().collect();
            panic!("browser {}: {what}: not there after {DEADLINE:?} at {url}; the page ends:\n{tail}", b.name);
        }
        tokio::time::sleep(TICK).await;
    }
}

/// Waits for a message reading `text` in conversation `c`; its id and how long it took.
async fn wait_message(b: &Browser, c: i64, text: &str, since: Instant) -> (i64, Duration) {
    let (id, took) = wait_js(b, &format!("the message {text:?}"), since, MESSAGE_WITH, json!([c, text])).await;
    (id.as_i64().expect("a message id"), took)
}

pub(crate) struct Shown {
    pub(crate) id: i64,
    pub(crate) system: bool,
    pub(crate) text: String,
    pub(crate) copies: u64,
}

pub(crate) async fn messages(b: &Browser, c: i64) -> Vec<Shown> {
    let value = b.client.execute(MESSAGES, vec![json!(c)]).await.expect("list the messages");
    let rows = value.as_array().unwrap_or_else(|| panic!("browser {}: no message list: {value}", b.name));
    rows.iter()
        .map(|row| Shown {
            id: row[0].as_i64().expect("id"),
            system: row[1].as_bool().expect("system"),
            text: row[2].as_str().expect("text").to_string(),
            copies: row[3].as_u64().expect("copies"),
        })
        .collect()
}

/// Every message shows once (one element per id, ids ascending down the page), and the
/// text messages are exactly `expected`, in that order.
#[track_caller]
pub(crate) fn assert_once_in_order(b: &Browser, list: &[Shown], expected: &[String]) {
    for shown in list {
        assert_eq!(shown.copies, 1, "browser {}: message {} is on the page {} times", b.name, shown.id, shown.copies);
    }
    for pair in list.windows(2) {
        assert!(pair[0].id < pair[1].id, "browser {}: message {} shows before {}", b.name, pair[0].id, pair[1].id);
    }
    let texts: Vec<&str> = list.iter().filter(|m| !m.system).map(|m| m.text.as_str()).collect();
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    if texts != expected {
        let missing: Vec<&&str> = expected.iter().filter(|t| !texts.contains(t)).collect();
        let extra: Vec<&&str> = texts.iter().filter(|t| !expected.contains(t)).collect();
        let shown: Vec<String> = list.iter().map(|m| format!("{}{}: {:?}", m.id, if m.system { " (system)" } else { "" }, m.text)).collect();
        panic!(
            "browser {}: the messages are not each once and in order ({} shown, {} expected); missing {missing:?}, unexpected {extra:?}; shown:\n{}",
            b.name,
            texts.len(),
            expected.len(),
            shown.join("\n")
        );
    }
}

/// The cursor app.js keeps in `#live`'s `sse-connect` (`/events?since=N`).
async fn cursor(b: &Browser) -> i64 {
    let url = b.client.execute("return document.getElementById('live').getAttribute('sse-connect')", vec![]).await.expect("sse-connect");
    let url = url.as_str().unwrap_or_default();
    url.strip_prefix("/events?since=").and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("browser {}: sse-connect is {url:?}", b.name))
}

async fn presence_state(b: &Browser, selector: &str) -> (String, String) {
    let value = b
        .client
        .execute("const el = document.querySelector(arguments[0]); return el && [el.dataset.state, el.textContent.trim()];", vec![json!(selector)])
        .await
        .expect("presence");
    let pair = value.as_array().unwrap_or_else(|| panic!("browser {}: no {selector}", b.name));
    (pair[0].as_str().unwrap_or_default().to_string(), pair[1].as_str().unwrap_or_default().to_string())
}

async fn viewer_id(b: &Browser) -> i64 {
    let id = b.client.execute("return document.body.dataset.viewerId", vec![]).await.expect("viewer id");
    id.as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("browser {}: viewer id {id}", b.name))
}

async fn in_message(b: &Browser, id: i64, xpath: &str, what: &str) -> fantoccini::elements::Element {
    b.the_one(&format!("//*[@id='message-{id}']{xpath}"), &format!("{what} in message {id}")).await
}

/// Types `text` into the compose field and clicks Send (without waiting for anything).
async fn send(b: &Browser, text: &str) {
    b.fill("Message", text).await;
    b.button("Send").await.click().await.expect("click Send");
}

pub(crate) async fn register(b: &Browser, base: &str, username: &str) {
    b.goto(&format!("{base}/register")).await;
    b.wait_for_path("/register", "opening the register page").await;
    b.fill("Username", username).await;
    b.fill("Email", &format!("{username}@example.org")).await;
    b.fill("Password", PASSWORD).await;
    b.button("Create account").await.click().await.expect("click Create account");
    b.wait_for_path("/", &format!("registering {username}")).await;
}

/// Waits to arrive on a `/c/N` page; returns N.
/// The browser logged no CSP violation since the last look.
async fn check_log(b: &Browser, page: &str, findings: &mut Findings) {
    for entry in b.log().await {
        let message = entry["message"].as_str().unwrap_or_default();
        let lower = message.to_lowercase();
        if lower.contains("content security policy") || lower.contains("refused to") {
            findings.add(format!("browser {}: CSP violation on the {page} page: {message}", b.name));
        } else if entry["level"] == json!("SEVERE") {
            eprintln!("browser {} console on the {page} page: {message}", b.name);
        }
    }
}

/// Measured latencies, printed as they come and checked at the end (so one run shows
/// them all).
#[derive(Default)]
struct Timings(Vec<(String, Duration, Duration)>);

impl Timings {
    /// A latency whose goal is `LIVE_GOAL` and whose limit is `LIVE_LIMIT`.
    fn record(&mut self, what: &str, took: Duration) {
        self.record_beyond(what, took, Duration::ZERO);
    }

    /// The same, on top of `floor`: a wait the design has on purpose (the grace period
    /// before a user counts as offline).
    fn record_beyond(&mut self, what: &str, took: Duration, floor: Duration) {
        let (goal, limit) = (floor + LIVE_GOAL, floor + LIVE_LIMIT);
        let mark = if took <= goal {
            String::new()
        } else if took <= limit {
            format!(" (over the {} ms goal)", goal.as_millis())
        } else {
            " (OVER THE LIMIT)".to_string()
        };
        eprintln!("LATENCY {what}: {} ms (limit {} ms){mark}", took.as_millis(), limit.as_millis());
        self.0.push((what.to_string(), took, limit));
    }

    fn report(&self) {
        let slow: Vec<String> = self
            .0
            .iter()
            .filter(|(_, took, limit)| took > limit)
            .map(|(what, took, limit)| format!("{what}: {} ms > {} ms", took.as_millis(), limit.as_millis()))
            .collect();
        assert!(slow.is_empty(), "too slow:\n{}", slow.join("\n"));
    }
}

// ---- The gate ---------------------------------------------------------------------

/// How the gate treats new connections (existing ones are cut when it closes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Forward to the app.
    Pass,
    /// Read the request, then close the connection without an answer: a network
    /// error, after which an EventSource reconnects by itself.
    Refuse,
    /// Answer `503` (not an event stream): the EventSource fails for good, and
    /// htmx-ext-sse opens a new one.
    Unavailable,
}

/// A `GET /events` seen by the gate, and what it did with it.
#[derive(Clone)]
struct StreamRequest {
    answer: Mode,
    at: Instant,
    target: String,
    last_event_id: Option<i64>,
}

impl std::fmt::Debug for StreamRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let header = self.last_event_id.map(|id| format!(" with Last-Event-ID: {id}")).unwrap_or_default();
        write!(f, "GET {}{header} → {:?}", self.target, self.answer)
    }
}

impl StreamRequest {
    fn since(&self) -> Option<i64> {
        self.target.split_once("since=").and_then(|(_, n)| n.split('&').next()).and_then(|n| n.parse().ok())
    }
}

struct GateState {
    mode: Mode,
    open: Vec<JoinHandle<()>>,
    requests: Vec<StreamRequest>,
}

/// A TCP forwarder between Bob's browser and the app.
struct Gate {
    addr: SocketAddr,
    state: Arc<Mutex<GateState>>,
    accept: JoinHandle<()>,
}

impl Gate {
    async fn start(app: SocketAddr) -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the gate");
        let addr = listener.local_addr().expect("the gate's address");
        let state = Arc::new(Mutex::new(GateState { mode: Mode::Pass, open: Vec::new(), requests: Vec::new() }));
        let shared = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let mut gate = shared.lock().expect("gate");
                let mode = gate.mode;
                gate.open.retain(|task| !task.is_finished());
                let task = tokio::spawn(connection(inbound, app, mode, shared.clone()));
                gate.open.push(task);
            }
        });
        Gate { addr, state, accept }
    }

    /// Cuts every connection and treats new ones as `mode` says; returns how many
    /// stream requests were seen before.
    fn close(&self, mode: Mode) -> usize {
        let mut gate = self.state.lock().expect("gate");
        gate.mode = mode;
        for task in gate.open.drain(..) {
            task.abort();
        }
        gate.requests.len()
    }

    /// Lets connections through again; returns how many stream requests were seen before.
    fn open(&self) -> usize {
        let mut gate = self.state.lock().expect("gate");
        gate.mode = Mode::Pass;
        gate.requests.len()
    }

    fn requests(&self) -> Vec<StreamRequest> {
        self.state.lock().expect("gate").requests.clone()
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.accept.abort();
        for task in self.state.lock().expect("gate").open.drain(..) {
            task.abort();
        }
    }
}

async fn connection(mut inbound: TcpStream, app: SocketAddr, mode: Mode, state: Arc<Mutex<GateState>>) {
    let record = |answer: Mode, head: &Head| {
        if head.target.starts_with("/events") {
            let request = StreamRequest { answer, at: Instant::now(), target: head.target.clone(), last_event_id: head.last_event_id };
            state.lock().expect("gate").requests.push(request);
        }
    };
    if mode != Mode::Pass {
        let mut reader = Requests::default();
        let mut buffer = [0u8; 4096];
        let read = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                match inbound.read(&mut buffer).await {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => {
                        if let Some(head) = reader.feed(&buffer[..n]).into_iter().next() {
                            return Some(head);
                        }
                    }
                }
            }
        });
        if let Ok(Some(head)) = read.await {
            record(mode, &head);
            if mode == Mode::Unavailable {
                let answer = "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: 12\r\nconnection: close\r\n\r\nUnavailable\n";
                let _ = inbound.write_all(answer.as_bytes()).await;
                let _ = inbound.shutdown().await;
            }
        }
        return;
    }
    let Ok(outbound) = TcpStream::connect(app).await else { return };
    let (mut from_browser, mut to_browser) = inbound.into_split();
    let (mut from_app, mut to_app) = outbound.into_split();
    let up = async {
        let mut reader = Requests::default();
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let n = match from_browser.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            for head in reader.feed(&buffer[..n]) {
                record(Mode::Pass, &head);
            }
            if to_app.write_all(&buffer[..n]).await.is_err() {
                return;
            }
        }
    };
    let down = tokio::io::copy(&mut from_app, &mut to_browser);
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

/// A request's first line and the one header the test cares about.
struct Head {
    target: String,
    last_event_id: Option<i64>,
}

/// Splits what a browser writes into requests (bodies skipped by Content-Length).
#[derive(Default)]
struct Requests {
    buffer: Vec<u8>,
    skip: usize,
    lost: bool,
}

impl Requests {
    fn feed(&mut self, bytes: &[u8]) -> Vec<Head> {
        let mut heads = Vec::new();
        if self.lost {
            return heads;
        }
        self.buffer.extend_from_slice(bytes);
        loop {
            if self.skip > 0 {
                let n = self.skip.min(self.buffer.len());
                self.buffer.drain(..n);
                self.skip -= n;
                if self.skip > 0 {
                    return heads;
                }
            }
            let Some(end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
                self.lost = self.buffer.len() > 64 * 1024;
                return heads;
            };
            let head = String::from_utf8_lossy(&self.buffer[..end]).into_owned();
            self.buffer.drain(..end + 4);
            let mut lines = head.split("\r\n");
            let target = lines.next().unwrap_or_default().split(' ').nth(1).unwrap_or_default().to_string();
            let mut last_event_id = None;
            for line in lines {
                let Some((name, value)) = line.split_once(':') else { continue };
                match name.trim().to_ascii_lowercase().as_str() {
                    "content-length" => self.skip = value.trim().parse().unwrap_or(0),
                    "transfer-encoding" => self.lost = true,
                    "last-event-id" => last_event_id = value.trim().parse().ok(),
                    _ => {}
                }
            }
            heads.push(Head { target, last_event_id });
            if self.lost {
                return heads;
            }
        }
    }
}
