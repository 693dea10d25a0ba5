//! Roles and overrides as people use them: a role that lets Bob manage channels until
//! it is taken away, a private channel that vanishes for Bob (page, search, server page,
//! live stream) until he gets the role it is for, a member override that stops him
//! sending, a synced channel that follows its category until it gets its own overrides,
//! and a moderator held to the hierarchy — each action in the audit log.

use std::time::Duration;

use axum::http::StatusCode;

use crate::conversations::send;
use crate::on_both_backends;
use crate::servers::{channel_id, create_server, invite};
use crate::support::{Client, TestApp};

on_both_backends!(
    a_role_with_manage_channels_lets_bob_manage_them_until_it_is_taken_away,
    a_private_channel_does_not_exist_for_bob_until_he_is_a_mod,
    a_member_override_stops_bob_sending_and_keeps_his_draft,
    a_synced_channel_follows_its_category_until_it_gets_its_own_overrides,
    a_moderator_cannot_edit_a_higher_role_or_grant_what_they_lack,
);

/// How long a stream is given to deliver, and to stay silent about what it must not.
const WAIT: Duration = Duration::from_secs(3);

struct Server {
    id: i64,
    general: i64,
}

/// Alice, Bob, and Alice's server that Bob joined.
async fn alice_and_bob(app: &TestApp) -> (Client, Client, Server) {
    let (mut alice, mut bob) = (app.client(), app.client().fresh());
    alice.register("alice").await;
    bob.register("bob").await;
    let server = server_with(&mut alice, &mut [&mut bob]).await;
    (alice, bob, server)
}

/// Alice's server with `people` joined by invite.
async fn server_with(alice: &mut Client, people: &mut [&mut Client]) -> Server {
    let id = create_server(alice, "Guild").await;
    let general = channel_id(&alice.get(&format!("/s/{id}")).await.body, "general");
    let code = invite(alice, id, "0", "0").await;
    for person in people.iter_mut() {
        person.post(&format!("/i/{code}"), &[]).await.assert_redirect(&format!("/s/{id}"));
    }
    Server { id, general }
}

pub(crate) async fn user_id(app: &TestApp, username: &str) -> i64 {
    reale::conversations::store::user_by_username(&app.state.store, username).await.expect("query").expect("user").id
}

/// The id of the role called `name`, read off the roles page.
pub(crate) async fn role_id(client: &mut Client, server: i64, name: &str) -> i64 {
    let page = client.get(&format!("/s/{server}/roles")).await.body;
    let at = page.find(&format!(">{name} <small")).unwrap_or_else(|| panic!("role {name} on the page:\n{page}"));
    let before = &page[..at];
    let id = before.rfind("id=\"role-").expect("role heading");
    before[id + 9..].split('"').next().expect("id").parse().expect("numeric id")
}

pub(crate) async fn create_role(client: &mut Client, server: i64, name: &str, permissions: &[&str]) -> i64 {
    let mut form = vec![("name", name), ("color", "")];
    form.extend(permissions.iter().map(|p| ("permission", *p)));
    client.post(&format!("/s/{server}/roles"), &form).await.assert_redirect(&format!("/s/{server}/roles"));
    role_id(client, server, name).await
}

/// Sets `user`'s roles to exactly `roles` (among those the client may assign).
pub(crate) async fn set_roles(client: &mut Client, server: i64, user: i64, roles: &[i64]) -> crate::support::Resp {
    let ids: Vec<String> = roles.iter().map(i64::to_string).collect();
    let form: Vec<(&str, &str)> = ids.iter().map(|id| ("role", id.as_str())).collect();
    client.post(&format!("/s/{server}/members/{user}/roles"), &form).await
}

/// Adds an override on `target` ("channel/3", "category/2") for a role or a username,
/// then sets each (permission, "allow" | "deny").
pub(crate) async fn set_override(client: &mut Client, server: i64, target: &str, subject: (&str, &str), choices: &[(&str, &str)]) {
    let page = format!("/s/{server}/permissions/{target}");
    let (kind, value) = subject;
    let added = client.post(&page, &[(if kind == "role" { "role" } else { "username" }, value)]).await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "add override: {}", added.body);
    let location = added.location().expect("redirect").to_string();
    let anchor = location.split("#override-").nth(1).expect("anchor to the override");
    let (subject_kind, subject_id) = anchor.split_once('-').expect("kind-id");
    client.post(&format!("{page}/{subject_kind}/{subject_id}"), choices).await.assert_redirect(&location);
}

