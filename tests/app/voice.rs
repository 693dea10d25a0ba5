//! Voice channels over HTTP (issue 13): the page, who may join, and the roster. The
//! browser's side of WebRTC is played by str0m here (the same library the SFU uses, as a
//! client): its offer goes to `POST /v/{id}/rtc` and the SFU's answer must complete it.
//! Media itself is checked in Chromium (`browser_voice.rs`).

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use str0m::Rtc;
use str0m::change::SdpPendingOffer;
use str0m::media::{Direction, MediaKind};

use crate::on_both_backends;
use crate::server_roles::set_override;
use crate::servers::{create_server, invite};
use crate::support::{Client, TestApp};

on_both_backends!(
    a_voice_channel_says_voice_needs_javascript_and_is_404_to_outsiders,
    without_connect_the_join_is_refused_and_the_button_absent,
    joining_a_second_voice_channel_leaves_the_first,
    a_kick_takes_a_member_out_and_a_timeout_silences_one_within_a_second,
    a_moderator_mutes_moves_and_disconnects_and_the_audit_log_says_so,
);

pub(crate) struct Room {
    pub(crate) server: i64,
    pub(crate) general: i64,
}

/// Alice's server with Bob joined; its default voice channel.
pub(crate) async fn alice_bob_and_a_voice_channel(app: &TestApp) -> (Client, Client, Room) {
    let (mut alice, mut bob) = (app.client(), app.client().fresh());
    alice.register("alice").await;
    bob.register("bob").await;
    let server = create_server(&mut alice, "Voice club").await;
    let code = invite(&mut alice, server, "0", "0").await;
    bob.post(&format!("/i/{code}"), &[]).await.assert_redirect(&format!("/s/{server}"));
    let page = alice.get(&format!("/s/{server}")).await.body;
    let general = voice_channel(&page, "General");
    (alice, bob, Room { server, general })
}

/// The id of voice channel `name`, from its link in the channel list.
pub fn voice_channel(page: &str, name: &str) -> i64 {
    let needle = format!("<span aria-hidden=\"true\">🔊</span> {name} <small");
    let at = page.find(&needle).unwrap_or_else(|| panic!("voice channel {name} in the list:\n{page}"));
    let href = page[..at].rfind("href=\"/v/").expect("a voice channel link");
    page[href + 9..].split('"').next().expect("id").parse().expect("numeric id")
}

/// A browser-like offer: a microphone to send and a data channel.
fn offer() -> (Rtc, SdpPendingOffer, String) {
    let mut rtc = Rtc::new(Instant::now());
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    change.add_channel("signal".into());
    let (offer, pending) = change.apply().expect("an offer");
    let json = serde_json::to_string(&offer).expect("offer as JSON");
    (rtc, pending, json)
}

/// Joins `room` as `client`; the response.
async fn join(client: &mut Client, room: i64) -> (crate::support::Resp, Rtc, SdpPendingOffer) {
    let (rtc, pending, json) = offer();
    let response = client.post_raw(&format!("/v/{room}/rtc"), json.into_bytes(), "application/json").await;
    (response, rtc, pending)
}

/// The names in a voice channel's roster on a page, in order.
pub fn roster(page: &str, room: i64) -> Vec<String> {
    let start = page.find(&format!("voice-roster voice-{room}\"")).unwrap_or_else(|| panic!("roster of {room}:\n{page}"));
    let list = &page[start..page[start..].find("</ul>").map_or(page.len(), |end| start + end)];
    list.split("<li ").skip(1).filter_map(|item| item.split_once("data-name=\"").and_then(|(_, rest)| rest.split_once('"')).map(|(name, _)| name.to_string())).collect()
}

