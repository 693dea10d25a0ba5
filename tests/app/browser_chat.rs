//! Chat in a real browser: Alice and Bob, each in their own headless Chromium, talk in a
//! direct message (send, reply, react, pin, edit, delete), then Alice throws hostile
//! messages and a hostile group name at Bob's browser, which must run none of them.
//! Run once with JavaScript (htmx swaps fragments in place) and once without (plain
//! forms that post and redirect). Uses the WebDriver plumbing of `browser.rs`.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use fantoccini::key::Key;
use serde_json::json;

use crate::browser::{Browser, Findings, with_two_browsers};
use crate::support::{FLOW_ARGS, PASSWORD};

/// The whole flow, so a hung browser fails the test instead of hanging it.
/// With htmx, a sent message must show this fast, without a page load.
const INLINE_LIMIT: Duration = Duration::from_secs(5);

/// Hostile messages. Those that would run script try to set `window.__xss` (checked with
/// JavaScript on) or open an alert (checked in both runs: an open dialog is visible to
/// WebDriver even when it blocks the page).
const HOSTILE: &[&str] = &[
    "<script>window.__xss=1;alert(1)</script>",
    "<img src=x onerror=\"window.__xss=1\">",
    "<img src=x onerror=alert(1)>",
    "<svg onload=\"window.__xss=1\">",
    "<svg><script>window.__xss=1</script></svg>",
    "[click](javascript:window.__xss=1)",
    "[x](javascript:alert(1))",
    "<javascript:alert(1)>",
    "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "<a href=\"javascript:window.__xss=1\">x</a>",
    "\"><script>window.__xss=1</script>",
    "'><img src=x onerror=alert(1)>",
    "<iframe srcdoc=\"<script>parent.__xss=1</script>\"></iframe>",
    "<iframe src=javascript:alert(1)>",
    "<style>body{display:none}</style>",
    "<div style=\"position:fixed;inset:0;background:red\">cover</div>",
    "\u{202e}gnp.exe",
    "<details open ontoggle=\"window.__xss=1\">x</details>",
    "![img](x\" onerror=\"window.__xss=1)",
    "<math><mtext><table><mglyph><style><img src=x onerror=\"window.__xss=1\">",
    "<input autofocus onfocus=\"window.__xss=1\">",
    "<meta http-equiv=\"refresh\" content=\"0;url=javascript:alert(1)\">",
    "<base href=\"javascript:alert(1)//\">",
];

