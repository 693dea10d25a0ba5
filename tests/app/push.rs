//! Issue 12, Web Push (acceptance 6): the test is the push service. Bob registers its
//! endpoint through `POST /push/subscriptions`; it receives and decrypts a push for
//! Alice's DM, a mention in a group and a reply to him, none for Bob's own message, a group message
//! that is not for him, a muted conversation or one he has open; a 410 from it removes
//! the subscription.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};

use crate::conversations::{conversation_id, open_dm, send};
use crate::server_roles::{everyone_id, set_override};
use crate::servers::{channel_id, create_server, invite};
use crate::support::push_service::{PushService, assert_vapid};
use crate::support::{Backend, Client, FLOW_ARGS, TestApp};

/// How long a push may take to arrive, and so how long we wait to be sure none comes.
const WAIT: Duration = Duration::from_secs(5);

macro_rules! push_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test] async fn $name() { if let Some(app) = super::spawn(crate::support::Backend::Sqlite).await { super::$name(app).await; } } )* }
        mod postgres { $( #[tokio::test] async fn $name() { if let Some(app) = super::spawn(crate::support::Backend::Postgres).await { super::$name(app).await; } } )* }
    };
}

push_tests!(
    bob_is_pushed_a_dm_a_mention_and_a_reply_but_not_his_own_a_muted_or_an_open_one,
    a_push_service_answering_410_removes_the_subscription,
    in_a_server_only_those_who_see_the_channel_and_want_it_are_pushed,
    only_well_formed_subscriptions_to_allowed_endpoints_are_accepted,
    a_call_rings_as_a_push_unless_the_conversation_is_muted,
);

async fn spawn(backend: Backend) -> Option<TestApp> {
    let mut args = FLOW_ARGS.to_vec();
    args.push("--push-allow-loopback");
    TestApp::spawn_with(backend, &args).await
}

async fn person(app: &TestApp, name: &str) -> Client {
    let mut client = app.client();
    client.register(name).await;
    client
}

async fn subscribe(client: &mut Client, service: &PushService, path: &str) {
    let response = client.post_raw("/push/subscriptions", service.subscription_json(path).into_bytes(), "application/json").await;
    assert_eq!(response.status, StatusCode::CREATED, "subscribing: {}", response.body);
}

/// The VAPID public key the settings page hands to the browser.
fn served_key(settings: &str) -> String {
    settings.split("data-vapid-key=\"").nth(1).and_then(|s| s.split('"').next()).expect("the page serves the VAPID key").to_string()
}

async fn nothing_arrives(service: &PushService, why: &str) {
    if let Some(request) = service.next_request(WAIT).await {
        panic!("no push expected ({why}), got one to {}", request.path);
    }
}