async fn a_voice_channel_says_voice_needs_javascript_and_is_404_to_outsiders(app: TestApp) {
    let (_alice, mut bob, room) = alice_bob_and_a_voice_channel(&app).await;
    let page = bob.get(&format!("/v/{}", room.general)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Voice needs JavaScript"), "the page says so plainly: {}", page.body);
    assert!(page.body.contains(">Join voice</button>"));
    assert!(roster(&page.body, room.general).is_empty(), "nobody in yet");

    // A broken offer is refused with a clear status, never a 500.
    let garbage = bob.post_raw(&format!("/v/{}/rtc", room.general), br#"{"type":"offer","sdp":"not sdp"}"#.to_vec(), "application/json").await;
    assert_eq!(garbage.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", garbage.body);
    // Well-formed SDP the SFU cannot answer (no DTLS fingerprint): refused, and said why.
    let (_rtc, _pending, json) = offer();
    let unusable: String = json.split("\\r\\n").filter(|line| !line.starts_with("a=fingerprint")).collect::<Vec<_>>().join("\\r\\n");
    let refused = bob.post_raw(&format!("/v/{}/rtc", room.general), unusable.into_bytes(), "application/json").await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.body);
    assert!(refused.body.starts_with("The browser's offer could not be used: "), "said plainly, for voice.js to show: {}", refused.body);

    let mut stranger = app.client().fresh();
    stranger.register("mallory").await;
    assert_eq!(stranger.get(&format!("/v/{}", room.general)).await.status, StatusCode::NOT_FOUND);
    let (refused, ..) = join(&mut stranger, room.general).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND, "an outsider cannot tell the channel exists");
    // A text channel is not a voice room.
    let server_page = bob.get(&format!("/s/{}", room.server)).await.body;
    let text = crate::servers::channel_id(&server_page, "general");
    assert_eq!(bob.get(&format!("/v/{text}")).await.status, StatusCode::NOT_FOUND);
}

async fn without_connect_the_join_is_refused_and_the_button_absent(app: TestApp) {
    let (mut alice, mut bob, room) = alice_bob_and_a_voice_channel(&app).await;
    set_override(&mut alice, room.server, &format!("channel/{}", room.general), ("member", "bob"), &[("connect", "deny")]).await;
    let page = bob.get(&format!("/v/{}", room.general)).await.body;
    assert!(!page.contains("Join voice"), "no Join button without CONNECT");
    assert!(page.contains("You do not have permission to join this voice channel."));
    let (refused, ..) = join(&mut bob, room.general).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    // Alice may: the SFU answers her offer, and Bob's page lists her.
    let (joined, mut rtc, pending) = join(&mut alice, room.general).await;
    assert_eq!(joined.status, StatusCode::OK, "{}", joined.body);
    let reply: serde_json::Value = serde_json::from_str(&joined.body).expect("JSON");
    let answer = serde_json::from_value(reply["answer"].clone()).expect("an SDP answer");
    rtc.sdp_api().accept_answer(pending, answer).expect("the answer completes the offer");
    assert!(reply["answer"]["sdp"].as_str().is_some_and(|sdp| sdp.contains("a=candidate") && sdp.contains("127.0.0.1")), "a loopback host candidate: {reply}");
    assert_eq!(roster(&bob.get(&format!("/v/{}", room.general)).await.body, room.general), ["alice"]);
    assert_eq!(roster(&bob.get(&format!("/s/{}", room.server)).await.body, room.general), ["alice"], "under the channel in the list");

    alice.post(&format!("/v/{}/leave", room.general), &[]).await.assert_redirect(&format!("/v/{}", room.general));
    assert!(roster(&bob.get(&format!("/v/{}", room.general)).await.body, room.general).is_empty());
}

async fn joining_a_second_voice_channel_leaves_the_first(app: TestApp) {
    let (mut alice, _bob, room) = alice_bob_and_a_voice_channel(&app).await;
    let created = alice.post(&format!("/s/{}/channels", room.server), &[("kind", "voice"), ("name", "Lounge"), ("category", "none")]).await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let lounge = voice_channel(&alice.get(&format!("/s/{}", room.server)).await.body, "Lounge");
    assert_eq!(join(&mut alice, room.general).await.0.status, StatusCode::OK);
    assert_eq!(join(&mut alice, lounge).await.0.status, StatusCode::OK);
    let page = alice.get(&format!("/s/{}", room.server)).await.body;
    assert!(roster(&page, room.general).is_empty(), "Alice left General");
    assert_eq!(roster(&page, lounge), ["alice"]);
    // Mute shows in every list.
    alice.post(&format!("/v/{lounge}/mute"), &[("on", "true")]).await.assert_redirect(&format!("/v/{lounge}"));
    let page = alice.get(&format!("/v/{lounge}")).await.body;
    assert!(page.contains("alice<span class=\"visually-hidden\">, muted</span>"), "muted in the roster: {page}");
}

/// Polls `page` (as `client`) until `done` holds of `room`'s roster; how long it took.
async fn roster_until(client: &mut Client, page: &str, room: i64, done: impl Fn(&[String]) -> bool) -> Duration {
    let started = Instant::now();
    loop {
        let names = roster(&client.get(page).await.body, room);
        if done(&names) {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(3), "the roster still reads {names:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_kick_takes_a_member_out_and_a_timeout_silences_one_within_a_second(app: TestApp) {
    let (mut alice, mut bob, room) = alice_bob_and_a_voice_channel(&app).await;
    let mut carol = app.client().fresh();
    carol.register("carol").await;
    let code = invite(&mut alice, room.server, "0", "0").await;
    carol.post(&format!("/i/{code}"), &[]).await.assert_redirect(&format!("/s/{}", room.server));
    let page = format!("/v/{}", room.general);
    for person in [&mut bob, &mut carol] {
        assert_eq!(join(person, room.general).await.0.status, StatusCode::OK);
    }
    assert_eq!(roster(&alice.get(&page).await.body, room.general), ["bob", "carol"]);

    let carol_id = crate::moderation::user_id(&app, "carol").await;
    let timeout = format!("/s/{}/members/{carol_id}/timeout", room.server);
    assert_eq!(alice.post(&timeout, &[("duration", "60"), ("reason", "shouting")]).await.status, StatusCode::SEE_OTHER);
    let muted = "carol<span class=\"visually-hidden\">, muted by the server</span>";
    let started = Instant::now();
    while !alice.get(&page).await.body.contains(muted) {
        assert!(started.elapsed() < Duration::from_secs(1), "a timed-out member is silenced within a second");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let bob_id = crate::moderation::user_id(&app, "bob").await;
    alice.post(&format!("/s/{}/members/{bob_id}/kick", room.server), &[("reason", "")]).await.assert_redirect(&format!("/s/{}", room.server));
    let gone = roster_until(&mut alice, &page, room.general, |names| !names.iter().any(|n| n == "bob")).await;
    assert!(gone < Duration::from_secs(1), "a kicked member leaves the room within a second (took {gone:?})");
    assert_eq!(roster(&alice.get(&page).await.body, room.general), ["carol"]);
}

async fn a_moderator_mutes_moves_and_disconnects_and_the_audit_log_says_so(app: TestApp) {
    let (mut alice, mut bob, room) = alice_bob_and_a_voice_channel(&app).await;
    let created = alice.post(&format!("/s/{}/channels", room.server), &[("kind", "voice"), ("name", "Lounge"), ("category", "none")]).await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let lounge = voice_channel(&alice.get(&format!("/s/{}", room.server)).await.body, "Lounge");
    let general = format!("/v/{}", room.general);
    assert_eq!(join(&mut bob, room.general).await.0.status, StatusCode::OK);
    let bob_id = crate::moderation::user_id(&app, "bob").await;
    let alice_id = crate::moderation::user_id(&app, "alice").await;

    // Bob holds no MUTE_MEMBERS: no controls, and the forms are refused.
    assert!(!bob.get(&general).await.body.contains("Moderate voice"));
    assert_eq!(bob.post(&format!("{general}/members/{bob_id}/mute"), &[("on", "true")]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(bob.post(&format!("{general}/members/{alice_id}/disconnect"), &[]).await.status, StatusCode::FORBIDDEN);

    let page = alice.get(&general).await.body;
    assert!(page.contains(">Server mute bob</button>") && page.contains(">Disconnect bob</button>") && page.contains("<label for=\"move-"), "{page}");
    alice.post(&format!("{general}/members/{bob_id}/mute"), &[("on", "true")]).await.assert_redirect(&general);
    let page = alice.get(&general).await.body;
    assert!(page.contains("bob<span class=\"visually-hidden\">, muted by the server</span>") && page.contains(">Unmute bob</button>"), "{page}");
    alice.post(&format!("{general}/members/{bob_id}/mute"), &[("on", "false")]).await.assert_redirect(&general);
    assert!(!alice.get(&general).await.body.contains("muted by the server"));

    let moved = alice.post(&format!("{general}/members/{bob_id}/move"), &[("to", &lounge.to_string())]).await;
    moved.assert_redirect(&format!("/v/{lounge}"));
    let page = alice.get(&format!("/s/{}", room.server)).await.body;
    assert!(roster(&page, room.general).is_empty());
    assert_eq!(roster(&page, lounge), ["bob"]);
    alice.post(&format!("/v/{lounge}/members/{bob_id}/disconnect"), &[]).await.assert_redirect(&format!("/v/{lounge}"));
    assert!(roster(&alice.get(&format!("/v/{lounge}")).await.body, lounge).is_empty());
    // Someone no longer in the room cannot be acted on.
    assert_eq!(alice.post(&format!("/v/{lounge}/members/{bob_id}/disconnect"), &[]).await.status, StatusCode::NOT_FOUND);

    let rows = reale::servers::audit::list(&app.state.store, room.server, None, None, None).await.expect("audit");
    let actions: Vec<&str> = rows.iter().rev().filter(|r| r.action.starts_with("voice_")).map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["voice_mute", "voice_mute", "voice_move", "voice_disconnect"]);
    assert!(rows.iter().all(|r| !r.action.starts_with("voice_") || (r.actor_id == Some(alice_id) && r.target_name == "bob")));
}