pub(crate) async fn everyone_id(client: &mut Client, server: i64) -> i64 {
    role_id(client, server, "@everyone").await
}

/// (action, actor, target) of the server's audit rows, oldest first.
async fn audit(app: &TestApp, server: i64) -> Vec<(String, String, String)> {
    let rows = reale::servers::audit::list(&app.state.store, server, None, None, None).await.expect("audit");
    rows.into_iter().rev().map(|r| (r.action, r.actor_name.unwrap_or_default(), r.target_name)).collect()
}

fn has(rows: &[(String, String, String)], action: &str, actor: &str, target: &str) -> bool {
    rows.iter().any(|(a, who, t)| a == action && who == actor && t == target)
}

async fn a_role_with_manage_channels_lets_bob_manage_them_until_it_is_taken_away(app: TestApp) {
    let (mut alice, mut bob, server) = alice_and_bob(&app).await;
    let (s, bob_id) = (server.id, user_id(&app, "bob").await);
    let manage = format!("/s/{s}/channels");
    assert_eq!(bob.get(&manage).await.status, StatusCode::FORBIDDEN);

    // A bad colour keeps what was typed and says why.
    let bad = alice.post(&format!("/s/{s}/roles"), &[("name", "Builders"), ("color", "red"), ("permission", "manage_channels")]).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("Give the colour as #rrggbb") && bad.body.contains("value=\"Builders\"") && bad.body.contains("value=\"red\""), "{}", bad.body);
    assert!(bad.body.contains("value=\"manage_channels\" aria-describedby=\"new-role-manage_channels-help\" checked"), "ticked boxes stay ticked");
    let created = alice.post(&format!("/s/{s}/roles"), &[("name", "Builders"), ("color", "#3A7BD5"), ("hoist", "1"), ("permission", "manage_channels")]).await;
    created.assert_redirect(&format!("/s/{s}/roles"));
    let builders = role_id(&mut alice, s, "Builders").await;
    set_roles(&mut alice, s, bob_id, &[builders]).await.assert_redirect(&format!("/s/{s}/members/{bob_id}"));
    assert!(alice.get(&format!("/s/{s}/roles")).await.body.contains(">Builders <small class=\"muted\">1 member</small>"));

    // Bob's name takes the role's colour on the member list, through the page's style block.
    let home = bob.get(&format!("/s/{s}")).await.body;
    assert!(home.contains(&format!(".role-{builders} {{ color: #")), "{home}");
    assert!(home.contains(&format!("<a href=\"/u/bob\" class=\"role-{builders}\">")));
    assert!(home.contains("<style nonce=\""), "CSP allows the block only with the nonce");

    assert_eq!(bob.get(&manage).await.status, StatusCode::OK);
    bob.post(&manage, &[("kind", "text"), ("name", "bobs-corner"), ("category", "none")]).await;
    assert!(alice.get(&format!("/s/{s}")).await.body.contains(">bobs-corner "), "Bob made a channel");
    assert_eq!(bob.get(&format!("/s/{s}/roles")).await.status, StatusCode::FORBIDDEN, "managing channels is not managing roles");

    set_roles(&mut alice, s, bob_id, &[]).await.assert_redirect(&format!("/s/{s}/members/{bob_id}"));
    assert_eq!(bob.get(&manage).await.status, StatusCode::FORBIDDEN);
    assert_eq!(bob.post(&manage, &[("kind", "text"), ("name", "again"), ("category", "none")]).await.status, StatusCode::FORBIDDEN);

    let rows = audit(&app, s).await;
    assert!(has(&rows, "role_create", "alice", "Builders"), "{rows:?}");
    assert_eq!(rows.iter().filter(|(a, _, t)| a == "member_roles" && t == "bob").count(), 2, "{rows:?}");
    assert!(has(&rows, "channel_create", "bob", "bobs-corner"));
}