async fn bob_is_pushed_a_dm_a_mention_and_a_reply_but_not_his_own_a_muted_or_an_open_one(app: TestApp) {
    let service = PushService::start().await;
    let mut alice = person(&app, "alice").await;
    let mut bob = person(&app, "bob").await;
    let _carol = person(&app, "carol").await;
    subscribe(&mut bob, &service, "/push/bob").await;
    let settings = bob.get("/settings/notifications").await.body;
    let origin = format!("http://{}", service.addr);
    assert!(settings.contains(&format!("delivered by {origin}")), "Settings → Notifications lists this device's subscription:\n{settings}");
    assert!(settings.contains("Push notifications need JavaScript"), "and says push needs JavaScript");

    // A DM from Alice: title is who wrote, body the text, url the message.
    let dm = open_dm(&mut alice, "bob").await;
    let hello = send(&mut alice, dm, "Lunch at **noon**, Bob?").await;
    let push = service.expect_push(WAIT).await;
    assert_eq!(push.path, "/push/bob");
    assert_eq!((push.title.as_str(), push.body.as_str()), ("alice", "Lunch at noon, Bob?"));
    assert_eq!(push.url, format!("/c/{dm}/m/{hello}"));
    assert_vapid(&push.authorization, &served_key(&settings), &origin);

    // Bob's own message pushes nobody (he is the only one subscribed).
    send(&mut bob, dm, "Sure, see you there").await;
    nothing_arrives(&service, "Bob's own message").await;

    // In a group: a message for everyone does not push; one that mentions Bob does.
    let group = conversation_id(&alice.post("/groups", &[("name", "Lunch crew"), ("members", "bob, carol")]).await);
    send(&mut alice, group, "Where shall we go?").await;
    nothing_arrives(&service, "a group message that is not for Bob").await;
    let mention = send(&mut alice, group, "@bob can you book a table?").await;
    let push = service.expect_push(WAIT).await;
    assert_eq!(push.title, "alice in Lunch crew");
    assert!(push.body.contains("can you book a table?"), "{push:?}");
    assert_eq!(push.url, format!("/c/{group}/m/{mention}"));
    // A reply to Bob's message pushes him, though it names nobody.
    let snacks = send(&mut bob, group, "I'll bring snacks").await;
    nothing_arrives(&service, "Bob's own group message").await;
    let reply = alice.post(&format!("/c/{group}/messages"), &[("body", "Great, thanks!"), ("client_id", "reply-1"), ("reply_to", &snacks.to_string())]).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "reply: {}", reply.body);
    let push = service.expect_push(WAIT).await;
    assert_eq!((push.title.as_str(), push.body.as_str()), ("alice in Lunch crew", "Great, thanks!"));

    // Bob has the DM open in a visible tab: no push while he looks; after, again.
    let looking = bob.post("/push/focus", &[("conversation_id", &dm.to_string()), ("visible", "1")]).await;
    assert_eq!(looking.status, StatusCode::NO_CONTENT);
    send(&mut alice, dm, "Are you reading this?").await;
    nothing_arrives(&service, "Bob is looking at the DM").await;
    bob.post("/push/focus", &[("conversation_id", &dm.to_string()), ("visible", "0")]).await;
    send(&mut alice, dm, "Now you are away").await;
    assert_eq!(service.expect_push(WAIT).await.body, "Now you are away");
    // Carol may not report focus on a DM she is not in.
    let mut carol = app.client();
    carol.login("carol", crate::support::PASSWORD).await;
    assert_eq!(carol.post("/push/focus", &[("conversation_id", &dm.to_string()), ("visible", "1")]).await.status, StatusCode::NOT_FOUND);

    // Bob mutes the DM until he turns it back on: no push, and the sidebar says muted.
    let muted = bob.post(&format!("/c/{dm}/notifications"), &[("level", "all"), ("mute", "forever")]).await;
    muted.assert_redirect(&format!("/c/{dm}#notifications"));
    send(&mut alice, dm, "Hello? Anyone?").await;
    nothing_arrives(&service, "the DM is muted").await;
    let page = bob.get(&format!("/c/{group}")).await.body;
    let item = page.split(&format!("id=\"sidebar-{dm}\"")).nth(1).and_then(|s| s.split("</li>").next()).expect("the DM in the sidebar");
    assert!(item.contains("(muted)"), "a muted conversation says so: {item}");
    assert!(page.contains(&format!("<li id=\"sidebar-{dm}\" class=\"muted-conversation\">")), "and is styled muted");
    assert!(bob.get(&format!("/c/{dm}")).await.body.contains("Muted until you turn it back on"));
    // Unmuted, set to mentions only: a plain DM does not push, a mention does.
    bob.post(&format!("/c/{dm}/notifications"), &[("level", "mentions"), ("mute", "off")]).await.assert_redirect(&format!("/c/{dm}#notifications"));
    send(&mut alice, dm, "Just chatting").await;
    nothing_arrives(&service, "Bob wants only mentions from the DM").await;
    send(&mut alice, dm, "@bob this one is for you").await;
    assert!(service.expect_push(WAIT).await.body.contains("this one is for you"));
    // Bob blocks Alice: her mentions in the group they share reach him no more.
    bob.post("/u/alice/block", &[]).await.assert_redirect("/u/alice");
    send(&mut alice, group, "@bob why so quiet?").await;
    nothing_arrives(&service, "Bob blocked Alice").await;
}

