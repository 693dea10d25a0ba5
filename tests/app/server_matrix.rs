//! Issue 11's matrix: one server with an admin, a moderator, plain members (one denied
//! sending in #general, one timed out), a kicked and a banned member, an outsider and an
//! anonymous visitor; a private #mods channel for Moderators. Every route, search and the
//! event stream answer each of them as their standing says, on SQLite and Postgres.

use std::time::Duration;

use axum::http::StatusCode;

use crate::conversations::send;
use crate::on_both_backends;
use crate::server_roles::{create_role, everyone_id, set_override, set_roles, user_id};
use crate::servers::{channel_id, create_server, invite};
use crate::support::{Client, TestApp};

on_both_backends!(every_route_answers_each_standing, losing_a_channel_or_the_server_replays_nothing_of_it);

const PEOPLE: [&str; 10] = ["owner", "admin", "moderator", "member", "muted", "timedout", "kicked", "banned", "outsider", "anonymous"];

/// One route: what it is, its path, the form to post (None: a GET), each person's answer.
type Case = (&'static str, String, Option<Vec<(&'static str, String)>>, Vec<Want>);

/// What a request should get: 200, 303 (done), 303 to the login page, 403 or 404.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Want {
    Ok,
    Done,
    Login,
    Refused,
    Missing,
}

fn got(response: &crate::support::Resp) -> Want {
    match response.status {
        StatusCode::OK => Want::Ok,
        StatusCode::SEE_OTHER if response.location() == Some("/login") => Want::Login,
        StatusCode::SEE_OTHER => Want::Done,
        StatusCode::FORBIDDEN => Want::Refused,
        StatusCode::NOT_FOUND => Want::Missing,
        other => panic!("unexpected {other}: {}", response.body),
    }
}

/// One row of the matrix: each person's expected answer, in `PEOPLE` order.
fn row(codes: &str) -> Vec<Want> {
    codes
        .split_whitespace()
        .map(|c| match c {
            "ok" => Want::Ok,
            "done" => Want::Done,
            "login" => Want::Login,
            "403" => Want::Refused,
            "404" => Want::Missing,
            other => panic!("code {other}"),
        })
        .collect()
}