async fn a_private_channel_does_not_exist_for_bob_until_he_is_a_mod(app: TestApp) {
    let (mut alice, mut bob, server) = alice_and_bob(&app).await;
    let (s, bob_id) = (server.id, user_id(&app, "bob").await);
    let created = alice.post(&format!("/s/{s}/channels"), &[("kind", "text"), ("name", "staff"), ("category", "none")]).await;
    let staff: i64 = created.location().expect("to the channel").trim_start_matches("/c/").parse().expect("id");
    let mods = create_role(&mut alice, s, "Mods", &[]).await;
    let everyone = everyone_id(&mut alice, s).await;

    let mut stream = bob.events("/events", None).await;
    assert_eq!(stream.status, StatusCode::OK);
    let secret = send(&mut alice, staff, "secret plans").await;
    assert!(next_containing(&mut stream, "secret plans").await, "before the override, Bob's stream carries #staff");

    set_override(&mut alice, s, &format!("channel/{staff}"), ("role", &everyone.to_string()), &[("view_channel", "deny")]).await;
    set_override(&mut alice, s, &format!("channel/{staff}"), ("role", &mods.to_string()), &[("view_channel", "allow")]).await;
    let removal = format!("id=\"conversation-{staff}\" aria-label=\"Conversation\"><p class=\"flash\">You are no longer a member");
    assert!(next_containing(&mut stream, &removal).await, "Bob's stream is told #staff is gone");

    // Nothing more of it reaches him: not a later message, while one in #general does.
    send(&mut alice, staff, "after the curtain").await;
    send(&mut alice, server.general, "marker in general").await;
    let mut saw_marker = false;
    let until = tokio::time::Instant::now() + WAIT * 2;
    while let Some(event) = stream.next(until.saturating_duration_since(tokio::time::Instant::now())).await {
        assert!(!event.data.contains("after the curtain"), "a channel Bob cannot see reached his stream");
        saw_marker |= event.data.contains("marker in general");
        if tokio::time::Instant::now() >= until {
            break;
        }
    }
    assert!(saw_marker, "the stream still works for what Bob can see");

    assert_eq!(bob.get(&format!("/c/{staff}")).await.status, StatusCode::NOT_FOUND);
    assert!(!bob.get("/search?q=secret").await.body.contains(&format!("/c/{staff}/m/{secret}")), "gone from his search");
    assert!(!bob.get(&format!("/s/{s}")).await.body.contains(">staff "), "gone from the server page");
    assert_eq!(bob.get(&format!("/s/{s}/permissions/channel/{staff}")).await.status, StatusCode::FORBIDDEN, "no MANAGE_ROLES");
    let page = alice.get(&format!("/s/{s}/permissions/channel/{staff}")).await.body;
    assert!(page.contains("<legend>View channel for @everyone</legend>") && page.contains("<legend>View channel for Mods</legend>"));

    set_roles(&mut alice, s, bob_id, &[mods]).await.assert_redirect(&format!("/s/{s}/members/{bob_id}"));
    assert_eq!(bob.get(&format!("/c/{staff}")).await.status, StatusCode::OK);
    assert!(bob.get(&format!("/s/{s}")).await.body.contains(">staff "));
    assert!(bob.get("/search?q=secret").await.body.contains(&format!("/c/{staff}/m/{secret}")));

    let rows = audit(&app, s).await;
    assert_eq!(rows.iter().filter(|(a, who, t)| a == "override_update" && who == "alice" && t == "#staff").count(), 4, "{rows:?}");
}

/// Whether an event containing `needle` arrives within `WAIT`.
async fn next_containing(stream: &mut crate::support::EventStream, needle: &str) -> bool {
    let until = tokio::time::Instant::now() + WAIT;
    while let Some(event) = stream.next(until.saturating_duration_since(tokio::time::Instant::now())).await {
        if event.data.contains(needle) {
            return true;
        }
    }
    false
}