async fn a_push_service_answering_410_removes_the_subscription(app: TestApp) {
    let service = PushService::start().await;
    let mut alice = person(&app, "alice").await;
    let mut bob = person(&app, "bob").await;
    subscribe(&mut bob, &service, "/push/gone").await;
    let origin = format!("delivered by http://{}", service.addr);
    assert!(bob.get("/settings/notifications").await.body.contains(&origin));

    service.answer_with(410);
    let dm = open_dm(&mut alice, "bob").await;
    send(&mut alice, dm, "Is this thing on?").await;
    service.next_request(WAIT).await.expect("the push is tried once");
    // The subscription is gone: the page no longer lists it, and nothing more is sent.
    let mut listed = true;
    for _ in 0..50 {
        let settings = bob.get("/settings/notifications").await.body;
        listed = settings.contains(&origin);
        if !listed {
            assert!(settings.contains("Push notifications are off for this device."));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!listed, "Settings → Notifications no longer lists the subscription");
    service.answer_with(201);
    send(&mut alice, dm, "Hello again").await;
    nothing_arrives(&service, "the subscription was removed").await;
}

async fn only_well_formed_subscriptions_to_allowed_endpoints_are_accepted(app: TestApp) {
    let service = PushService::start().await;
    let mut bob = person(&app, "bob").await;
    let good: serde_json::Value = serde_json::from_str(&service.subscription_json("/push/x")).expect("json");
    let with = |endpoint: &str, p256dh: Option<&str>, auth: Option<&str>| {
        let mut value = good.clone();
        value["endpoint"] = endpoint.into();
        if let Some(key) = p256dh {
            value["keys"]["p256dh"] = key.into();
        }
        if let Some(secret) = auth {
            value["keys"]["auth"] = secret.into();
        }
        value.to_string().into_bytes()
    };
    for (body, why) in [
        (with("https://127.0.0.1/push", None, None), "must be on a public address"),
        (with("https://10.1.2.3/push", None, None), "must be on a public address"),
        (with("https://[::1]/push", None, None), "must be on a public address"),
        (with("http://push.example.com/push", None, None), "must be an https:// URL"),
        (with("http://localhost:9/push", None, None), "must be an https:// URL"),
        (with(&service.endpoint("/x"), Some("AAAA"), None), "not a P-256 public key"),
        (with(&service.endpoint("/x"), None, Some("AAAA")), "must be 16 bytes"),
        (b"{\"endpoint\": 5}".to_vec(), "PushSubscription as JSON"),
    ] {
        let response = bob.post_raw("/push/subscriptions", body, "application/json").await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{why}");
        assert!(response.body.contains(why), "says {why:?}: {}", response.body);
    }
    // Signed out: to the login page. From another site: refused.
    let mut stranger = app.client();
    let response = stranger.post_raw("/push/subscriptions", service.subscription_json("/x").into_bytes(), "application/json").await;
    assert_eq!(response.location(), Some("/login"));
    let forged = Request::builder()
        .method(Method::POST)
        .uri("/push/subscriptions")
        .header("content-type", "application/json")
        .header("sec-fetch-site", "cross-site")
        .body(Body::from(service.subscription_json("/x")))
        .expect("request");
    assert_eq!(bob.send(forged).await.status, StatusCode::FORBIDDEN);

    // DELETE removes it; the plain form does too.
    subscribe(&mut bob, &service, "/push/x").await;
    let delete = |endpoint: String| {
        Request::builder()
            .method(Method::DELETE)
            .uri("/push/subscriptions")
            .header("content-type", "application/json")
            .header("sec-fetch-site", "same-origin")
            .body(Body::from(serde_json::json!({ "endpoint": endpoint }).to_string()))
            .expect("request")
    };
    assert_eq!(bob.send(delete(service.endpoint("/push/x"))).await.status, StatusCode::NO_CONTENT);
    assert_eq!(bob.send(delete(service.endpoint("/push/x"))).await.status, StatusCode::NOT_FOUND);
    subscribe(&mut bob, &service, "/push/y").await;
    let settings = bob.get("/settings/notifications").await.body;
    let action = settings.split("action=\"/push/subscriptions/").nth(1).and_then(|s| s.split('"').next()).expect("a Turn off form");
    let mut alice = person(&app, "alice").await;
    assert_eq!(alice.post(&format!("/push/subscriptions/{action}"), &[]).await.status, StatusCode::NOT_FOUND, "not Alice's");
    bob.post(&format!("/push/subscriptions/{action}"), &[]).await.assert_redirect("/settings/notifications");
    assert!(bob.get("/settings/notifications").await.body.contains("Push notifications are off for this device."));
}

async fn in_a_server_only_those_who_see_the_channel_and_want_it_are_pushed(app: TestApp) {
    let service = PushService::start().await;
    let mut alice = person(&app, "alice").await;
    let mut bob = person(&app, "bob").await;
    let server = create_server(&mut alice, "Bakery").await;
    alice.post(&format!("/s/{server}/channels"), &[("kind", "text"), ("name", "kitchen"), ("category", "none")]).await;
    let home = alice.get(&format!("/s/{server}")).await.body;
    let (general, kitchen) = (channel_id(&home, "general"), channel_id(&home, "kitchen"));
    let everyone = everyone_id(&mut alice, server).await;
    set_override(&mut alice, server, &format!("channel/{kitchen}"), ("role", &everyone.to_string()), &[("view_channel", "deny")]).await;
    let code = invite(&mut alice, server, "0", "0").await;
    bob.post(&format!("/i/{code}"), &[]).await.assert_redirect(&format!("/s/{server}"));
    subscribe(&mut bob, &service, "/push/bob").await;

    // Mentioned where he cannot look: nothing (not even that the channel exists).
    send(&mut alice, kitchen, "@bob the secret recipe is ready").await;
    nothing_arrives(&service, "Bob cannot see #kitchen").await;
    let hello = send(&mut alice, general, "@bob welcome to the bakery").await;
    let push = service.expect_push(WAIT).await;
    assert_eq!((push.title.as_str(), push.url.clone()), ("alice in #general", format!("/c/{general}/m/{hello}")));

    // The whole server muted: channel mentions stay quiet.
    bob.post(&format!("/s/{server}/notifications"), &[("level", "all"), ("mute", "forever")]).await.assert_redirect(&format!("/s/{server}#notifications"));
    send(&mut alice, general, "@bob are you there?").await;
    nothing_arrives(&service, "Bob muted the server").await;
    // Unmuted but set to Nothing for the server; #general set to All messages wins.
    bob.post(&format!("/s/{server}/notifications"), &[("level", "nothing"), ("mute", "off")]).await.assert_redirect(&format!("/s/{server}#notifications"));
    send(&mut alice, general, "@bob still quiet?").await;
    nothing_arrives(&service, "the server is set to Nothing").await;
    let channel = bob.get(&format!("/c/{general}")).await.body;
    assert!(channel.contains("As the server (Nothing)"), "the channel offers the server's level as its default");
    bob.post(&format!("/c/{general}/notifications"), &[("level", "all"), ("mute", "")]).await.assert_redirect(&format!("/c/{general}#notifications"));
    send(&mut alice, general, "@bob the channel's own level wins").await;
    assert!(service.expect_push(WAIT).await.body.contains("the channel's own level wins"));
}

async fn a_call_rings_as_a_push_unless_the_conversation_is_muted(app: TestApp) {
    let service = PushService::start().await;
    let mut alice = person(&app, "alice").await;
    let mut bob = person(&app, "bob").await;
    subscribe(&mut bob, &service, "/push/bob").await;
    let dm = open_dm(&mut alice, "bob").await;

    alice.post(&format!("/c/{dm}/call"), &[("video", "true")]).await.assert_redirect(&format!("/c/{dm}/call?join=1"));
    let push = service.expect_push(WAIT).await;
    assert_eq!((push.title.as_str(), push.body.as_str()), ("alice", "Incoming video call"));
    assert_eq!(push.url, format!("/c/{dm}/call"));
    let page = bob.get("/").await.body;
    let call = page.split("name=\"call\" value=\"").nth(1).and_then(|s| s.split('"').next()).expect("the banner's call").to_string();
    bob.post(&format!("/c/{dm}/call/decline"), &[("call", &call)]).await.assert_redirect(&format!("/c/{dm}"));

    // Muted: the next call rings on his pages only.
    bob.post(&format!("/c/{dm}/notifications"), &[("level", "all"), ("mute", "forever")]).await.assert_redirect(&format!("/c/{dm}#notifications"));
    alice.post(&format!("/c/{dm}/call"), &[("video", "false")]).await.assert_redirect(&format!("/c/{dm}/call?join=1"));
    nothing_arrives(&service, "Bob muted the DM").await;
    assert!(bob.get("/").await.body.contains("alice is calling"));
}
