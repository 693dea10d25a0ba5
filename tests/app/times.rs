//! Issue 12, "Times and phones": every time in the viewer's zone (pages and live
//! frames alike), day separators, and follow-ups grouped under one header.

use std::time::Duration;

use axum::http::StatusCode;

use crate::conversations::{open_dm, send};
use crate::support::{Client, TestApp};

const SOON: Duration = Duration::from_secs(3);
/// 2025-03-02 20:00 UTC: Monday 05:00 the next day in Tokyo.
const SUNDAY_EVENING_UTC: i64 = 1_740_945_600_000;
const MINUTE: i64 = 60_000;

async fn set_created_at(app: &TestApp, message_id: i64, at: i64) {
    reale::with_db!(app.state.store, pool => {
        sqlx::query("UPDATE messages SET created_at = $1 WHERE id = $2").bind(at).bind(message_id).execute(pool).await.map(|r| r.rows_affected())
    })
    .expect("move the message in time");
}

async fn created_at(app: &TestApp, message_id: i64) -> i64 {
    reale::with_db!(app.state.store, pool => {
        sqlx::query_scalar("SELECT created_at FROM messages WHERE id = $1").bind(message_id).fetch_one(pool).await
    })
    .expect("the message's time")
}

/// `HH:MM` of `ms` in `zone`, worked out apart from the app's own code.
fn clock_in(zone: &str, ms: i64) -> String {
    let tz = jiff::tz::TimeZone::get(zone).expect("known zone");
    let t = jiff::Timestamp::from_millisecond(ms).expect("instant").to_zoned(tz);
    format!("{:02}:{:02}", t.hour(), t.minute())
}

/// The `<article id="message-N">` element, from its start tag to its end.
fn article(html: &str, id: i64) -> String {
    let start = html.find(&format!("<article id=\"message-{id}\"")).unwrap_or_else(|| panic!("message {id} in:\n{html}"));
    let end = html[start..].find("</article>").expect("end of the article") + start;
    html[start..end].to_string()
}

/// The `HH:MM` a message's header shows.
fn shown_time(html: &str, id: i64) -> String {
    let element = article(html, id);
    let permalink = element.find("class=\"permalink\"").expect("permalink");
    let label = &element[permalink..];
    let start = label.find("\">").map(|i| i + 2).expect("time text");
    let label = &label[start..];
    let label = &label[label.find('>').map(|i| i + 1).unwrap_or(0)..];
    label[..label.find('<').expect("end of time")].to_string()
}

/// The zone the profile form's field holds (its suggestions list every zone, so only
/// the field itself counts).
fn zone_field(settings: &str) -> &str {
    let field = &settings[settings.find("<input id=\"time_zone\"").expect("the time zone field")..];
    let value = &field[field.find("value=\"").expect("its value") + 7..];
    &value[..value.find('"').expect("end of the value")]
}

async fn alice_and_bob_in_tokyo(app: &TestApp) -> (Client, Client, i64) {
    let mut alice = app.client();
    alice.register("alice").await;
    let mut bob = app.client();
    bob.register("bob").await;
    let saved = bob.post("/settings/profile/time-zone", &[("time_zone", "Asia/Tokyo")]).await;
    saved.assert_redirect("/settings/profile?saved=time-zone");
    let dm = open_dm(&mut alice, "bob").await;
    (alice, bob, dm)
}

async fn each_viewer_sees_times_in_their_own_zone(app: TestApp) {
    let (mut alice, mut bob, dm) = alice_and_bob_in_tokyo(&app).await;
    let settings = bob.get("/settings/profile").await.body;
    assert_eq!(zone_field(&settings), "Asia/Tokyo", "Bob's profile shows his zone");

    // A message sent on a Sunday evening in UTC is Monday morning in Tokyo.
    let old = send(&mut alice, dm, "good evening").await;
    set_created_at(&app, old, SUNDAY_EVENING_UTC).await;
    let bobs = bob.get(&format!("/c/{dm}")).await.body;
    assert_eq!(shown_time(&bobs, old), "05:00");
    assert!(bobs.contains("<time datetime=\"2025-03-03\">Monday, March 3, 2025</time>"), "Bob's day separator:\n{bobs}");
    let alices = alice.get(&format!("/c/{dm}")).await.body;
    assert_eq!(shown_time(&alices, old), "20:00");
    assert!(alices.contains("<time datetime=\"2025-03-02\">Sunday, March 2, 2025</time>"), "Alice's day separator");

    // Live: each stream carries its own viewer's time, and "Today" after that old day.
    let mut bob_stream = bob.events("/events", None).await;
    let mut alice_stream = alice.events("/events", None).await;
    let new = send(&mut alice, dm, "and good morning").await;
    let at = created_at(&app, new).await;
    let bobs = bob_stream.expect(&format!("id=\"message-{new}\""), SOON).await.data;
    let alices = alice_stream.expect(&format!("id=\"message-{new}\""), SOON).await.data;
    assert_eq!(shown_time(&bobs, new), clock_in("Asia/Tokyo", at), "Bob's live frame is in Tokyo time");
    assert_eq!(shown_time(&alices, new), clock_in("UTC", at), "Alice's live frame is in UTC");
    assert!(bobs.contains(&format!("id=\"day-{new}\"")) && bobs.contains(">Today</time>"), "a day separator comes with it");

    // Elsewhere: "Today 14:05" in the viewer's zone.
    let found = bob.get("/search?q=morning").await.body;
    assert!(found.contains(&format!("Today {}", clock_in("Asia/Tokyo", at))), "search shows Tokyo time:\n{found}");
}