async fn a_member_override_stops_bob_sending_and_keeps_his_draft(app: TestApp) {
    let (mut alice, mut bob, server) = alice_and_bob(&app).await;
    let (s, general) = (server.id, server.general);
    let page = format!("/s/{s}/permissions/channel/{general}");
    let nobody = alice.post(&page, &[("role", ""), ("username", "nobody")]).await;
    assert_eq!(nobody.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(nobody.body.contains("Type the username of a member of this server.") && nobody.body.contains("value=\"nobody\""));

    set_override(&mut alice, s, &format!("channel/{general}"), ("member", "bob"), &[("send_messages", "deny")]).await;
    assert!(bob.get(&format!("/c/{general}")).await.body.contains("You do not have permission to send messages in this channel."));
    let refused = bob.post(&format!("/c/{general}/messages"), &[("body", "my draft"), ("client_id", "b1")]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains(">my draft</textarea>"), "the draft is kept: {}", refused.body);
    send(&mut alice, general, "alice still talks").await;
    let rows = audit(&app, s).await;
    assert!(has(&rows, "override_update", "alice", "#general"), "{rows:?}");
}

async fn a_synced_channel_follows_its_category_until_it_gets_its_own_overrides(app: TestApp) {
    let (mut alice, mut bob, server) = alice_and_bob(&app).await;
    let (s, general) = (server.id, server.general);
    let channels = alice.get(&format!("/s/{s}/channels")).await.body;
    let category: i64 = channels.split("/permissions/category/").nth(1).and_then(|t| t.split('"').next()).expect("a category permissions link").parse().unwrap();
    assert!(channels.contains(&format!("href=\"/s/{s}/permissions/channel/{general}\" aria-label=\"Permissions of channel general\"")));
    let page = alice.get(&format!("/s/{s}/permissions/channel/{general}")).await.body;
    assert!(page.contains(&format!("follows the permissions of <a href=\"/s/{s}/permissions/category/{category}\">category Text channels</a>")), "{page}");

    let everyone = everyone_id(&mut alice, s).await.to_string();
    set_override(&mut alice, s, &format!("category/{category}"), ("role", &everyone), &[("send_messages", "deny")]).await;
    let cannot = "You do not have permission to send messages in this channel.";
    assert!(bob.get(&format!("/c/{general}")).await.body.contains(cannot), "the synced channel follows its category");

    // Its own override: the channel copies the category's and stops following it.
    set_override(&mut alice, s, &format!("channel/{general}"), ("member", "bob"), &[("add_reactions", "deny")]).await;
    let page = alice.get(&format!("/s/{s}/permissions/channel/{general}")).await.body;
    assert!(!page.contains("follows the permissions of"));
    assert!(page.contains("<legend>Send messages for @everyone</legend>"), "the category's override was copied");
    assert!(alice.get(&format!("/s/{s}/channels")).await.body.contains("in Text channels, own permissions"));
    alice.post(&format!("/s/{s}/permissions/category/{category}/role/{everyone}/delete"), &[]).await;
    assert!(bob.get(&format!("/c/{general}")).await.body.contains(cannot), "the category no longer decides for #general");
}

async fn a_moderator_cannot_edit_a_higher_role_or_grant_what_they_lack(app: TestApp) {
    let (mut alice, mut bob, mut carol) = (app.client(), app.client().fresh(), app.client().fresh());
    alice.register("alice").await;
    bob.register("bob").await;
    carol.register("carol").await;
    let server = server_with(&mut alice, &mut [&mut bob, &mut carol]).await;
    let s = server.id;
    let (alice_id, bob_id, carol_id) = (user_id(&app, "alice").await, user_id(&app, "bob").await, user_id(&app, "carol").await);
    // Each new role goes just above @everyone: Admins > Mods > Helpers.
    let admins = create_role(&mut alice, s, "Admins", &["administrator"]).await;
    let mods = create_role(&mut alice, s, "Mods", &["manage_roles", "kick_members", "view_channel", "send_messages"]).await;
    let helpers = create_role(&mut alice, s, "Helpers", &["kick_members"]).await;
    let page = alice.get(&format!("/s/{s}/roles")).await.body;
    let order: Vec<usize> = ["Admins", "Mods", "Helpers", "@everyone"].iter().map(|n| page.find(&format!(">{n} <small")).unwrap()).collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "highest first, @everyone last");
    set_roles(&mut alice, s, bob_id, &[mods]).await.assert_redirect(&format!("/s/{s}/members/{bob_id}"));
    let bad = alice.post(&format!("/s/{s}/roles/{mods}"), &[("name", "Moderators"), ("color", "blue")]).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("value=\"Moderators\"") && bad.body.contains("value=\"blue\"") && bad.body.contains("Give the colour as #rrggbb"));

    let roles = bob.get(&format!("/s/{s}/roles")).await;
    assert_eq!(roles.status, StatusCode::OK);
    assert!(!roles.body.contains("aria-label=\"Edit role Admins\"") && roles.body.contains("aria-label=\"Edit role Helpers\""));
    let edit_admins = bob.get(&format!("/s/{s}/roles/{admins}")).await;
    assert_eq!(edit_admins.status, StatusCode::FORBIDDEN);
    assert!(edit_admins.body.contains("You can only manage roles below your highest role."));
    let form = |name: &'static str, perms: &[&'static str]| {
        let mut f = vec![("name", name), ("color", "")];
        f.extend(perms.iter().map(|p| ("permission", *p)));
        f
    };
    assert_eq!(bob.post(&format!("/s/{s}/roles/{admins}"), &form("Mine", &[])).await.status, StatusCode::FORBIDDEN);
    assert_eq!(bob.post(&format!("/s/{s}/roles/{mods}"), &form("Mods", &["manage_roles", "administrator"])).await.status, StatusCode::FORBIDDEN, "not even his own");
    let grant = bob.post(&format!("/s/{s}/roles/{helpers}"), &form("Helpers", &["kick_members", "administrator"])).await;
    assert_eq!(grant.status, StatusCode::FORBIDDEN);
    assert!(grant.body.contains("You can only grant or take away permissions you hold yourself."));
    assert_eq!(bob.post(&format!("/s/{s}/roles"), &form("Banners", &["ban_members"])).await.status, StatusCode::FORBIDDEN);
    assert_eq!(bob.post(&format!("/s/{s}/roles/{helpers}/up"), &[]).await.status, StatusCode::FORBIDDEN, "not up to his own level");
    assert_eq!(bob.post(&format!("/s/{s}/roles/{admins}/delete"), &[]).await.status, StatusCode::FORBIDDEN);
    // What he holds, below him, he may change.
    bob.post(&format!("/s/{s}/roles/{helpers}"), &form("Helpers", &["kick_members", "manage_roles"])).await.assert_redirect(&format!("/s/{s}/roles"));

    // Members: only below him, only roles below his.
    assert_eq!(set_roles(&mut bob, s, carol_id, &[admins]).await.status, StatusCode::FORBIDDEN);
    set_roles(&mut bob, s, carol_id, &[helpers]).await.assert_redirect(&format!("/s/{s}/members/{carol_id}"));
    assert_eq!(set_roles(&mut bob, s, alice_id, &[helpers]).await.status, StatusCode::FORBIDDEN, "not the owner");
    assert_eq!(set_roles(&mut bob, s, bob_id, &[helpers]).await.status, StatusCode::FORBIDDEN, "not himself");
    assert!(bob.get(&format!("/s/{s}/members/{alice_id}")).await.body.contains("You can only change the roles of members ranked below you."));

    // @everyone is open to him (only its permissions), within what he holds.
    let everyone = everyone_id(&mut bob, s).await;
    let defaults = ["view_channel", "send_messages", "read_message_history", "add_reactions", "attach_files", "embed_links", "connect", "speak"];
    bob.post(&format!("/s/{s}/roles/{everyone}"), &form("ignored", &defaults)).await.assert_redirect(&format!("/s/{s}/roles"));
    assert!(bob.get(&format!("/s/{s}/roles")).await.body.contains(">@everyone <small"), "its name is fixed");

    // A channel he cannot see has no permissions page for him, MANAGE_ROLES or not.
    let created = alice.post(&format!("/s/{s}/channels"), &[("kind", "text"), ("name", "owners"), ("category", "none")]).await;
    let owners: i64 = created.location().expect("to the channel").trim_start_matches("/c/").parse().expect("id");
    set_override(&mut alice, s, &format!("channel/{owners}"), ("role", &everyone.to_string()), &[("view_channel", "deny")]).await;
    assert_eq!(bob.get(&format!("/s/{s}/permissions/channel/{owners}")).await.status, StatusCode::NOT_FOUND);

    // The owner lifts Helpers above Mods: now it is out of Bob's reach. Then deletes it.
    alice.post(&format!("/s/{s}/roles/{helpers}/up"), &[]).await.assert_redirect(&format!("/s/{s}/roles"));
    let page = alice.get(&format!("/s/{s}/roles")).await.body;
    assert!(page.find(">Helpers <small").unwrap() < page.find(">Mods <small").unwrap(), "moved up");
    assert_eq!(bob.post(&format!("/s/{s}/roles/{helpers}"), &form("Helpers", &["kick_members"])).await.status, StatusCode::FORBIDDEN);
    alice.post(&format!("/s/{s}/roles/{helpers}/delete"), &[]).await.assert_redirect(&format!("/s/{s}/roles"));
    assert!(!alice.get(&format!("/s/{s}/roles")).await.body.contains(">Helpers <small"));
    let held: i64 = reale::with_db!(app.state.store, pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM member_roles WHERE role_id = $1").bind(helpers).fetch_one(pool).await.expect("count")
    });
    assert_eq!(held, 0, "carol lost it with the role");

    let rows = audit(&app, s).await;
    assert!(has(&rows, "role_update", "bob", "Helpers") && has(&rows, "member_roles", "bob", "carol"), "{rows:?}");
    assert!(has(&rows, "role_update", "bob", "@everyone") && has(&rows, "role_update", "alice", "Helpers") && has(&rows, "role_delete", "alice", "Helpers"), "{rows:?}");
    assert!(!has(&rows, "role_update", "bob", "Admins") && !has(&rows, "member_roles", "bob", "alice"), "refusals change nothing");
}