async fn every_route_answers_each_standing(app: TestApp) {
    let mut people: Vec<Client> = Vec::new();
    for (n, name) in PEOPLE.iter().enumerate() {
        let mut client = app.client().fresh().from_ip([127, 0, 2, n as u8 + 1]);
        if *name != "anonymous" {
            client.register(name).await;
        }
        people.push(client);
    }
    let owner_index = 0;
    let server = create_server(&mut people[owner_index], "Matrix").await;
    let general = channel_id(&people[0].get(&format!("/s/{server}")).await.body, "general");
    let code = invite(&mut people[0], server, "0", "0").await;
    for (n, name) in PEOPLE.iter().enumerate().skip(1) {
        if !matches!(*name, "outsider" | "anonymous") {
            people[n].post(&format!("/i/{code}"), &[]).await.assert_redirect(&format!("/s/{server}"));
        }
    }
    // Roles: Admins (ADMINISTRATOR), Moderators (manage messages, kick).
    let owner = &mut people[0];
    let admins = create_role(owner, server, "Admins", &["administrator"]).await;
    let mods = create_role(owner, server, "Moderators", &["manage_messages", "kick_members"]).await;
    let (admin_id, moderator_id, muted_id) = (user_id(&app, "admin").await, user_id(&app, "moderator").await, user_id(&app, "muted").await);
    set_roles(owner, server, admin_id, &[admins]).await.assert_redirect(&format!("/s/{server}/members/{admin_id}"));
    set_roles(owner, server, moderator_id, &[mods]).await.assert_redirect(&format!("/s/{server}/members/{moderator_id}"));
    // #mods: @everyone denied View channel, Moderators allowed.
    owner.post(&format!("/s/{server}/channels"), &[("kind", "text"), ("name", "mods"), ("category", "none")]).await;
    let mods_channel = channel_id(&owner.get(&format!("/s/{server}")).await.body, "mods");
    let everyone = everyone_id(owner, server).await;
    set_override(owner, server, &format!("channel/{mods_channel}"), ("role", &everyone.to_string()), &[("view_channel", "deny")]).await;
    set_override(owner, server, &format!("channel/{mods_channel}"), ("role", &mods.to_string()), &[("view_channel", "allow")]).await;
    // muted: a member override denying Send messages in #general.
    set_override(owner, server, &format!("channel/{general}"), ("member", "muted"), &[("send_messages", "deny")]).await;
    let _ = muted_id;
    let secret = send(owner, mods_channel, "the secret plan").await;
    let hello = send(owner, general, "hello all").await;
    // A note by the admin, which plain members may not delete and moderators may.
    let members_note = send(&mut people[1], general, "admin's note").await;
    // The timeout, the kick and the ban.
    let (timedout, kicked, banned) = (user_id(&app, "timedout").await, user_id(&app, "kicked").await, user_id(&app, "banned").await);
    let owner = &mut people[0];
    owner.post(&format!("/s/{server}/members/{timedout}/timeout"), &[("duration", "3600"), ("reason", "cool off")]).await;
    owner.post(&format!("/s/{server}/members/{kicked}/kick"), &[("reason", "bye")]).await;
    owner.post(&format!("/s/{server}/members/{banned}/ban"), &[("reason", "spam"), ("delete", "none")]).await;

    let s = server;
    //                                             owner admin moder member muted timedout kicked banned outsider anonymous
    let matrix: Vec<Case> = vec![
        ("server page", format!("/s/{s}"), None, row("ok ok ok ok ok ok 404 404 404 login")),
        ("#general", format!("/c/{general}"), None, row("ok ok ok ok ok ok 404 404 404 login")),
        ("#mods", format!("/c/{mods_channel}"), None, row("ok ok ok 404 404 404 404 404 404 login")),
        ("#mods message (a permalink: it redirects into the channel)", format!("/c/{mods_channel}/m/{secret}"), None, row("done done done 404 404 404 404 404 404 login")),
        ("manage channels", format!("/s/{s}/channels"), None, row("ok ok 403 403 403 403 404 404 404 login")),
        ("roles", format!("/s/{s}/roles"), None, row("ok ok 403 403 403 403 404 404 404 login")),
        ("audit log", format!("/s/{s}/audit"), None, row("ok ok 403 403 403 403 404 404 404 login")),
        ("bans", format!("/s/{s}/bans"), None, row("ok ok 403 403 403 403 404 404 404 login")),
        ("invites", format!("/s/{s}/invites"), None, row("ok ok ok ok ok 403 404 404 404 login")),
        ("send in #general", format!("/c/{general}/messages"), Some(vec![("body", "hi".into()), ("client_id", String::new())]), row("done done done done 403 403 404 404 404 login")),
        ("send in #mods", format!("/c/{mods_channel}/messages"), Some(vec![("body", "hi".into()), ("client_id", String::new())]), row("done done done 404 404 404 404 404 404 login")),
        ("react in #general", format!("/c/{general}/m/{hello}/react"), Some(vec![("emoji", "👍".into())]), row("done done done done done 403 404 404 404 login")),
        ("pin in #general", format!("/c/{general}/m/{hello}/pin"), Some(vec![]), row("done done done 403 403 403 404 404 404 login")),
    ];
    let mut wrong = Vec::new();
    for (what, path, form, want) in &matrix {
        for (n, name) in PEOPLE.iter().enumerate() {
            let response = match form {
                None => people[n].get(path).await,
                Some(fields) => {
                    let mut fields: Vec<(&str, String)> = fields.clone();
                    for field in fields.iter_mut().filter(|f| f.0 == "client_id") {
                        field.1 = format!("{name}-{}", rand::random::<u32>());
                    }
                    let borrowed: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    people[n].post(path, &borrowed).await
                }
            };
            let answer = got(&response);
            if answer != want[n] {
                wrong.push(format!("{what} as {name}: got {answer:?}, want {:?}", want[n]));
            }
        }
    }
    // Deleting the admin's note: moderators may (MANAGE_MESSAGES), others not; do it last.
    for (n, name) in PEOPLE.iter().enumerate() {
        let want = match *name {
            "member" | "muted" | "timedout" => Want::Refused,
            "kicked" | "banned" | "outsider" => Want::Missing,
            "anonymous" => Want::Login,
            _ => continue,
        };
        let answer = got(&people[n].post(&format!("/c/{general}/m/{members_note}/delete"), &[]).await);
        if answer != want {
            wrong.push(format!("delete the admin's note as {name}: got {answer:?}, want {want:?}"));
        }
    }
    let answer = got(&people[2].post(&format!("/c/{general}/m/{members_note}/delete"), &[]).await);
    if answer != Want::Done {
        wrong.push(format!("delete the admin's note as moderator: got {answer:?}"));
    }
    // Search: the secret is found by those who see #mods, by nobody else.
    for (n, name) in PEOPLE.iter().enumerate().take(9) {
        let page = people[n].get("/search?q=secret").await.body;
        let found = page.contains(&format!("/m/{secret}"));
        if found != matches!(*name, "owner" | "admin" | "moderator") {
            wrong.push(format!("search for the secret as {name}: found = {found}"));
        }
    }
    // The stream: the moderator hears #mods, the member and the timed-out member do not.
    let mut moderator_stream = people[2].events("/events", None).await;
    let mut member_stream = people[3].events("/events", None).await;
    let mut timedout_stream = people[5].events("/events", None).await;
    send(&mut people[0], mods_channel, "second secret").await;
    if !heard(&mut moderator_stream, "second secret").await {
        wrong.push("the moderator's stream did not carry #mods".into());
    }
    for (name, stream) in [("member", &mut member_stream), ("timedout", &mut timedout_stream)] {
        if heard(stream, "second secret").await {
            wrong.push(format!("{name}'s stream carried #mods"));
        }
    }
    // The audit log holds the scenario's every action, in order, with actor and target.
    let rows = reale::servers::audit::list(&app.state.store, server, None, None, None).await.expect("audit");
    let log: Vec<(String, String, String)> =
        rows.into_iter().rev().map(|r| (r.action, r.actor_name.unwrap_or_default(), r.target_name)).collect();
    let expected = [
        ("server_create", "owner", "Matrix"),
        ("invite_create", "owner", ""),
        ("role_create", "owner", "Admins"),
        ("role_create", "owner", "Moderators"),
        ("member_roles", "owner", "admin"),
        ("member_roles", "owner", "moderator"),
        ("channel_create", "owner", "mods"),
        ("override_update", "owner", ""),
        ("override_update", "owner", ""),
        ("override_update", "owner", ""),
        ("member_timeout", "owner", "timedout"),
        ("member_kick", "owner", "kicked"),
        ("member_ban", "owner", "banned"),
        ("message_delete", "moderator", "admin"),
    ];
    let mut at = 0;
    for (action, actor, target) in expected {
        match log[at..].iter().position(|(a, who, t)| a == action && who == actor && t.contains(target)) {
            Some(found) => at += found + 1,
            None => wrong.push(format!("audit: no {action} by {actor} on {target:?} after entry {at}; the log: {log:?}")),
        }
    }
    assert!(wrong.is_empty(), "{} answers differ from the matrix:\n{}", wrong.len(), wrong.join("\n"));
}

