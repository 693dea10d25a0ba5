//! Servers as people use them: creating one, channels and categories, invites (with
//! exact use counts under concurrent joins), settings, leaving and deleting, slowmode,
//! and who may see or do what.

use std::time::Duration;

use axum::http::StatusCode;

use crate::conversations::send;
use crate::on_both_backends;
use crate::support::{Client, Resp, TestApp};

on_both_backends!(
    a_server_starts_with_its_defaults_and_friends_join_by_invite,
    invite_uses_are_exact_under_concurrent_joins,
    channels_and_categories_are_managed_in_order,
    settings_transfer_leave_and_delete,
    slowmode_keeps_the_draft_and_says_how_long,
    a_deleted_channel_leaves_every_open_stream,
);

/// The id in a `/s/{id}` redirect.
pub fn server_id(response: &Resp) -> i64 {
    let location = response.location().expect("redirect to the server");
    location.trim_start_matches("/s/").split(['/', '?', '#']).next().expect("id").parse().expect("numeric id")
}

pub async fn create_server(client: &mut Client, name: &str) -> i64 {
    let response = client.post("/servers", &[("name", name)]).await;
    assert_eq!(response.status, StatusCode::SEE_OTHER, "create server: {}", response.body);
    server_id(&response)
}

/// The channel id of `#name` in the server page's channel list.
pub fn channel_id(page: &str, name: &str) -> i64 {
    let needle = format!("<span aria-hidden=\"true\">#</span>{name} ");
    let at = page.find(&needle).unwrap_or_else(|| panic!("#{name} in the channel list:\n{page}"));
    let before = &page[..at];
    let href = before.rfind("href=\"/c/").expect("a channel link");
    before[href + 9..].split('"').next().expect("id").parse().expect("numeric id")
}

/// Creates an invite and returns its code, read off the invites page.
pub async fn invite(client: &mut Client, server: i64, expires: &str, max_uses: &str) -> String {
    let before = client.get(&format!("/s/{server}/invites")).await.body;
    client.post(&format!("/s/{server}/invites"), &[("expires", expires), ("max_uses", max_uses)]).await.assert_redirect(&format!("/s/{server}/invites"));
    let after = client.get(&format!("/s/{server}/invites")).await.body;
    after
        .split("class=\"invite-link\">/i/")
        .skip(1)
        .filter_map(|s| s.split('<').next())
        .find(|code| !before.contains(&format!("/i/{code}")))
        .expect("a new invite on the page")
        .to_string()
}

