//! Moderation as moderators and members live it: kick, ban (sweeping recent messages)
//! and unban, timeouts, the hierarchy that guards the owner and higher roles, the
//! audit log page, and `@everyone` / `@here` / role mentions in channels.

use std::time::Duration;

use axum::http::StatusCode;
use reale::servers::permissions::Permissions;

use crate::conversations::send;
use crate::on_both_backends;
use crate::servers::{channel_id, create_server, invite};
use crate::support::cluster::Pair;
use crate::support::{Client, TestApp, redis_url};

on_both_backends!(
    a_kicked_member_leaves_live_and_can_come_back_by_invite,
    a_ban_sweeps_the_last_hour_and_keeps_him_out_until_unbanned,
    a_timed_out_member_reads_but_cannot_send_or_react_until_lifted,
    moderators_act_only_below_their_highest_role,
    the_audit_log_lists_moderation_newest_first_and_filters,
    everyone_here_and_role_mentions_reach_whom_they_name,
);

/// How long a live change may take to arrive; waits for something that must NOT
/// arrive are at least this long.
const LIVE: Duration = Duration::from_secs(1);

struct Server {
    id: i64,
    general: i64,
    code: String,
}

async fn server_with_owner(app: &TestApp, owner: &str, name: &str) -> (Client, Server) {
    let mut alice = app.client();
    alice.register(owner).await;
    let id = create_server(&mut alice, name).await;
    let general = channel_id(&alice.get(&format!("/s/{id}")).await.body, "general");
    let code = invite(&mut alice, id, "0", "0").await;
    (alice, Server { id, general, code })
}

async fn member(app: &TestApp, server: &Server, username: &str) -> Client {
    let mut client = app.client().fresh();
    client.register(username).await;
    client.post(&format!("/i/{}", server.code), &[]).await.assert_redirect(&format!("/s/{}", server.id));
    client
}