/// Whether `needle` arrives on the stream within 3 s (the same wait for the positive and
/// the negative checks).
async fn heard(stream: &mut crate::support::EventStream, needle: &str) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < deadline {
        match stream.next(deadline - tokio::time::Instant::now()).await {
            Some(event) if event.data.contains(needle) => return true,
            Some(_) => continue,
            None => break,
        }
    }
    false
}

/// The cursor a page hands its stream (`/events?since=N`).
fn cursor(page: &str) -> i64 {
    page.split("/events?since=").nth(1).and_then(|s| s.split('"').next()).and_then(|n| n.parse().ok()).expect("a live cursor")
}

/// Everything a stream replays from `since` until it has been quiet for a second.
async fn replay(client: &mut Client, since: i64) -> String {
    let mut stream = client.events(&format!("/events?since={since}"), None).await;
    let mut all = String::new();
    while let Some(event) = stream.next(Duration::from_secs(1)).await {
        all.push_str(&event.data);
        all.push('\n');
    }
    all
}

async fn losing_a_channel_or_the_server_replays_nothing_of_it(app: TestApp) {
    let (mut owner, mut bob) = (app.client(), app.client().fresh());
    owner.register("owner").await;
    bob.register("bob").await;
    let server = create_server(&mut owner, "Replay").await;
    owner.post(&format!("/s/{server}/channels"), &[("kind", "text"), ("name", "news"), ("category", "none")]).await;
    let news = channel_id(&owner.get(&format!("/s/{server}")).await.body, "news");
    let general = channel_id(&owner.get(&format!("/s/{server}")).await.body, "general");
    let code = invite(&mut owner, server, "0", "0").await;
    bob.post(&format!("/i/{code}"), &[]).await;
    send(&mut owner, news, "before hiding").await;
    let since = cursor(&bob.get(&format!("/c/{news}")).await.body);

    // #news is hidden from @everyone; the owner renames it and writes on.
    let everyone = everyone_id(&mut owner, server).await;
    set_override(&mut owner, server, &format!("channel/{news}"), ("role", &everyone.to_string()), &[("view_channel", "deny")]).await;
    owner
        .post(&format!("/s/{server}/channels/{news}"), &[("name", "leaks"), ("topic", "secret topic"), ("slowmode", "0"), ("category", "none")])
        .await;
    send(&mut owner, news, "after hiding").await;
    send(&mut owner, general, "general after").await;
    let replayed = replay(&mut bob, since).await;
    assert!(replayed.contains(&format!("conversation-{news}")), "bob is told the channel is gone: {replayed}");
    for leak in ["after hiding", "leaks", "secret topic"] {
        assert!(!replayed.contains(leak), "{leak:?} replayed to bob: {replayed}");
    }
    assert!(replayed.contains("general after"), "what bob still sees replays");

    // A ban: nothing of the server after it, from any channel.
    let since = cursor(&bob.get(&format!("/c/{general}")).await.body);
    let bob_id = user_id(&app, "bob").await;
    owner.post(&format!("/s/{server}/members/{bob_id}/ban"), &[("reason", "spam"), ("delete", "none")]).await.assert_redirect(&format!("/s/{server}/bans"));
    send(&mut owner, general, "after the ban").await;
    let replayed = replay(&mut bob, since).await;
    assert!(replayed.contains(&format!("conversation-{general}")), "bob is told #general is gone: {replayed}");
    assert!(!replayed.contains("after the ban"), "a message after the ban replayed: {replayed}");
}