async fn a_server_starts_with_its_defaults_and_friends_join_by_invite(app: TestApp) {
    let mut alice = app.client();
    alice.register("alice").await;
    let server = create_server(&mut alice, "Rustaceans").await;
    let page = alice.get(&format!("/s/{server}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<h1 id=\"server-title\">Rustaceans</h1>"));
    assert!(page.body.contains("Text channels") && page.body.contains("Voice channels"), "the default categories");
    assert!(page.body.contains("General <small class=\"muted\">(voice)</small>"), "the default voice channel");
    assert!(page.body.contains("title=\"Rustaceans\" aria-current=\"page\""), "the rail marks the open server");
    let general = channel_id(&page.body, "general");
    assert!(page.body.contains("<span class=\"badge\">Owner</span>"));

    // A visitor with the link sees the server and registers on the way in.
    let code = invite(&mut alice, server, "10080", "0").await;
    assert!(code.len() >= 8 && code.chars().all(|c| c.is_ascii_alphanumeric()), "code {code}");
    let mut bob = app.client().fresh();
    let landing = bob.get(&format!("/i/{code}")).await;
    assert_eq!(landing.status, StatusCode::OK);
    assert!(landing.body.contains("Rustaceans") && landing.body.contains("1 member"));
    assert!(landing.body.contains(&format!("href=\"/register?next=/i/{code}\"")), "{}", landing.body);
    let register_page = bob.get(&format!("/register?next=/i/{code}")).await;
    assert!(register_page.body.contains(&format!("name=\"next\" value=\"/i/{code}\"")));
    let registered = bob
        .post("/register", &[("username", "bob"), ("email", "bob@example.org"), ("password", crate::support::PASSWORD), ("next", &format!("/i/{code}"))])
        .await;
    registered.assert_redirect(&format!("/i/{code}"));
    let landing = bob.get(&format!("/i/{code}")).await;
    assert!(landing.body.contains(">Accept invite</button>"));
    // Looking at the invite joined nobody: only the button does.
    assert_eq!(bob.get(&format!("/c/{general}")).await.status, StatusCode::NOT_FOUND);
    bob.post(&format!("/i/{code}"), &[]).await.assert_redirect(&format!("/s/{server}"));
    // Visiting the link again as a member goes straight to the server, using nothing.
    bob.get(&format!("/i/{code}")).await.assert_redirect(&format!("/s/{server}"));

    // Channel messages are conversation messages.
    let hello = send(&mut bob, general, "Hello @alice!").await;
    let channel = alice.get(&format!("/c/{general}")).await;
    assert!(channel.body.contains("<span id=\"title-") && channel.body.contains(">#general</span>"), "channel title");
    assert!(channel.body.contains(&format!("id=\"message-{hello}\"")));
    assert!(channel.body.contains("aria-label=\"Servers\""), "the rail beside the channel");
    let home = alice.get(&format!("/s/{server}")).await;
    assert!(home.body.contains("aria-label=\"1 mentions of you\""), "a mention badge on #general: {}", home.body);
    assert!(!alice.get("/").await.body.contains(&format!("id=\"sidebar-{general}\"")), "channels stay out of the DM list");

    // Nobody else learns the server exists.
    let mut carol = app.client().fresh();
    carol.register("carol").await;
    for path in [format!("/s/{server}"), format!("/c/{general}"), format!("/s/{server}/settings"), format!("/s/{server}/invites")] {
        assert_eq!(carol.get(&path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(carol.post(&format!("/c/{general}/messages"), &[("body", "hi"), ("client_id", "c1")]).await.status, StatusCode::NOT_FOUND);
    let search = carol.get("/search?q=Hello").await;
    assert!(!search.body.contains(&format!("message-{hello}")), "search shows no channel message to outsiders");
    // A bad or revoked code is a plain 404 / 410.
    assert_eq!(carol.get("/i/nosuchcode1").await.status, StatusCode::NOT_FOUND);
    alice.post(&format!("/s/{server}/invites/{code}/revoke"), &[]).await.assert_redirect(&format!("/s/{server}/invites"));
    let revoked = carol.get(&format!("/i/{code}")).await;
    assert_eq!(revoked.status, StatusCode::GONE);
    assert!(revoked.body.contains("This invite was revoked."));
    assert_eq!(carol.post(&format!("/i/{code}"), &[]).await.status, StatusCode::GONE);
    assert_eq!(carol.get(&format!("/s/{server}")).await.status, StatusCode::NOT_FOUND);
}

async fn invite_uses_are_exact_under_concurrent_joins(app: TestApp) {
    let mut alice = app.client();
    alice.register("alice").await;
    let server = create_server(&mut alice, "Busy").await;
    let code = invite(&mut alice, server, "60", "25").await;
    let mut people = Vec::new();
    for n in 0..50 {
        // Each from its own address: registration is limited per address.
        let mut person = app.client().fresh().from_ip([127, 0, 1, n as u8 + 1]);
        person.register(&format!("joiner{n}")).await;
        people.push(person);
    }
    let joins = people.iter_mut().map(|p| {
        let path = format!("/i/{code}");
        async move { p.post(&path, &[]).await.status }
    });
    let statuses = futures_util::future::join_all(joins).await;
    let joined = statuses.iter().filter(|s| **s == StatusCode::SEE_OTHER).count();
    let refused = statuses.iter().filter(|s| **s == StatusCode::GONE).count();
    assert_eq!((joined, refused), (25, 25), "exactly max_uses join: {statuses:?}");
    // An expired invite is refused and says so.
    let late = invite(&mut alice, server, "30", "0").await;
    match &app.state.store.db {
        reale::store::Db::Sqlite(pool) => sqlx::query("UPDATE invites SET expires_at = 1 WHERE code = $1").bind(&late).execute(pool).await.map(|_| ()),
        reale::store::Db::Postgres(pool) => sqlx::query("UPDATE invites SET expires_at = 1 WHERE code = $1").bind(&late).execute(pool).await.map(|_| ()),
    }
    .expect("expire the invite");
    let mut latecomer = app.client().fresh().from_ip([127, 0, 1, 200]);
    latecomer.register("latecomer").await;
    let page = latecomer.get(&format!("/i/{late}")).await;
    assert_eq!(page.status, StatusCode::GONE);
    assert!(page.body.contains("This invite has expired."));
    assert_eq!(latecomer.post(&format!("/i/{late}"), &[]).await.status, StatusCode::GONE);
    let home = alice.get(&format!("/s/{server}")).await;
    assert!(home.body.contains("Members (26)"), "owner + 25");
    // Used up: no longer among the active invites.
    assert!(!alice.get(&format!("/s/{server}/invites")).await.body.contains(&format!("/i/{code}")));
}

async fn channels_and_categories_are_managed_in_order(app: TestApp) {
    let mut alice = app.client();
    alice.register("alice").await;
    let server = create_server(&mut alice, "Club").await;
    let manage = format!("/s/{server}/channels");
    // A bad name keeps what was typed and says why.
    let bad = alice.post(&manage, &[("kind", "text"), ("name", " - "), ("category", "none")]).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("Give the channel a name.") && bad.body.contains("value=\" - \""));
    let created = alice.post(&manage, &[("kind", "text"), ("name", "Off Topic"), ("category", "none")]).await;
    assert_eq!(created.status, StatusCode::SEE_OTHER);
    let page = alice.get(&format!("/s/{server}")).await.body;
    let general = channel_id(&page, "general");
    let off_topic = channel_id(&page, "off-topic");
    assert!(page.find(">off-topic ").unwrap() < page.find(">general ").unwrap(), "uncategorised channels come first");

    // Into the text category, then above #general.
    let category: i64 = page.split("id=\"category-").nth(1).and_then(|s| s.split('"').next()).unwrap().parse().unwrap();
    alice
        .post(&format!("{manage}/{off_topic}"), &[("name", "off-topic"), ("topic", "Anything goes"), ("slowmode", "0"), ("category", &category.to_string())])
        .await
        .assert_redirect(&manage);
    let page = alice.get(&format!("/s/{server}")).await.body;
    assert!(page.find(">general ").unwrap() < page.find(">off-topic ").unwrap());
    alice.post(&format!("{manage}/{off_topic}/up"), &[]).await.assert_redirect(&manage);
    let page = alice.get(&format!("/s/{server}")).await.body;
    assert!(page.find(">off-topic ").unwrap() < page.find(">general ").unwrap(), "moved up");
    assert!(alice.get(&format!("/c/{off_topic}")).await.body.contains("<p class=\"topic\">Anything goes</p>"));

    // Categories: create, rename, order, delete (its channels stay).
    alice.post(&format!("/s/{server}/categories"), &[("name", "Projects")]).await.assert_redirect(&manage);
    let page = alice.get(&manage).await.body;
    let projects: i64 = page.split("id=\"category-name-").filter_map(|s| s.split('"').next()?.parse().ok()).last().unwrap();
    alice.post(&format!("/s/{server}/categories/{projects}/rename"), &[("name", "Work")]).await.assert_redirect(&manage);
    alice.post(&format!("/s/{server}/categories/{projects}/up"), &[]).await.assert_redirect(&manage);
    let page = alice.get(&manage).await.body;
    assert!(page.find("value=\"Work\"").unwrap() < page.find("value=\"Voice channels\"").unwrap());
    alice.post(&format!("/s/{server}/categories/{category}/delete"), &[]).await.assert_redirect(&manage);
    let page = alice.get(&format!("/s/{server}")).await.body;
    assert!(!page.contains(">Text channels<"));
    assert!(page.contains(">general ") && page.contains(">off-topic "), "channels outlive their category");

    // Deleting a channel takes its messages with it.
    send(&mut alice, off_topic, "soon gone").await;
    alice.post(&format!("{manage}/{off_topic}/delete"), &[]).await.assert_redirect(&manage);
    assert_eq!(alice.get(&format!("/c/{off_topic}")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(alice.get(&format!("/c/{general}")).await.status, StatusCode::OK);

    // Members without MANAGE_CHANNELS see the channels but cannot manage them.
    let code = invite(&mut alice, server, "0", "0").await;
    let mut bob = app.client().fresh();
    bob.register("bob").await;
    bob.post(&format!("/i/{code}"), &[]).await;
    assert_eq!(bob.get(&manage).await.status, StatusCode::FORBIDDEN);
    assert_eq!(bob.post(&manage, &[("kind", "text"), ("name", "mine"), ("category", "none")]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(bob.post(&format!("{manage}/{general}/delete"), &[]).await.status, StatusCode::FORBIDDEN);
    assert!(!bob.get(&format!("/s/{server}")).await.body.contains("Manage channels"));
}

async fn settings_transfer_leave_and_delete(app: TestApp) {
    let mut alice = app.client();
    alice.register("alice").await;
    let server = create_server(&mut alice, "Book club").await;
    let settings = format!("/s/{server}/settings");
    let renamed = alice.post(&settings, &[("name", ""), ("description", "We read")]).await;
    assert_eq!(renamed.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(renamed.body.contains("Give the server a name.") && renamed.body.contains(">We read</textarea>"));
    alice.post(&settings, &[("name", "Readers"), ("description", "We read books")]).await.assert_redirect(&settings);
    let home = alice.get(&format!("/s/{server}")).await.body;
    assert!(home.contains("<h1 id=\"server-title\">Readers</h1>") && home.contains("We read books"));
    let general = channel_id(&home, "general");

    let code = invite(&mut alice, server, "0", "0").await;
    let mut bob = app.client().fresh();
    bob.register("bob").await;
    bob.post(&format!("/i/{code}"), &[]).await;
    assert_eq!(bob.post(&settings, &[("name", "Mine"), ("description", "")]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(bob.post(&format!("/s/{server}/delete"), &[("confirm", "Readers")]).await.status, StatusCode::FORBIDDEN);
    // The owner cannot leave without handing the server on.
    assert_eq!(alice.post(&format!("/s/{server}/leave"), &[]).await.status, StatusCode::FORBIDDEN);
    let wrong = alice.post(&format!("/s/{server}/transfer"), &[("username", "nobody")]).await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong.body.contains("value=\"nobody\""));
    alice.post(&format!("/s/{server}/transfer"), &[("username", "bob")]).await.assert_redirect(&settings);
    assert!(bob.get(&settings).await.body.contains("Delete server"), "bob owns it now");
    alice.post(&format!("/s/{server}/leave"), &[]).await.assert_redirect("/");
    assert_eq!(alice.get(&format!("/s/{server}")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(alice.get(&format!("/c/{general}")).await.status, StatusCode::NOT_FOUND);

    let typo = bob.post(&format!("/s/{server}/delete"), &[("confirm", "readers")]).await;
    assert_eq!(typo.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(typo.body.contains("Type the server&#39;s name exactly") || typo.body.contains("Type the server's name exactly"));
    bob.post(&format!("/s/{server}/delete"), &[("confirm", "Readers")]).await.assert_redirect("/");
    assert_eq!(bob.get(&format!("/s/{server}")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(bob.get(&format!("/c/{general}")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(bob.get(&format!("/i/{code}")).await.status, StatusCode::NOT_FOUND);
}

async fn slowmode_keeps_the_draft_and_says_how_long(app: TestApp) {
    let mut alice = app.client();
    alice.register("alice").await;
    let server = create_server(&mut alice, "Calm").await;
    let general = channel_id(&alice.get(&format!("/s/{server}")).await.body, "general");
    alice
        .post(&format!("/s/{server}/channels/{general}"), &[("name", "general"), ("topic", ""), ("slowmode", "30"), ("category", "none")])
        .await
        .assert_redirect(&format!("/s/{server}/channels"));
    let code = invite(&mut alice, server, "0", "0").await;
    let mut bob = app.client().fresh();
    bob.register("bob").await;
    bob.post(&format!("/i/{code}"), &[]).await;
    assert!(bob.get(&format!("/c/{general}")).await.body.contains("Slowmode is on: one message every 30 seconds."));
    send(&mut bob, general, "first").await;
    let second = bob.post(&format!("/c/{general}/messages"), &[("body", "second thought"), ("client_id", "b2")]).await;
    assert_eq!(second.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(second.body.contains("Slowmode is on: you can send again in 30 seconds.") || second.body.contains("in 29 seconds."), "{}", second.body);
    assert!(second.body.contains(">second thought</textarea>"), "the draft is kept");
    // The owner (MANAGE_MESSAGES) is not slowed.
    send(&mut alice, general, "one").await;
    send(&mut alice, general, "two").await;
}

async fn a_deleted_channel_leaves_every_open_stream(app: TestApp) {
    let mut alice = app.client();
    alice.register("alice").await;
    let server = create_server(&mut alice, "Live").await;
    let manage = format!("/s/{server}/channels");
    alice.post(&manage, &[("kind", "text"), ("name", "news"), ("category", "none")]).await;
    let news = channel_id(&alice.get(&format!("/s/{server}")).await.body, "news");
    let code = invite(&mut alice, server, "0", "0").await;
    let mut bob = app.client().fresh();
    bob.register("bob").await;
    bob.post(&format!("/i/{code}"), &[]).await;
    let mut stream = bob.events("/events", None).await;
    assert_eq!(stream.status, StatusCode::OK);
    send(&mut alice, news, "breaking").await;
    let mut saw_message = false;
    while let Some(event) = stream.next(Duration::from_secs(3)).await {
        if event.data.contains("breaking") {
            // A channel has no sidebar entry or receipts: the frame is the message alone.
            assert!(!event.data.contains(&format!("preview-{news}")), "no sidebar preview in a channel's frame: {}", event.data);
            assert!(!event.data.contains("Seen"), "no receipts in a channel's frame: {}", event.data);
            saw_message = true;
            break;
        }
    }
    assert!(saw_message, "bob's stream carries the channel's messages");
    alice.post(&format!("{manage}/{news}/delete"), &[]).await.assert_redirect(&manage);
    let mut removed = false;
    while let Some(event) = stream.next(Duration::from_secs(3)).await {
        if event.data.contains(&format!("conversation-{news}")) || event.data.contains("removed") {
            removed = true;
            break;
        }
    }
    assert!(removed, "bob's stream is told the channel is gone");
}