async fn quick_follow_ups_share_one_header(app: TestApp) {
    let (mut alice, mut bob, dm) = alice_and_bob_in_tokyo(&app).await;
    let first = send(&mut alice, dm, "one").await;
    let second = send(&mut alice, dm, "two").await;
    let third = send(&mut alice, dm, "three").await;
    // "one" and "two" a minute apart; "three" six minutes after "two".
    let now = created_at(&app, third).await;
    set_created_at(&app, first, now - 7 * MINUTE).await;
    set_created_at(&app, second, now - 6 * MINUTE).await;

    let page = bob.get(&format!("/c/{dm}")).await.body;
    let opening = |id: i64| {
        let element = article(&page, id);
        element[..element.find('>').expect("start tag")].to_string()
    };
    assert!(!opening(first).contains("continued"), "the first message opens the group");
    assert!(opening(second).contains("class=\"message continued\""), "the second joins it: {}", opening(second));
    assert!(!opening(third).contains("continued"), "six minutes later a new group starts: {}", opening(third));
    // The grouped message keeps its accessible name: the article is labelled by its
    // header, which still names Alice (hidden from sight by the stylesheet only).
    let grouped = article(&page, second);
    assert!(grouped.contains(&format!("aria-labelledby=\"message-{second}-meta\"")));
    let header = &grouped[grouped.find(&format!("<header id=\"message-{second}-meta\"")).expect("the labelling header")..];
    assert!(header[..header.find("</header>").expect("header end")].contains(">alice</a>"), "the header names Alice");

    // Live: a quick follow-up arrives grouped, for every viewer.
    let mut bob_stream = bob.events("/events", None).await;
    let fourth = send(&mut alice, dm, "four").await;
    let event = bob_stream.expect(&format!("id=\"message-{fourth}\""), SOON).await.data;
    assert!(article(&event, fourth).contains("class=\"message continued\""), "{event}");
    assert!(!event.contains(&format!("id=\"day-{fourth}\"")), "no day separator inside a group");
    // A reply opens its own header.
    let reply = alice.post(&format!("/c/{dm}/messages"), &[("body", "re"), ("reply_to", &fourth.to_string()), ("client_id", "reply-1")]).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    let event = bob_stream.expect("re</p>", SOON).await.data;
    assert!(!event.contains("class=\"message continued\""), "a reply is never grouped: {event}");
}

async fn a_time_zone_is_a_name_the_database_knows(app: TestApp) {
    let mut alice = app.client();
    alice.register("alice").await;
    // No choice yet: the page asks the browser for its zone.
    assert!(alice.get("/").await.body.contains("data-offer-zone"));
    let refused = alice.post("/settings/profile/time-zone", &[("time_zone", "Mars/Olympus_Mons")]).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("is not a time zone we know"), "{}", refused.body);
    assert_eq!(zone_field(&refused.body), "Mars/Olympus_Mons", "the typed text comes back");

    // The browser's offer is taken while nothing is chosen, and only then.
    let offered = alice.post("/settings/time-zone/detected", &[("time_zone", "Europe/Berlin")]).await;
    assert_eq!(offered.status, StatusCode::NO_CONTENT);
    assert_eq!(zone_field(&alice.get("/settings/profile").await.body), "Europe/Berlin");
    assert!(!alice.get("/").await.body.contains("data-offer-zone"), "asked once");
    alice.post("/settings/profile/time-zone", &[("time_zone", "America/New_York")]).await.assert_redirect("/settings/profile?saved=time-zone");
    alice.post("/settings/time-zone/detected", &[("time_zone", "Asia/Tokyo")]).await;
    assert_eq!(zone_field(&alice.get("/settings/profile").await.body), "America/New_York", "a chosen zone stays");
}

crate::on_both_backends!(
    each_viewer_sees_times_in_their_own_zone,
    quick_follow_ups_share_one_header,
    a_time_zone_is_a_name_the_database_knows,
);
