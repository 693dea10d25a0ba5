//! Conversations as people use them: DMs, groups, messages with replies, reactions,
//! pins, edits and deletions, history, unread counts and receipts, and who may do what.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};

use crate::on_both_backends;
use crate::support::{Client, Resp, TestApp};

on_both_backends!(
    alice_and_bob_talk_in_a_direct_message,
    the_same_flow_works_inline_with_htmx,
    a_group_is_renamed_grows_shrinks_and_changes_hands,
    every_route_checks_who_is_asking,
    hostile_messages_and_names_render_as_text,
    bad_sends_keep_the_draft_and_duplicates_make_one_message,
    history_pages_are_exact_while_messages_arrive,
    unread_counts_mentions_and_receipts,
    the_open_conversation_and_its_first_unread,
    reading_pages_writes_nothing,
    pages_render_messages_from_their_source_not_stored_html,
);

/// The conversation id a `/c/{id}` redirect points at.
pub fn conversation_id(response: &Resp) -> i64 {
    let location = response.location().expect("redirect");
    location.trim_start_matches("/c/").split(['#', '?', '/']).next().expect("id").parse().expect("numeric id")
}

/// The id of the last `message-N` element in a page.
pub fn last_message_id(body: &str) -> i64 {
    body.split("id=\"message-").skip(1).filter_map(|s| s.split('"').next()?.parse().ok()).last().expect("a message")
}

pub async fn open_dm(client: &mut Client, with: &str) -> i64 {
    let response = client.post(&format!("/u/{with}/message"), &[]).await;
    conversation_id(&response)
}

pub async fn send(client: &mut Client, conversation: i64, body: &str) -> i64 {
    let client_id = format!("t{}", rand::random::<u64>());
    let response = client.post(&format!("/c/{conversation}/messages"), &[("body", body), ("client_id", &client_id)]).await;
    assert_eq!(response.status, StatusCode::SEE_OTHER, "send: {}", response.body);
    response.location().and_then(|l| l.rsplit("#message-").next()).and_then(|id| id.parse().ok()).expect("message id")
}