/// Gives `username` a new role straight in the database (the roles pages are another
/// branch's) and moves the server's version as every role change does; the permissions
/// it grants (none about seeing channels) are asked for per request, so no re-plan.
async fn give_role(app: &TestApp, server: i64, username: &str, role: &str, permissions: Permissions, position: i64, mentionable: bool) {
    reale::with_db!(app.state.store, pool => {
        let role_id: i64 = sqlx::query_scalar(
            "INSERT INTO roles (server_id, name, permissions, position, mentionable) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(server).bind(role).bind(permissions.bits() as i64).bind(position).bind(mentionable)
        .fetch_one(pool).await.expect("role");
        sqlx::query("INSERT INTO member_roles (server_id, user_id, role_id) SELECT $1, id, $2 FROM users WHERE username = $3")
            .bind(server).bind(role_id).bind(username).execute(pool).await.expect("member role");
        // Instances keep a server's roles in memory until its version moves.
        sqlx::query("UPDATE servers SET version = version + 1 WHERE id = $1").bind(server).execute(pool).await.expect("bump the version");
    });
}

pub(crate) async fn user_id(app: &TestApp, username: &str) -> i64 {
    reale::conversations::store::user_by_username(&app.state.store, username).await.expect("query").expect("user").id
}

/// The mention badge `client` sees on #general in the server's channel list.
async fn mentions_of(client: &mut Client, server: &Server) -> i64 {
    let page = client.get(&format!("/s/{}", server.id)).await.body;
    let item = page.split(&format!("id=\"badges-{}\"", server.general)).nth(1).expect("the channel's badges");
    let item = item.split("</a>").next().unwrap_or("");
    item.split("class=\"badge mention\" aria-label=\"").nth(1).and_then(|s| s.split(' ').next()).map_or(0, |n| n.parse().expect("count"))
}

async fn a_kicked_member_leaves_live_and_can_come_back_by_invite(app: TestApp) {
    let (mut alice, server) = server_with_owner(&app, "alice", "Harbour").await;
    let mut bob = member(&app, &server, "bob").await;
    let (alice_id, bob_id) = (user_id(&app, "alice").await, user_id(&app, "bob").await);
    let home = alice.get(&format!("/s/{}", server.id)).await.body;
    assert!(home.contains(&format!("href=\"/s/{}/members/{bob_id}/moderate\" aria-label=\"Moderate bob\"", server.id)), "the member list links to the forms");
    assert!(!home.contains("aria-label=\"Moderate alice\""), "nobody moderates the owner");
    assert!(!bob.get(&format!("/s/{}", server.id)).await.body.contains(">Moderate</a>"), "members without the permissions get no link");

    let mut stream = bob.events("/events", None).await;
    send(&mut alice, server.general, "before the kick").await;
    stream.expect("before the kick", LIVE).await;
    let page = alice.get(&format!("/s/{}/members/{bob_id}/moderate", server.id)).await;
    assert!(page.body.contains(">Kick bob</button>") && page.body.contains("<label for=\"kick-reason\">"));
    alice.post(&format!("/s/{}/members/{bob_id}/kick", server.id), &[("reason", "too loud")]).await.assert_redirect(&format!("/s/{}", server.id));
    let removed = stream.expect("no longer a member", LIVE).await;
    assert!(removed.data.contains(&format!("conversation-{}", server.general)));
    send(&mut alice, server.general, "after the kick").await;
    while let Some(event) = stream.next(LIVE + Duration::from_millis(500)).await {
        assert!(!event.data.contains("after the kick"), "leaked to a kicked member: {}", event.data);
    }
    for path in [format!("/s/{}", server.id), format!("/c/{}", server.general), format!("/s/{}/members/{alice_id}/moderate", server.id)] {
        assert_eq!(bob.get(&path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    assert!(!alice.get(&format!("/s/{}", server.id)).await.body.contains("@bob"), "gone from the member list");

    // A kick is not a ban: the invite works again.
    bob.post(&format!("/i/{}", server.code), &[]).await.assert_redirect(&format!("/s/{}", server.id));
    assert!(bob.get(&format!("/c/{}", server.general)).await.body.contains("after the kick"));
}

async fn a_ban_sweeps_the_last_hour_and_keeps_him_out_until_unbanned(app: TestApp) {
    let (mut alice, server) = server_with_owner(&app, "alice", "Harbour").await;
    let mut bob = member(&app, &server, "bob").await;
    let bob_id = user_id(&app, "bob").await;
    let old = send(&mut bob, server.general, "an old remark").await;
    reale::with_db!(app.state.store, pool => {
        sqlx::query("UPDATE messages SET created_at = created_at - 7200000 WHERE id = $1").bind(old).execute(pool).await.expect("age it");
    });
    let spam = [send(&mut bob, server.general, "buy cheap stuff").await, send(&mut bob, server.general, "buy more stuff").await];
    let mine = send(&mut alice, server.general, "please stop").await;

    // A bad choice keeps what was typed.
    let bad = alice.post(&format!("/s/{}/members/{bob_id}/ban", server.id), &[("reason", "Spamming links"), ("delete", "forever")]).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("Choose how much history to delete.") && bad.body.contains("value=\"Spamming links\""), "{}", bad.body);
    let long = "x".repeat(600);
    assert_eq!(alice.post(&format!("/s/{}/members/{bob_id}/ban", server.id), &[("reason", &long), ("delete", "none")]).await.status, StatusCode::UNPROCESSABLE_ENTITY);

    let mut stream = bob.events("/events", None).await;
    alice
        .post(&format!("/s/{}/members/{bob_id}/ban", server.id), &[("reason", "Spamming links"), ("delete", "hour")])
        .await
        .assert_redirect(&format!("/s/{}/bans", server.id));
    stream.expect("no longer a member", LIVE).await;
    let channel = alice.get(&format!("/c/{}", server.general)).await.body;
    for id in spam {
        let at = channel.find(&format!("id=\"message-{id}\"")).expect("the tombstone stays");
        assert!(channel[at..].split("</article>").next().unwrap().contains("Message deleted"), "message {id} swept");
    }
    assert!(!channel.contains("buy cheap stuff") && !channel.contains("buy more stuff"));
    assert!(channel.contains("an old remark"), "older than an hour: kept");
    assert!(channel.contains(&format!("id=\"message-{mine}\"")) && channel.contains("please stop"), "only his messages go");

    let bans = alice.get(&format!("/s/{}/bans", server.id)).await.body;
    assert!(bans.contains("@bob") && bans.contains("Spamming links") && bans.contains("aria-label=\"Unban bob\""));
    assert_eq!(bob.get(&format!("/s/{}", server.id)).await.status, StatusCode::NOT_FOUND);
    let landing = bob.get(&format!("/i/{}", server.code)).await;
    assert_eq!(landing.status, StatusCode::FORBIDDEN);
    assert!(landing.body.contains("You are banned from this server.") && !landing.body.contains(">Accept invite</button>"));
    assert_eq!(bob.post(&format!("/i/{}", server.code), &[]).await.status, StatusCode::FORBIDDEN);
    // A fresh invite does not help either.
    let other = invite(&mut alice, server.id, "60", "1").await;
    assert_eq!(bob.post(&format!("/i/{other}"), &[]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(bob.get(&format!("/c/{}", server.general)).await.status, StatusCode::NOT_FOUND);

    alice.post(&format!("/s/{}/bans/{bob_id}/remove", server.id), &[]).await.assert_redirect(&format!("/s/{}/bans", server.id));
    assert!(alice.get(&format!("/s/{}/bans", server.id)).await.body.contains("Nobody is banned."));
    assert_eq!(alice.post(&format!("/s/{}/bans/{bob_id}/remove", server.id), &[]).await.status, StatusCode::NOT_FOUND, "no ban left to lift");
    bob.post(&format!("/i/{}", server.code), &[]).await.assert_redirect(&format!("/s/{}", server.id));
}

async fn a_timed_out_member_reads_but_cannot_send_or_react_until_lifted(app: TestApp) {
    let (mut alice, server) = server_with_owner(&app, "alice", "Harbour").await;
    let mut bob = member(&app, &server, "bob").await;
    let bob_id = user_id(&app, "bob").await;
    let hello = send(&mut alice, server.general, "hello everybody").await;
    let path = format!("/s/{}/members/{bob_id}/timeout", server.id);
    let bad = alice.post(&path, &[("duration", "7"), ("reason", "cool down")]).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("Choose one of the timeout lengths.") && bad.body.contains("value=\"cool down\""));
    alice.post(&path, &[("duration", "600"), ("reason", "cool down")]).await.assert_redirect(&format!("/s/{}/members/{bob_id}/moderate", server.id));
    assert!(alice.get(&format!("/s/{}/members/{bob_id}/moderate", server.id)).await.body.contains("Timed out until "));
    assert!(alice.get(&format!("/s/{}", server.id)).await.body.contains("<span class=\"badge\">Timed out</span>"));

    let page = bob.get(&format!("/c/{}", server.general)).await;
    assert_eq!(page.status, StatusCode::OK, "he can still read");
    assert!(page.body.contains("hello everybody") && page.body.contains("You are timed out until "));
    let refused = bob.post(&format!("/c/{}/messages", server.general), &[("body", "let me explain"), ("client_id", "b1")]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains(">let me explain</textarea>"), "the draft is kept: {}", refused.body);
    let react = bob.post(&format!("/c/{}/m/{hello}/react", server.general), &[("emoji", "👍")]).await;
    assert_eq!(react.status, StatusCode::FORBIDDEN);

    alice.post(&format!("{path}/remove"), &[]).await.assert_redirect(&format!("/s/{}/members/{bob_id}/moderate", server.id));
    assert!(!alice.get(&format!("/s/{}", server.id)).await.body.contains("<span class=\"badge\">Timed out</span>"));
    send(&mut bob, server.general, "sorry, all calm now").await;
}

async fn moderators_act_only_below_their_highest_role(app: TestApp) {
    let (mut alice, server) = server_with_owner(&app, "alice", "Harbour").await;
    let mut bob = member(&app, &server, "bob").await;
    let _carol = member(&app, &server, "carol").await;
    let _dave = member(&app, &server, "dave").await;
    let mut erin = member(&app, &server, "erin").await;
    let moderation = Permissions::KICK_MEMBERS.union(Permissions::BAN_MEMBERS).union(Permissions::MODERATE_MEMBERS);
    give_role(&app, server.id, "bob", "Mods", moderation, 2, false).await;
    give_role(&app, server.id, "carol", "Admins", moderation, 3, false).await;
    give_role(&app, server.id, "dave", "Helpers", Permissions::empty(), 1, false).await;

    let mut ids = std::collections::HashMap::new();
    for name in ["alice", "bob", "carol", "dave", "erin"] {
        ids.insert(name, user_id(&app, name).await);
    }
    let (carol_id, dave_id) = (ids["carol"], ids["dave"]);
    let kick = |who: &str| format!("/s/{}/members/{}/kick", server.id, ids[who]);
    for (who, why) in [("carol", "below yours"), ("alice", "server&#39;s owner"), ("bob", "yourself")] {
        let refused = bob.post(&kick(who), &[("reason", "")]).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "bob kicks {who}");
        assert!(refused.body.contains(why) || refused.body.contains(&why.replace("&#39;", "'")), "{who}: {}", refused.body);
        assert_eq!(bob.post(&format!("/s/{}/members/{}/ban", server.id, ids[who]), &[("delete", "none")]).await.status, StatusCode::FORBIDDEN);
    }
    let carol_page = bob.get(&format!("/s/{}/members/{carol_id}/moderate", server.id)).await.body;
    assert!(!carol_page.contains(">Kick carol</button>") && carol_page.contains("below yours"), "no forms above him");
    // Without a permission, the hierarchy does not matter: erin cannot kick anyone.
    assert_eq!(erin.post(&kick("dave"), &[]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(erin.get(&format!("/s/{}/bans", server.id)).await.status, StatusCode::FORBIDDEN);
    assert!(!erin.get(&format!("/s/{}/members/{dave_id}/moderate", server.id)).await.body.contains(">Kick dave</button>"));
    // Strictly below: a role under Mods, and a member with no role at all.
    assert!(bob.get(&format!("/s/{}/members/{dave_id}/moderate", server.id)).await.body.contains(">Kick dave</button>"));
    bob.post(&kick("dave"), &[("reason", "testing")]).await.assert_redirect(&format!("/s/{}", server.id));
    bob.post(&kick("erin"), &[]).await.assert_redirect(&format!("/s/{}", server.id));
    // The owner is above everyone.
    alice.post(&kick("carol"), &[]).await.assert_redirect(&format!("/s/{}", server.id));
    assert_eq!(alice.get(&format!("/s/{}/members/{dave_id}/moderate", server.id)).await.status, StatusCode::NOT_FOUND, "no longer a member");
}

async fn the_audit_log_lists_moderation_newest_first_and_filters(app: TestApp) {
    let (mut alice, server) = server_with_owner(&app, "alice", "Harbour").await;
    let mut bob = member(&app, &server, "bob").await;
    let _carol = member(&app, &server, "carol").await;
    let (bob_id, carol_id) = (user_id(&app, "bob").await, user_id(&app, "carol").await);
    let rude = send(&mut bob, server.general, "something rude").await;
    let own = send(&mut alice, server.general, "my own typo").await;
    alice.post(&format!("/c/{}/m/{rude}/delete", server.general), &[]).await;
    alice.post(&format!("/c/{}/m/{own}/delete", server.general), &[]).await;
    alice.post(&format!("/s/{}/members/{bob_id}/timeout", server.id), &[("duration", "60"), ("reason", "first warning")]).await;
    alice.post(&format!("/s/{}/members/{bob_id}/kick", server.id), &[("reason", "second warning")]).await;
    alice.post(&format!("/s/{}/members/{carol_id}/ban", server.id), &[("reason", "raid account"), ("delete", "none")]).await;
    alice.post(&format!("/s/{}/bans/{carol_id}/remove", server.id), &[]).await;

    let log = alice.get(&format!("/s/{}/audit", server.id)).await;
    assert_eq!(log.status, StatusCode::OK);
    let order = ["Unbanned a member", "Banned a member", "Kicked a member", "Timed out a member", "Deleted a message", "Created an invite", "Created the server"];
    let at: Vec<usize> = order.iter().map(|label| log.body.find(&format!("<td>{label}</td>")).unwrap_or_else(|| panic!("{label} in the log"))).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "newest first: {at:?}");
    for text in ["raid account", "second warning", "first warning", "member bob", "member carol", "something rude → deleted", "not timed out → until "] {
        assert!(log.body.contains(text), "{text} in the log");
    }
    assert_eq!(log.body.matches("<td>Deleted a message</td>").count(), 1, "deleting one's own message is not moderation");

    let kicks = alice.get(&format!("/s/{}/audit?action=member_kick&actor=", server.id)).await.body;
    assert!(kicks.contains("second warning") && !kicks.contains("raid account") && !kicks.contains("<td>Created the server</td>"));
    assert!(kicks.contains("<option value=\"member_kick\" selected>"), "the filter stays chosen");
    let by_bob = alice.get(&format!("/s/{}/audit?actor=bob", server.id)).await.body;
    assert!(by_bob.contains("No entries."), "bob did nothing");
    let by_alice = alice.get(&format!("/s/{}/audit?actor=%40alice&action=member_ban", server.id)).await.body;
    assert!(by_alice.contains("raid account") && !by_alice.contains("second warning"));
    let unknown = alice.get(&format!("/s/{}/audit?actor=nobody", server.id)).await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(unknown.body.contains("Nobody is called @nobody.") && unknown.body.contains("value=\"nobody\""));
    assert_eq!(alice.get(&format!("/s/{}/audit?action=drop_tables", server.id)).await.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Without VIEW_AUDIT_LOG: 403; outsiders: 404.
    bob.post(&format!("/i/{}", server.code), &[]).await.assert_redirect(&format!("/s/{}", server.id));
    assert_eq!(bob.get(&format!("/s/{}/audit", server.id)).await.status, StatusCode::FORBIDDEN);
    give_role(&app, server.id, "bob", "Auditors", Permissions::VIEW_AUDIT_LOG, 1, false).await;
    assert!(bob.get(&format!("/s/{}/audit", server.id)).await.body.contains("raid account"));
    let mut dora = app.client().fresh();
    dora.register("dora").await;
    assert_eq!(dora.get(&format!("/s/{}/audit", server.id)).await.status, StatusCode::NOT_FOUND);
}

async fn everyone_here_and_role_mentions_reach_whom_they_name(app: TestApp) {
    let (mut alice, server) = server_with_owner(&app, "alice", "Harbour").await;
    let mut bob = member(&app, &server, "bob").await;
    let mut carol = member(&app, &server, "carol").await;
    let mut dave = member(&app, &server, "dave").await;
    let bob_id = user_id(&app, "bob").await;

    // Without MENTION_EVERYONE (members' default) it is plain text.
    send(&mut carol, server.general, "@everyone look at this").await;
    assert_eq!(mentions_of(&mut bob, &server).await, 0);
    let meeting = send(&mut alice, server.general, "@everyone meeting at noon").await;
    assert_eq!(mentions_of(&mut bob, &server).await, 1, "the owner may mention everyone");
    assert_eq!(mentions_of(&mut dave, &server).await, 1);
    assert_eq!(mentions_of(&mut alice, &server).await, 0, "not the author");
    // Read through alice's eyes: bob opening the channel would clear his badge.
    let page = alice.get(&format!("/c/{}", server.general)).await.body;
    let at = page.find(&format!("id=\"message-{meeting}\"")).expect("the message");
    assert!(page[at..].split('>').next().unwrap().contains(&format!(" {bob_id} ")), "highlighted for bob (data-mentions)");

    // @here: those online (an open stream) only.
    let _online = bob.events("/events", None).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    send(&mut alice, server.general, "@here quick question").await;
    assert_eq!(mentions_of(&mut bob, &server).await, 2, "bob is online");
    assert_eq!(mentions_of(&mut dave, &server).await, 1, "dave is not");

    // Role mentions: a mentionable role from anyone, another only with MENTION_EVERYONE.
    give_role(&app, server.id, "bob", "Helpers", Permissions::empty(), 1, true).await;
    give_role(&app, server.id, "dave", "Secret", Permissions::empty(), 2, false).await;
    send(&mut carol, server.general, "@Helpers can someone help? also @Secret").await;
    assert_eq!(mentions_of(&mut bob, &server).await, 3);
    assert_eq!(mentions_of(&mut dave, &server).await, 1, "Secret is not mentionable by carol");
    send(&mut alice, server.general, "@secret, ping").await;
    assert_eq!(mentions_of(&mut dave, &server).await, 2, "the owner can mention any role");
}

/// Two instances on one Postgres and Redis: Alice bans Bob on A while his tab streams
/// from B; B drops the server's channels within a second and delivers nothing after.
#[tokio::test]
async fn a_ban_on_one_instance_ends_delivery_on_the_other() {
    let Some(Pair { a: _a, b: _b, mut alice, mut bob, dm: _ }) = Pair::start(&redis_url()).await else { return };
    let id = create_server(&mut alice, "Harbour").await;
    let general = channel_id(&alice.get(&format!("/s/{id}")).await.body, "general");
    let code = invite(&mut alice, id, "0", "0").await;
    bob.post(&format!("/i/{code}"), &[]).await.assert_redirect(&format!("/s/{id}"));
    let bob_id = reale::conversations::store::user_by_username(&_a.state.store, "bob").await.expect("query").expect("bob").id;
    let mut stream = bob.events("/events", None).await;
    send(&mut alice, general, "from instance A").await;
    stream.expect("from instance A", LIVE).await;
    alice.post(&format!("/s/{id}/members/{bob_id}/ban"), &[("reason", "raid"), ("delete", "none")]).await.assert_redirect(&format!("/s/{id}/bans"));
    let removed = stream.expect("no longer a member", LIVE).await;
    assert!(removed.data.contains(&format!("conversation-{general}")));
    send(&mut alice, general, "after the ban").await;
    while let Some(event) = stream.next(LIVE + Duration::from_millis(500)).await {
        assert!(!event.data.contains("after the ban"), "leaked on B: {}", event.data);
    }
}