const GROUP_NAME: &str = "\"><img src=x onerror=\"window.__xss=1\"><script>alert(2)</script>";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_flow_in_chromium_with_javascript() {
    chat_flow(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_flow_in_chromium_without_javascript() {
    chat_flow(false).await;
}

async fn chat_flow(javascript: bool) {
    with_two_browsers("chat", javascript, FLOW_ARGS, ["alice", "bob"], run_flow).await;
}

async fn run_flow(base: &str, alice: &Browser, bob: &Browser) {
    let js = alice.javascript;
    let mode = if js { "js" } else { "no-js" };
    let mut findings = Findings::default();
    let mut step = Instant::now();
    let mut lap = |what: &str| {
        println!("  [{mode}] {what}: {:.1} s", step.elapsed().as_secs_f64());
        step = Instant::now();
    };

    // 0. Both register through the browser, so the cookies are the browser's own.
    tokio::join!(register(alice, base, "alice"), register(bob, base, "bob"));
    lap("register alice and bob");

    // 1. Alice finds Bob and opens a DM.
    let dm = alice.message_through_people("bob").await;
    let dm_url = format!("{base}/c/{dm}");
    check_log(alice, "DM (alice)", &mut findings).await;

    let before = alice.client.current_url().await.expect("url").to_string();
    let clicked = Instant::now();
    let hello = send(alice, dm, "Hello **Bob**, see https://example.org").await;
    if js {
        let took = clicked.elapsed();
        assert!(took < INLINE_LIMIT, "the message showed after {took:?}");
        let after = alice.client.current_url().await.expect("url").to_string();
        assert_eq!(after, before, "with htmx, sending does not navigate");
    }
    let body = message_text(alice, hello).await;
    assert!(body.contains("Hello Bob, see https://example.org"), "alice sees her message: {body:?}");
    alice.the_one(&format!("//*[@id='message-{hello}']//strong[.='Bob']"), "the bold Bob").await;
    lap("alice finds bob, opens the DM and sends");

    // 2. Bob opens the DM, replies, reacts and pins.
    bob.goto(&dm_url).await;
    bob.wait_for_path(&format!("/c/{dm}"), "opening the DM").await;
    let title = bob.text_of("h1").await;
    assert_eq!(title, "alice", "the DM is titled after the other person");
    let body = message_text(bob, hello).await;
    assert!(body.contains("Hello Bob"), "bob sees alice's message: {body:?}");
    in_message(bob, hello, "//button[normalize-space(.)='Reply']", "Reply").await.click().await.expect("click Reply");
    let replying = bob.the_one("//*[@id='replying']", "the Replying to… note").await;
    let replying = replying.text().await.expect("text");
    assert!(replying.contains("Replying to alice"), "the compose form says whom it answers: {replying:?}");
    let reply = send(bob, dm, "Hi Alice!").await;
    let quote = in_message(bob, reply, "//a[contains(@class,'reply-quote')]", "the reply quote").await;
    let quote = quote.text().await.expect("quote text");
    assert!(quote.contains("Reply to alice"), "the reply quotes alice: {quote:?}");

    in_message(bob, hello, "//a[normalize-space(.)='Add reaction']", "Add reaction").await.click().await.expect("open Add reaction");
    // The picker opens inside the message with JavaScript, as its own page without.
    bob.the_one("//button[@aria-label='React with 👍']", "React with 👍").await.click().await.expect("click React with 👍");
    in_message(bob, hello, "//button[starts-with(@aria-label,'👍 1: bob')]", "the 👍 1 reaction").await;
    in_message(bob, hello, "//button[normalize-space(.)='Pin message']", "Pin message").await.click().await.expect("click Pin message");
    in_message(bob, hello, "//button[normalize-space(.)='Unpin message']", "Unpin message (pinned)").await;
    in_message(bob, hello, "//span[@class='pinned-badge']", "the Pinned badge").await;
    check_log(bob, "DM (bob)", &mut findings).await;
    lap("bob replies, reacts and pins");

    // 3. Alice reloads and sees it all; she edits, then deletes her message.
    alice.goto(&dm_url).await;
    alice.wait_for_path(&format!("/c/{dm}"), "reloading the DM").await;
    let quote = in_message(alice, reply, "//a[contains(@class,'reply-quote')]", "the reply quote").await;
    assert!(quote.text().await.expect("text").contains("Reply to alice"));
    in_message(alice, hello, "//button[@aria-label='👍 1: bob. Toggle your reaction']", "the 👍 1 reaction").await;
    alice.the_one("//div[contains(@class,'system')][contains(.,'bob pinned a message')]", "bob pinned a message").await;

    in_message(alice, hello, "//button[normalize-space(.)='Edit message']", "Edit message").await.click().await.expect("click Edit message");
    alice.fill("Edit message", "Hello Bob (fixed)").await;
    alice.button("Save").await.click().await.expect("click Save");
    in_message(alice, hello, "//span[@class='edited'][.='(edited)']", "(edited)").await;
    let body = message_text(alice, hello).await;
    assert!(body.contains("Hello Bob (fixed)"), "the edit shows: {body:?}");

    in_message(alice, hello, "//button[normalize-space(.)='Delete message']", "Delete message").await.click().await.expect("click Delete message");
    if js {
        let client = &alice.client;
        let text = alice
            .eventually("expected the delete confirmation", || async move {
                client.get_alert_text().await.map_err(|e| e.to_string())
            })
            .await;
        assert_eq!(text, "Delete this message for everyone?");
        alice.client.accept_alert().await.expect("accept the confirmation");
    }
    in_message(alice, hello, "//p[contains(@class,'tombstone')][contains(.,'Message deleted')]", "Message deleted").await;
    check_log(alice, "DM after edit and delete (alice)", &mut findings).await;

    bob.goto(&dm_url).await;
    bob.wait_for_path(&format!("/c/{dm}"), "reloading the DM").await;
    in_message(bob, hello, "//p[contains(@class,'tombstone')][contains(.,'Message deleted')]", "Message deleted").await;
    let gone = bob.client.find_all(Locator::XPath("//*[contains(text(),'Hello Bob')]")).await.expect("find");
    assert!(gone.is_empty(), "the deleted text is gone from bob's page");
    let quote = in_message(bob, reply, "//a[contains(@class,'reply-quote')]", "the reply quote").await;
    assert_eq!(quote.text().await.expect("text"), "Reply to a deleted message");
    lap("alice edits and deletes; bob sees it");

    // 4. Hostile messages and a hostile group name.
    for payload in HOSTILE {
        send(alice, dm, payload).await;
    }
    assert_inert(alice, "DM after sending the payloads (alice)", &mut findings).await;
    lap(&format!("alice sends {} hostile messages", HOSTILE.len()));

    alice.link("New group").await.click().await.expect("click New group");
    alice.wait_for_path("/groups/new", "following New group").await;
    alice.fill("Group name", GROUP_NAME).await;
    alice.fill("Members", "bob").await;
    alice.button("Create group").await.click().await.expect("click Create group");
    let group = alice.wait_for_conversation("creating the group").await;
    assert_eq!(alice.text_of("h1").await, GROUP_NAME, "the group name shows as text");
    for payload in &HOSTILE[..3] {
        send(alice, group, payload).await;
    }
    assert_inert(alice, "group (alice)", &mut findings).await;

    for (page, path) in [
        ("DM", format!("/c/{dm}")),
        ("group", format!("/c/{group}")),
        ("home", "/".to_string()),
        ("group members", format!("/c/{group}/members")),
    ] {
        bob.goto(&format!("{base}{path}")).await;
        bob.wait_for_path(&path, &format!("opening the {page}")).await;
        assert_inert(bob, &format!("{page} (bob)"), &mut findings).await;
    }
    bob.goto(&dm_url).await;
    bob.wait_for_path(&format!("/c/{dm}"), "opening the DM").await;
    let text = bob.text_of("#messages").await;
    for shown in ["<script>window.__xss=1;alert(1)</script>", "<img src=x onerror=\"window.__xss=1\">", "<iframe srcdoc="] {
        assert!(text.contains(shown), "bob reads {shown:?} as text in:\n{text}");
    }
    lap("bob opens DM, group, home and members with the payloads");

    if js {
        // 5. Enter sends; Shift+Enter makes a new line.
        alice.goto(&dm_url).await;
        alice.wait_for_path(&format!("/c/{dm}"), "opening the DM").await;
        let last = last_message_id(alice).await.expect("messages");
        let field = alice.field("Message").await;
        field.click().await.expect("focus the compose field");
        field.send_keys(&format!("line one{}{}", Key::Shift, Key::Enter)).await.expect("type, then Shift+Enter");
        field.send_keys("line two").await.expect("type the second line");
        let value = field.prop("value").await.expect("value").unwrap_or_default();
        assert_eq!(value, "line one\nline two", "Shift+Enter inserts a newline");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(last_message_id(alice).await, Some(last), "Shift+Enter does not send");
        field.send_keys(&Key::Enter.to_string()).await.expect("press Enter");
        let sent = wait_for_new_message(alice, dm, last).await;
        let body = message_text(alice, sent).await;
        assert!(body.contains("line one") && body.contains("line two"), "both lines were sent: {body:?}");
        let compose = alice.field("Message").await;
        let value = compose.prop("value").await.expect("value").unwrap_or_default();
        assert_eq!(value, "", "a fresh, empty compose field after Enter");
        let focused = alice.client.execute("return document.activeElement && document.activeElement.id", vec![]).await.expect("focus");
        assert_eq!(focused, json!("compose-body"), "the compose field keeps the focus");
        lap("Enter sends, Shift+Enter is a newline");

        // 6. Accessibility of a busy conversation page (reply, reaction, pin, payloads).
        alice.run_axe("conversation", &mut findings).await;
        bob.goto(&format!("{base}/c/{group}")).await;
        bob.wait_for_path(&format!("/c/{group}"), "opening the group").await;
        bob.run_axe("group conversation", &mut findings).await;
        lap("axe");
    }

    findings.assert_none();
}

/// Registers `username` (email `username@example.org`) on the register page and lands home.
pub(crate) async fn register(b: &Browser, base: &str, username: &str) {
    b.goto(&format!("{base}/register")).await;
    b.wait_for_path("/register", "opening the register page").await;
    b.fill("Username", username).await;
    b.fill("Email", &format!("{username}@example.org")).await;
    b.fill("Password", PASSWORD).await;
    b.button("Create account").await.click().await.expect("click Create account");
    b.wait_for_path("/", &format!("registering {username}")).await;
    let header = b.text_of("header").await;
    assert!(header.contains(username), "browser {}: signed in; the header reads {header:?}", b.name);
}

/// Waits to arrive on a `/c/N` page; returns N.
/// The id of the last message (or system line) on the page, if any.
pub(crate) async fn last_message_id(b: &Browser) -> Option<i64> {
    let items = b.client.find_all(Locator::XPath("//*[@id='messages']/*[starts-with(@id,'message-')]")).await.ok()?;
    let last = items.last()?;
    let id = last.attr("id").await.ok()??;
    id.strip_prefix("message-")?.parse().ok()
}

/// Types `text` into the compose field and clicks Send; waits for the new message (inline
/// with htmx, after the redirect without) and returns its id.
pub(crate) async fn send(b: &Browser, conversation: i64, text: &str) -> i64 {
    let last = last_message_id(b).await.unwrap_or(0);
    b.fill("Message", text).await;
    b.button("Send").await.click().await.expect("click Send");
    wait_for_new_message(b, conversation, last).await
}

/// Waits (on conversation `conversation`, fully loaded) for a message newer than `last`
/// and for an empty compose field; returns the newest message's id.
pub(crate) async fn wait_for_new_message(b: &Browser, conversation: i64, last: i64) -> i64 {
    let path = format!("/c/{conversation}");
    b.eventually("expected the sent message to appear", || {
        let path = path.clone();
        async move {
            let url = b.client.current_url().await.map_err(|e| e.to_string())?;
            if url.path() != path {
                return Err(format!("at {url}"));
            }
            let state = b.client.execute("return document.readyState", vec![]).await.map_err(|e| e.to_string())?;
            if state != json!("complete") {
                return Err(format!("document is {state}"));
            }
            let id = last_message_id(b).await.ok_or("no messages")?;
            if id <= last {
                return Err(format!("the last message is still {id}"));
            }
            let compose = b.client.find(Locator::Id("compose-body")).await.map_err(|e| e.to_string())?;
            let value = compose.prop("value").await.map_err(|e| e.to_string())?.unwrap_or_default();
            if !value.is_empty() {
                return Err(format!("the compose field still holds {value:?}"));
            }
            Ok(id)
        }
    })
    .await
}

/// The one element `xpath` (relative, starting with `//`) finds inside `#message-{id}`.
pub(crate) async fn in_message(b: &Browser, id: i64, xpath: &str, what: &str) -> fantoccini::elements::Element {
    let full = format!("//*[@id='message-{id}']{xpath}");
    b.the_one(&full, &format!("{what} in message {id}")).await
}

async fn message_text(b: &Browser, id: i64) -> String {
    let body = in_message(b, id, "//div[@class='body']", "the message body").await;
    body.text().await.expect("message text")
}

/// Nothing a hostile message or name carries ran or became markup: no dialog is open, no
/// payload set `window.__xss`, no element or attribute came from a payload, and the
/// console logged no CSP violation.
async fn assert_inert(b: &Browser, page: &str, findings: &mut Findings) {
    match b.client.get_alert_text().await {
        Err(e) if e.is_no_such_alert() => {}
        Ok(text) => panic!("browser {}: a dialog is open on the {page} page: {text:?}", b.name),
        Err(e) => panic!("browser {}: asking for a dialog on the {page} page: {e}", b.name),
    }
    if b.javascript {
        let xss = b.client.execute("return [typeof window.__xss, typeof window.htmx]", vec![]).await.expect("check __xss");
        assert_eq!(xss, json!(["undefined", "object"]), "browser {}: on the {page} page a payload ran", b.name);
    }
    let injected = [
        ("script outside our two", "//script[not(contains(@src,'/assets/'))] | //body//script"),
        // local-name(): svg and math live in their own namespaces.
        ("dangerous element", "//body//*[local-name()='iframe' or local-name()='frame' or local-name()='object' or local-name()='embed' or local-name()='svg' or local-name()='math' or local-name()='base' or local-name()='meta' or local-name()='link' or local-name()='style']"),
        ("image that is not ours", "//body//img[not(starts-with(@src,'/assets/'))]"),
        ("event handler", "//*[@*[starts-with(name(),'on')]]"),
        ("style attribute", "//body//*[@style]"),
        ("input that is not ours", "//input[@autofocus]"),
        (
            "link to a non-web URL",
            "//*[@href or @src or @action or @formaction][not(starts-with(@href,'/') or starts-with(@href,'#') or starts-with(@href,'http://') or starts-with(@href,'https://') or starts-with(@href,'mailto:') or starts-with(@src,'/') or starts-with(@action,'/'))]",
        ),
    ];
    for (what, xpath) in injected {
        let found = b.client.find_all(Locator::XPath(xpath)).await.expect("xpath");
        for element in found {
            let html = element.html(false).await.unwrap_or_default();
            findings.add(format!("browser {}: {what} on the {page} page: {}", b.name, html.chars().take(300).collect::<String>()));
        }
    }
    let visible = b.client.find(Locator::Css("main")).await.expect("main").is_displayed().await.expect("displayed");
    assert!(visible, "browser {}: the {page} page's main content is hidden", b.name);
    check_log(b, page, findings).await;
}

/// The browser logged no CSP violation (and JavaScript is on or off as asked).
async fn check_log(b: &Browser, page: &str, findings: &mut Findings) {
    let htmx = b.client.execute("return typeof window.htmx", vec![]).await.expect("typeof htmx");
    let expected = if b.javascript { "object" } else { "undefined" };
    assert_eq!(htmx, json!(expected), "browser {}: on the {page} page htmx is {htmx}", b.name);
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