async fn alice_and_bob_talk_in_a_direct_message(app: TestApp) {
    let mut alice = app.client();
    alice.register("alice").await;
    let mut bob = app.client();
    bob.register("bob").await;

    let found = alice.get("/people?q=bo").await;
    assert!(found.body.contains("@bob") && found.body.contains(r#"aria-label="Message bob""#));
    let dm = open_dm(&mut alice, "bob").await;
    assert_eq!(open_dm(&mut bob, "alice").await, dm, "one DM per pair");
    let hello = send(&mut alice, dm, "Hello **Bob**, see https://example.org").await;

    let page = bob.get(&format!("/c/{dm}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(&format!("<h1 id=\"conversation-title\"><span id=\"title-{dm}\">alice</span></h1>")));
    assert!(page.body.contains("<strong>Bob</strong>"));
    assert!(page.body.contains(r#"href="https://example.org/""#));

    // Bob replies, reacts and pins.
    let reply_form = bob.get(&format!("/c/{dm}?reply_to={hello}")).await;
    assert!(reply_form.body.contains("Replying to <strong>alice</strong>"));
    let client_id = "bob-reply-1";
    let reply = bob.post(&format!("/c/{dm}/messages"), &[("body", "Hi!"), ("client_id", client_id), ("reply_to", &hello.to_string())]).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    bob.post(&format!("/c/{dm}/m/{hello}/react"), &[("emoji", "👍")]).await.assert_redirect(&format!("/c/{dm}/m/{hello}"));
    bob.post(&format!("/c/{dm}/m/{hello}/pin"), &[]).await;

    let page = alice.get(&format!("/c/{dm}")).await;
    assert!(page.body.contains("Reply to <strong>alice</strong>"), "reply quote");
    assert!(page.body.contains(r#"aria-label="👍 1: bob. Toggle your reaction""#));
    assert!(page.body.contains("bob pinned a message"));
    let pins = alice.get(&format!("/c/{dm}/pins")).await;
    assert!(pins.body.contains(&format!("id=\"message-{hello}\"")));

    // Alice edits, then deletes.
    let edit_page = alice.get(&format!("/c/{dm}/m/{hello}/edit")).await;
    assert!(edit_page.body.contains("Hello **Bob**"));
    alice.post(&format!("/c/{dm}/m/{hello}/edit"), &[("body", "Hello Bob (fixed)")]).await.assert_redirect(&format!("/c/{dm}/m/{hello}"));
    let page = bob.get(&format!("/c/{dm}?around={hello}")).await;
    assert!(page.body.contains("Hello Bob (fixed)") && page.body.contains("(edited)"));
    assert_eq!(bob.post(&format!("/c/{dm}/m/{hello}/edit"), &[("body", "bob was here")]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(bob.post(&format!("/c/{dm}/m/{hello}/delete"), &[]).await.status, StatusCode::FORBIDDEN);
    alice.post(&format!("/c/{dm}/m/{hello}/delete"), &[]).await;
    let page = bob.get(&format!("/c/{dm}")).await;
    assert!(page.body.contains("Message deleted"));
    assert!(!page.body.contains("Hello Bob (fixed)"));
    assert!(page.body.contains("Reply to a deleted message"), "the reply still makes sense");

    // Saved messages: a DM with yourself.
    let saved = open_dm(&mut alice, "alice").await;
    assert!(alice.get(&format!("/c/{saved}")).await.body.contains("Saved messages"));
}

/// A request as htmx sends it (same-origin, `HX-Request`), with `form` as its body.
pub(crate) fn htmx(method: Method, path: &str, form: &[(&str, &str)]) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("hx-request", "true")
        .header("sec-fetch-site", "same-origin")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(serde_urlencoded::to_string(form).expect("form")))
        .expect("request")
}

async fn the_same_flow_works_inline_with_htmx(app: TestApp) {
    let mut alice = app.client();
    alice.register("alice").await;
    let mut bob = app.client();
    bob.register("bob").await;
    let dm = open_dm(&mut alice, "bob").await;

    let sent = alice.send(htmx(Method::POST, &format!("/c/{dm}/messages"), &[("body", "inline _hello_"), ("client_id", "x1")])).await;
    assert_eq!(sent.status, StatusCode::OK);
    // The first message of the day comes after its day separator, placed by id too.
    assert!(sent.body.starts_with("<div id=\"day-") && sent.body.contains("<article id=\"message-"), "the message partial: {}", sent.body);
    assert!(sent.body.contains("<em>hello</em>"));
    assert!(sent.body.contains(r#"id="compose""#) && sent.body.contains(r#"hx-swap-oob="true""#), "a fresh compose form");
    let id = last_message_id(&sent.body);

    // The partial in the page is byte-identical to the one htmx got.
    let page = bob.get(&format!("/c/{dm}")).await;
    let fragment = sent.body.split("<form id=\"compose\"").next().expect("partial");
    assert!(page.body.contains(fragment.trim_end()), "page and fragment share the partial");

    let empty = alice.send(htmx(Method::POST, &format!("/c/{dm}/messages"), &[("body", "   "), ("client_id", "x2")])).await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(empty.header("hx-retarget"), "#compose");

    let reacted = bob.send(htmx(Method::POST, &format!("/c/{dm}/m/{id}/react"), &[("emoji", "🎉")])).await;
    assert!(reacted.body.starts_with(&format!("<article id=\"message-{id}\"")) && reacted.body.contains("🎉 <span class=\"count\">1</span>"));
    let edit = alice.send(htmx(Method::GET, &format!("/c/{dm}/m/{id}/edit"), &[])).await;
    // The form takes the message's place in the list, so it comes as a list item.
    assert!(edit.body.starts_with(&format!("<div id=\"message-{id}\" class=\"message\" role=\"listitem\"><form ")), "{}", edit.body);
    let saved = alice.send(htmx(Method::POST, &format!("/c/{dm}/m/{id}/edit"), &[("body", "edited inline")])).await;
    assert!(saved.body.contains("edited inline") && saved.body.contains("(edited)"));
    let older = alice.send(htmx(Method::GET, &format!("/c/{dm}/history?before={id}"), &[])).await;
    assert_eq!(older.status, StatusCode::OK);
    let deleted = alice.send(htmx(Method::POST, &format!("/c/{dm}/m/{id}/delete"), &[])).await;
    assert!(deleted.body.contains("Message deleted"));
}

/// Issue 10 item 6: HTML stored at write time (stale, or hostile because an older
/// sanitizer let something through) never reaches a page; the stored markdown is
/// rendered and sanitized by today's renderer, on the page, the fragment and pins.
async fn pages_render_messages_from_their_source_not_stored_html(app: TestApp) {
    let mut alice = app.client();
    alice.register("alice").await;
    let mut bob = app.client();
    bob.register("bob").await;
    let dm = open_dm(&mut alice, "bob").await;
    let id = send(&mut alice, dm, "Hello **Bob**, ping @bob").await;
    alice.post(&format!("/c/{dm}/m/{id}/pin"), &[]).await;
    // What an old sanitizer might have stored.
    reale::with_db!(app.state.store, pool => {
        sqlx::query("UPDATE messages SET html = $1 WHERE id = $2")
            .bind("<p>stale copy</p><script>alert(1)</script><img src=x onerror=alert(2)>")
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ())
    })
    .expect("plant stored html");
    for path in [format!("/c/{dm}"), format!("/c/{dm}/m/{id}/view"), format!("/c/{dm}/pins")] {
        let page = bob.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(!page.body.contains("stale copy") && !page.body.contains("alert("), "{path} served the stored html: {}", page.body);
        assert!(page.body.contains("Hello <strong>Bob</strong>, ping <a"), "{path} renders the source");
        assert!(page.body.contains(r#"class="mention" data-user="bob""#), "{path} keeps the mention");
    }
}

async fn member_id(app: &TestApp, username: &str) -> i64 {
    reale::with_db!(app.state.store, pool => {
        sqlx::query_scalar("SELECT id FROM users WHERE username = $1").bind(username).fetch_one(pool).await
    })
    .expect("user id")
}

async fn a_group_is_renamed_grows_shrinks_and_changes_hands(app: TestApp) {
    let mut alice = app.client();
    alice.register("alice").await;
    let mut bob = app.client();
    bob.register("bob").await;
    let mut carol = app.client();
    carol.register("carol").await;
    let mut dave = app.client();
    dave.register("dave").await;

    let unknown = alice.post("/groups", &[("name", "Trip"), ("members", "bob, nobody")]).await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(unknown.body.contains("no one called @nobody") && unknown.body.contains("value=\"Trip\""));
    let group = conversation_id(&alice.post("/groups", &[("name", "Trip"), ("members", "bob, @carol")]).await);
    let page = carol.get(&format!("/c/{group}")).await;
    assert!(page.body.contains("alice created the group") && page.body.contains("alice added bob, carol"));

    assert_eq!(bob.post(&format!("/c/{group}/rename"), &[("name", "Bob's trip")]).await.status, StatusCode::FORBIDDEN);
    alice.post(&format!("/c/{group}/rename"), &[("name", "Summer trip")]).await.assert_redirect(&format!("/c/{group}/members"));
    alice.post(&format!("/c/{group}/members"), &[("username", "dave")]).await;
    let page = dave.get(&format!("/c/{group}")).await;
    assert!(page.body.contains("Summer trip") && page.body.contains("alice added dave"));

    let carol_id = member_id(&app, "carol").await;
    let bob_id = member_id(&app, "bob").await;
    let dave_id = member_id(&app, "dave").await;
    let alice_id = member_id(&app, "alice").await;
    let secret = send(&mut alice, group, "meet at the harbour").await;
    alice.post(&format!("/c/{group}/members/{carol_id}/remove"), &[]).await.assert_redirect(&format!("/c/{group}/members"));
    assert_eq!(carol.get(&format!("/c/{group}")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(carol.get(&format!("/c/{group}/m/{secret}")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(carol.post(&format!("/c/{group}/messages"), &[("body", "still here?"), ("client_id", "c1")]).await.status, StatusCode::NOT_FOUND);
    assert!(!carol.get("/").await.body.contains("Summer trip"), "gone from her sidebar");

    // Admin rights: the owner promotes bob; bob may remove members but not the owner.
    assert_eq!(bob.post(&format!("/c/{group}/members/{dave_id}/remove"), &[]).await.status, StatusCode::FORBIDDEN);
    alice.post(&format!("/c/{group}/members/{bob_id}/promote"), &[]).await;
    assert!(dave.get(&format!("/c/{group}")).await.body.contains("alice made bob an admin"));
    assert_eq!(bob.post(&format!("/c/{group}/members/{alice_id}/remove"), &[]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(bob.post(&format!("/c/{group}/members/{dave_id}/promote"), &[]).await.status, StatusCode::FORBIDDEN);
    let dave_says = send(&mut dave, group, "hi all").await;
    bob.post(&format!("/c/{group}/m/{dave_says}/delete"), &[]).await;
    assert!(alice.get(&format!("/c/{group}")).await.body.contains("Message deleted"), "admins delete anyone's message");
    assert_eq!(dave.post(&format!("/c/{group}/m/{secret}/pin"), &[]).await.status, StatusCode::FORBIDDEN, "members do not pin in groups");
    bob.post(&format!("/c/{group}/members/{dave_id}/remove"), &[]).await;
    assert_eq!(dave.get(&format!("/c/{group}")).await.status, StatusCode::NOT_FOUND);

    // The owner leaves: the admin inherits the group.
    alice.post(&format!("/c/{group}/leave"), &[]).await.assert_redirect("/");
    assert_eq!(alice.get(&format!("/c/{group}")).await.status, StatusCode::NOT_FOUND);
    let members = bob.get(&format!("/c/{group}/members")).await;
    assert!(members.body.contains("bob is now the owner"));
    assert!(bob.get(&format!("/c/{group}")).await.body.contains("alice left the group"));
    bob.post(&format!("/c/{group}/rename"), &[("name", "Bob's trip")]).await.assert_redirect(&format!("/c/{group}/members"));
}

/// What each kind of visitor gets from each conversation route: members see and act
/// (or are refused with 403 when their role does not allow it); everyone else gets
/// 404 as if the conversation did not exist; anonymous visitors are sent to log in.
async fn every_route_checks_who_is_asking(app: TestApp) {
    let mut owner = app.client();
    owner.register("owner").await;
    let mut admin = app.client();
    admin.register("admin").await;
    let mut member = app.client();
    member.register("member").await;
    let mut outsider = app.client();
    outsider.register("outsider").await;
    let mut removed = app.client();
    removed.register("removed").await;
    app.client().register("extra").await;
    let mut anonymous = app.client();

    let group = conversation_id(&owner.post("/groups", &[("name", "Club"), ("members", "admin, member, removed")]).await);
    let admin_id = member_id(&app, "admin").await;
    let removed_id = member_id(&app, "removed").await;
    owner.post(&format!("/c/{group}/members/{admin_id}/promote"), &[]).await;
    let message = send(&mut owner, group, "the owner's message").await;
    owner.post(&format!("/c/{group}/members/{removed_id}/remove"), &[]).await;
    let member_id_value = member_id(&app, "member").await;

    let g = group;
    let m = message;
    let read_routes = [
        format!("/c/{g}"),
        format!("/c/{g}/history?before={m}"),
        format!("/c/{g}/pins"),
        format!("/c/{g}/members"),
        format!("/c/{g}/m/{m}/view"),
    ];
    for path in &read_routes {
        assert_eq!(owner.get(path).await.status, StatusCode::OK, "owner GET {path}");
        assert_eq!(admin.get(path).await.status, StatusCode::OK, "admin GET {path}");
        assert_eq!(member.get(path).await.status, StatusCode::OK, "member GET {path}");
        assert_eq!(outsider.get(path).await.status, StatusCode::NOT_FOUND, "outsider GET {path}");
        assert_eq!(removed.get(path).await.status, StatusCode::NOT_FOUND, "removed GET {path}");
        anonymous.get(path).await.assert_redirect("/login");
    }
    assert_eq!(member.get(&format!("/c/{g}/m/{m}")).await.status, StatusCode::SEE_OTHER);
    assert_eq!(outsider.get(&format!("/c/{g}/m/{m}")).await.status, StatusCode::NOT_FOUND);

    // (path, form, what a plain member gets, what an admin gets)
    let writes: Vec<(String, Vec<(&str, &str)>, StatusCode, StatusCode)> = vec![
        (format!("/c/{g}/messages"), vec![("body", "hi"), ("client_id", "")], StatusCode::SEE_OTHER, StatusCode::SEE_OTHER),
        (format!("/c/{g}/m/{m}/react"), vec![("emoji", "👍")], StatusCode::SEE_OTHER, StatusCode::SEE_OTHER),
        (format!("/c/{g}/m/{m}/edit"), vec![("body", "mine now")], StatusCode::FORBIDDEN, StatusCode::FORBIDDEN),
        (format!("/c/{g}/m/{m}/pin"), vec![], StatusCode::FORBIDDEN, StatusCode::SEE_OTHER),
        (format!("/c/{g}/m/{m}/unpin"), vec![], StatusCode::FORBIDDEN, StatusCode::SEE_OTHER),
        (format!("/c/{g}/rename"), vec![("name", "Renamed")], StatusCode::FORBIDDEN, StatusCode::SEE_OTHER),
        (format!("/c/{g}/members"), vec![("username", "extra")], StatusCode::FORBIDDEN, StatusCode::SEE_OTHER),
        (format!("/c/{g}/members/{member_id_value}/promote"), vec![], StatusCode::FORBIDDEN, StatusCode::FORBIDDEN),
        (format!("/c/{g}/members/{member_id_value}/demote"), vec![], StatusCode::FORBIDDEN, StatusCode::FORBIDDEN),
        (format!("/c/{g}/m/{m}/delete"), vec![], StatusCode::FORBIDDEN, StatusCode::SEE_OTHER),
    ];
    for (path, form, as_member, as_admin) in &writes {
        assert_eq!(removed.post(path, form).await.status, StatusCode::NOT_FOUND, "removed POST {path}");
        let mut stranger = app.client();
        stranger.register(&format!("s{}", rand::random::<u32>())).await;
        assert_eq!(stranger.post(path, form).await.status, StatusCode::NOT_FOUND, "non-member POST {path}");
        anonymous.post(path, form).await.assert_redirect("/login");
        assert_eq!(member.post(path, form).await.status, *as_member, "member POST {path}");
        assert_eq!(admin.post(path, form).await.status, *as_admin, "admin POST {path}");
    }
    // Members lists, removals and leaving.
    assert_eq!(outsider.post(&format!("/c/{g}/leave"), &[]).await.status, StatusCode::NOT_FOUND);
    assert_eq!(member.post(&format!("/c/{g}/members/{admin_id}/remove"), &[]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(outsider.post(&format!("/c/{g}/members/{member_id_value}/remove"), &[]).await.status, StatusCode::NOT_FOUND);
    // Messages of one conversation cannot be reached through another.
    let dm = open_dm(&mut outsider, "outsider").await;
    assert_eq!(outsider.get(&format!("/c/{dm}/m/{m}")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(outsider.post(&format!("/c/{dm}/m/{m}/react"), &[("emoji", "👍")]).await.status, StatusCode::NOT_FOUND);
    assert_eq!(outsider.get("/c/999999").await.status, StatusCode::NOT_FOUND);
    let garbage = outsider.get("/c/not-a-number").await;
    assert_eq!(garbage.status, StatusCode::BAD_REQUEST);
    assert!(garbage.body.contains("could not be understood"), "a friendly page, not a bare error");
}

/// A sample of hostile inputs; the markdown module's unit tests run 100+ through the
/// renderer, and the browser test proves none of them executes.
pub const HOSTILE: &[&str] = &[
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg onload=alert(1)>",
    "[click](javascript:alert(1))",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "<a href=\"javascript:alert(1)\">x</a>",
    "\"><script>alert(1)</script>",
    "<iframe src=javascript:alert(1)>",
    "\u{202e}gnp.exe",
    "<style>body{display:none}</style>",
];

async fn hostile_messages_and_names_render_as_text(app: TestApp) {
    let mut alice = app.client();
    alice
        .post("/register", &[("username", "alice"), ("email", "a@example.org"), ("password", crate::support::PASSWORD), ("display_name", "<img src=x onerror=alert(1)>")])
        .await
        .assert_redirect("/");
    let mut bob = app.client();
    bob.register("bob").await;
    let group = conversation_id(&alice.post("/groups", &[("name", "<script>alert('group')</script>"), ("members", "bob")]).await);
    for payload in HOSTILE {
        send(&mut alice, group, payload).await;
    }
    for path in [format!("/c/{group}"), "/".to_string(), format!("/c/{group}/members")] {
        let page = bob.get(&path).await;
        assert_eq!(page.status, StatusCode::OK);
        assert_inert(&page.body, &path);
        assert!(page.body.contains("&lt;script&gt;") || page.body.contains("&#60;script&#62;"), "{path}: shown as text");
    }
}

/// Every real tag in `html` (text `<` is always escaped, so each `<` opens one) is one
/// we write ourselves: no script but our two, no event handlers, no script URLs.
pub fn assert_inert(html: &str, context: &str) {
    let lower = html.to_lowercase();
    // htmx and app.js everywhere; the SSE extension on live pages.
    let scripts = lower.matches("<script").count();
    assert!((2..=3).contains(&scripts), "{context}: only our own script tags ({scripts})");
    for tag in lower.split('<').skip(1) {
        let tag = tag.split('>').next().unwrap_or("");
        if tag.starts_with('/') || tag.starts_with('!') {
            continue;
        }
        let (name, attributes) = parse_tag(tag);
        assert!(!["svg", "iframe", "object", "embed", "math", "base", "frame"].contains(&name.as_str()), "{context}: <{tag}>");
        if name == "script" {
            assert!(attributes.iter().any(|(k, v)| k == "src" && v.starts_with("/assets/")), "{context}: <{tag}>");
        }
        if name == "img" {
            assert!(attributes.iter().any(|(k, v)| k == "src" && v.starts_with("/assets/")), "{context}: <{tag}>");
        }
        if name == "style" {
            assert!(attributes.iter().any(|(k, _)| k == "nonce"), "{context}: style without nonce");
        }
        for (key, value) in attributes {
            assert!(!key.starts_with("on"), "{context}: event handler in <{tag}>");
            assert!(key != "style", "{context}: style attribute in <{tag}>");
            if ["href", "src", "action", "formaction"].contains(&key.as_str()) {
                let safe = ["/", "#", "http://", "https://", "mailto:"].iter().any(|p| value.starts_with(p));
                assert!(safe, "{context}: {key}={value} in <{tag}>");
            }
        }
    }
}

/// A tag's name and attributes, quoted values understood.
fn parse_tag(tag: &str) -> (String, Vec<(String, String)>) {
    let chars: Vec<char> = tag.chars().collect();
    let mut i = 0;
    let read_name = |i: &mut usize| {
        let start = *i;
        while *i < chars.len() && !chars[*i].is_whitespace() && chars[*i] != '=' && chars[*i] != '/' {
            *i += 1;
        }
        chars[start..*i].iter().collect::<String>()
    };
    let name = read_name(&mut i);
    let mut attributes = Vec::new();
    loop {
        while i < chars.len() && (chars[i].is_whitespace() || chars[i] == '/') {
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        let key = read_name(&mut i);
        let mut value = String::new();
        if i < chars.len() && chars[i] == '=' {
            i += 1;
            if i < chars.len() && (chars[i] == '"' || chars[i] == '\'') {
                let quote = chars[i];
                i += 1;
                while i < chars.len() && chars[i] != quote {
                    value.push(chars[i]);
                    i += 1;
                }
                i += 1;
            } else {
                while i < chars.len() && !chars[i].is_whitespace() {
                    value.push(chars[i]);
                    i += 1;
                }
            }
        }
        if key.is_empty() {
            i += 1;
        } else {
            attributes.push((key, value));
        }
    }
    (name, attributes)
}

async fn bad_sends_keep_the_draft_and_duplicates_make_one_message(app: TestApp) {
    let mut alice = app.client();
    alice.register("alice").await;
    let dm = open_dm(&mut alice, "alice").await;
    let long = "y".repeat(4001);
    for (body, message) in [("   ", "Type a message first."), (long.as_str(), "at most 4,000 characters")] {
        let response = alice.post(&format!("/c/{dm}/messages"), &[("body", body), ("client_id", "draft1")]).await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(response.body.contains(message));
        if body.len() > 10 {
            assert!(response.body.contains(&long), "the draft is kept");
        }
    }
    let invalid_utf8 = alice.post_raw(&format!("/c/{dm}/messages"), b"body=%ff%fe%fd&client_id=u1".to_vec(), "application/x-www-form-urlencoded").await;
    assert!(invalid_utf8.status == StatusCode::SEE_OTHER || invalid_utf8.status == StatusCode::UNPROCESSABLE_ENTITY);
    let too_big = alice.post_raw(&format!("/c/{dm}/messages"), vec![b'b'; 2 * 1024 * 1024], "application/x-www-form-urlencoded").await;
    assert_eq!(too_big.status, StatusCode::PAYLOAD_TOO_LARGE);

    let first = alice.post(&format!("/c/{dm}/messages"), &[("body", "only once"), ("client_id", "same-id")]).await;
    let again = alice.post(&format!("/c/{dm}/messages"), &[("body", "only once"), ("client_id", "same-id")]).await;
    assert_eq!(first.location(), again.location(), "the resubmission points at the same message");
    let page = alice.get(&format!("/c/{dm}")).await;
    assert_eq!(page.body.matches("<p>only once</p>").count(), 1);
}

async fn history_pages_are_exact_while_messages_arrive(app: TestApp) {
    let mut alice = app.client();
    alice.register("alice").await;
    let mut bob = app.client();
    bob.register("bob").await;
    let dm = open_dm(&mut alice, "bob").await;
    let mut sent = Vec::new();
    for n in 0..120 {
        sent.push(send(&mut alice, dm, &format!("number {n}")).await);
    }
    let mut seen: Vec<i64> = Vec::new();
    let mut page = bob.get(&format!("/c/{dm}")).await;
    let mut extra = 0;
    loop {
        let ids: Vec<i64> = page
            .body
            .split("<article id=\"message-")
            .skip(1)
            .filter_map(|s| s.split('"').next()?.parse().ok())
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ascending within a page");
        assert!(ids.len() <= 50);
        seen.splice(0..0, ids.iter().copied());
        // New messages keep arriving while Bob scrolls back.
        send(&mut alice, dm, &format!("late {extra}")).await;
        extra += 1;
        let Some(oldest) = ids.first() else { break };
        if !page.body.contains("Load older messages") {
            break;
        }
        page = bob.get(&format!("/c/{dm}/history?before={oldest}")).await;
    }
    assert_eq!(seen, sent, "every message exactly once, in order");

    // A permalink to an old message opens the conversation around it.
    let old = sent[10];
    let link = bob.get(&format!("/c/{dm}/m/{old}")).await;
    assert_eq!(link.location(), Some(format!("/c/{dm}?around={old}#message-{old}").as_str()));
    let around = bob.get(&format!("/c/{dm}?around={old}")).await;
    assert!(around.body.contains(&format!("id=\"message-{old}\"")));
    assert!(around.body.contains("number 10") && around.body.contains("number 0") && around.body.contains("number 30"));
    assert!(!around.body.contains("number 100"));
}

async fn unread_counts_mentions_and_receipts(app: TestApp) {
    let app_store = app.state.store.clone();
    let mut alice = app.client();
    alice.register("alice").await;
    let mut bob = app.client();
    bob.register("bob").await;
    let mut carol = app.client();
    carol.register("carol").await;
    let dm = open_dm(&mut alice, "bob").await;
    send(&mut alice, dm, "one").await;
    send(&mut alice, dm, "two").await;
    let group = conversation_id(&alice.post("/groups", &[("name", "Team"), ("members", "bob, carol")]).await);
    send(&mut alice, group, "hey @bob, look").await;

    let home = bob.get("/").await;
    assert!(home.body.contains(r#"aria-label="2 unread""#), "DM unread count");
    assert!(home.body.contains(r#"aria-label="1 mentions of you""#), "mention badge");
    let first_in_sidebar = home.body.find("Team").expect("group listed");
    assert!(first_in_sidebar < home.body.find("alice</span>").expect("dm listed"), "latest activity first");
    assert!(home.body.contains("alice: hey @bob, look"), "last message preview");

    let page = bob.get(&format!("/c/{dm}")).await;
    assert!(page.body.contains("New messages"), "divider at the first unread");
    assert!(bob.get("/").await.body.contains(r#"aria-label="2 unread""#), "opening the page (a GET) marks nothing read");
    assert!(!alice.get(&format!("/c/{dm}")).await.body.contains(">Seen</p>"), "no receipt for a page view");
    mark_read(&mut bob, dm).await;
    assert!(!bob.get("/").await.body.contains(r#"aria-label="2 unread""#), "the page's Mark as read marks read");
    assert!(alice.get(&format!("/c/{dm}")).await.body.contains(">Seen</p>"), "DM receipt");

    let page = bob.get(&format!("/c/{group}")).await;
    // The mention of Bob: a link to his profile, and the message marked as mentioning
    // him, which the page's own style highlights for him alone.
    let bob_id: i64 = reale::conversations::store::user_by_username(&app_store, "bob").await.expect("query").expect("bob").id;
    let start = page.body.find("hey <a").and_then(|i| page.body[..i].rfind("<article")).expect("the message with the mention");
    let article = &page.body[start..start + page.body[start..].find("</article>").expect("end of message")];
    assert!(article.contains(r#"<a href="/u/bob" class="mention" data-user="bob""#), "a link to bob: {article}");
    let mentions = article.split("data-mentions=\"").nth(1).and_then(|v| v.split('"').next()).expect("data-mentions");
    assert_eq!(mentions.split_whitespace().collect::<Vec<_>>(), [bob_id.to_string()], "marked as mentioning bob alone: {article}");
    assert!(page.body.contains(&format!(r#".message[data-mentions~="{bob_id}"]"#)), "highlighted for bob");
    mark_read(&mut bob, group).await;
    assert!(alice.get(&format!("/c/{group}")).await.body.contains("Seen by bob"));
    mark_read(&mut carol, group).await;
    let receipt = alice.get(&format!("/c/{group}")).await;
    assert!(receipt.body.contains("Seen by bob, carol") || receipt.body.contains("Seen by carol, bob"));
}

/// Every page Bob can open about a conversation leaves it as it was: no event (so no
/// event-counter lock), the same unread count, no receipt for Alice.
async fn reading_pages_writes_nothing(app: TestApp) {
    let mut alice = app.client();
    alice.register("alice").await;
    let mut bob = app.client();
    bob.register("bob").await;
    let dm = open_dm(&mut alice, "bob").await;
    let first = send(&mut alice, dm, "first words").await;
    send(&mut alice, dm, "second words").await;
    assert!(bob.get("/").await.body.contains(r#"aria-label="2 unread""#));
    let before = reale::store::log::newest(&app.state.store).await.expect("log");

    for path in [
        format!("/c/{dm}"),
        format!("/c/{dm}?before={}", first + 1),
        format!("/c/{dm}/history?before={}", first + 1),
        format!("/c/{dm}/m/{first}"),
        format!("/c/{dm}/m/{first}/view"),
        format!("/c/{dm}/pins"),
        "/search?q=words".to_string(),
        "/people?q=ali".to_string(),
        "/u/alice".to_string(),
        "/".to_string(),
    ] {
        let page = bob.get(&path).await;
        assert!(page.status.is_success() || page.status.is_redirection(), "{path}: {}", page.status);
    }
    assert_eq!(reale::store::log::newest(&app.state.store).await.expect("log"), before, "a GET appended an event");
    assert!(bob.get("/").await.body.contains(r#"aria-label="2 unread""#), "still unread");
    assert!(!alice.get(&format!("/c/{dm}")).await.body.contains(">Seen</p>"), "no receipt");
}

/// What a person without JavaScript does: open the page and press "Mark as read".
async fn mark_read(client: &mut crate::support::Client, conversation: i64) {
    let page = client.get(&format!("/c/{conversation}")).await;
    let form = page.body.find(&format!(r#"action="/c/{conversation}/read""#)).expect("a Mark as read button");
    let value = &page.body[form..].split(r#"name="up_to" value=""#).nth(1).expect("up_to")[..];
    let up_to = &value[..value.find('"').expect("quoted")];
    assert!(page.body[form..].contains("Mark as read"));
    client.post(&format!("/c/{conversation}/read"), &[("up_to", up_to), ("back", "1")]).await.assert_redirect(&format!("/c/{conversation}"));
}

async fn the_open_conversation_and_its_first_unread(app: TestApp) {
    let mut alice = app.client();
    alice.register("alice").await;
    let mut bob = app.client();
    bob.register("bob").await;
    let dm = open_dm(&mut alice, "bob").await;
    let mut ids = Vec::new();
    for n in 0..55 {
        ids.push(send(&mut alice, dm, &format!("number {n}")).await);
    }
    let page = bob.get(&format!("/c/{dm}")).await;
    assert!(page.body.contains(&format!(r#"href="/c/{dm}/m/{}">Jump to first unread"#, ids[0])), "first unread is off the page");
    assert!(!page.body.contains(" unread\""), "the open conversation has no badge in its own sidebar");
    mark_read(&mut bob, dm).await;

    let new = send(&mut alice, dm, "hey @bob").await;
    send(&mut alice, dm, "and more").await;
    let older = bob.get(&format!("/c/{dm}?before={}", ids[30])).await;
    assert!(bob.get("/").await.body.contains(r#"aria-label="1 mentions of you""#), "an older page marks nothing read");
    assert!(!older.body.contains("Jump to first unread"));
    let page = bob.get(&format!("/c/{dm}")).await;
    let divider = page.body.find(r#"id="unread""#).expect("divider");
    assert!(page.body[divider..].find(&format!(r#"id="message-{new}""#)).is_some_and(|at| at < 300), "divider at the first unread");
    assert!(bob.get(&format!("/c/{dm}")).await.body.contains(r#"id="unread""#), "opening again: still unread");
    mark_read(&mut bob, dm).await;
    assert!(!bob.get(&format!("/c/{dm}")).await.body.contains(r#"id="unread""#), "read now");
}

#[tokio::test]
async fn sending_too_fast_is_slowed_down_with_the_draft_kept() {
    let app = TestApp::spawn(crate::support::Backend::Sqlite).await.expect("sqlite");
    let mut alice = app.client();
    alice.register("alice").await;
    let saved = open_dm(&mut alice, "alice").await;
    // The limit lets 30 through at once, then one every third of a second.
    let mut sent = 0;
    let slowed = loop {
        let response = alice.post(&format!("/c/{saved}/messages"), &[("body", "one too many"), ("client_id", &format!("c{sent}"))]).await;
        if response.status != StatusCode::SEE_OTHER || sent == 60 {
            break response;
        }
        sent += 1;
    };
    assert!((30..60).contains(&sent), "slowed down after {sent}");
    assert_eq!(slowed.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(slowed.header("retry-after").parse::<u64>().is_ok_and(|s| s >= 1), "says when to try again");
    assert!(slowed.body.contains("Too many attempts") && slowed.body.contains("one too many"));
}
