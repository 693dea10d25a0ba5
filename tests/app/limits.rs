//! Bounds: every write, search and stream has a per-user limit, and a person who hits
//! one is told why and keeps what they typed. (Limits across instances: `scale.rs`.)

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};

use crate::conversations::{open_dm, send};
use crate::support::{Backend, Client, TestApp};

async fn app_with(args: &[&str]) -> TestApp {
    TestApp::spawn_with(Backend::Sqlite, args).await.expect("sqlite")
}

#[track_caller]
fn assert_slowed_down(response: &crate::support::Resp) {
    assert_eq!(response.status, StatusCode::TOO_MANY_REQUESTS, "{}", response.body);
    let wait: u64 = response.header("retry-after").parse().expect("a Retry-After in seconds");
    assert!(wait >= 1);
    assert!(response.body.contains("Too many attempts. Please wait"), "says why: {}", response.body);
}

async fn htmx_post(client: &mut Client, path: &str, form: &[(&str, &str)]) -> crate::support::Resp {
    let request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("sec-fetch-site", "same-origin")
        .header("hx-request", "true")
        .body(Body::from(serde_urlencoded::to_string(form).expect("form")))
        .expect("request");
    client.send(request).await
}

#[tokio::test]
async fn creating_too_many_groups_keeps_the_name_typed() {
    let app = app_with(&["--create-limit", "1"]).await;
    let mut alice = app.client();
    alice.register("alice").await;
    let first = alice.post("/groups", &[("name", "First"), ("members", "")]).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.body);
    let second = alice.post("/groups", &[("name", "Weekend hiking crew"), ("members", "alice")]).await;
    assert_slowed_down(&second);
    assert!(second.body.contains(r#"<form method="post" action="/groups""#), "a form that sends it again");
    assert!(second.body.contains(">Weekend hiking crew</textarea>"), "the name is kept: {}", second.body);
    assert!(second.body.contains(">alice</textarea>"), "the members are kept");
    // Opening a direct message spends from the same budget.
    let dm = alice.post("/u/alice/message", &[]).await;
    assert_slowed_down(&dm);
}

#[tokio::test]
async fn editing_too_fast_keeps_the_new_text_and_htmx_hears_why_in_flash() {
    let app = app_with(&["--write-limit", "2", "--send-limit", "100000"]).await;
    let mut alice = app.client();
    alice.register("alice").await;
    let saved = open_dm(&mut alice, "alice").await;
    let id = send(&mut alice, saved, "first draft").await;
    let edit = format!("/c/{saved}/m/{id}/edit");
    assert_eq!(alice.post(&edit, &[("body", "second draft")]).await.status, StatusCode::SEE_OTHER);
    assert_eq!(htmx_post(&mut alice, &format!("/c/{saved}/m/{id}/react"), &[("emoji", "👍")]).await.status, StatusCode::OK);

    let slowed = alice.post(&edit, &[("body", "my carefully worded third draft")]).await;
    assert_slowed_down(&slowed);
    assert!(slowed.body.contains(">my carefully worded third draft</textarea>"), "{}", slowed.body);
    assert!(slowed.body.contains(&format!(r#"href="/c/{saved}""#)), "a way back to the conversation");

    // htmx: the reason goes to the page's alert region, the form stays as typed.
    let react = htmx_post(&mut alice, &format!("/c/{saved}/m/{id}/react"), &[("emoji", "🎉")]).await;
    assert_slowed_down(&react);
    assert_eq!(react.header("hx-retarget"), "#flash");
    assert!(react.body.contains(r#"role="alert""#) && !react.body.contains("<html"), "a fragment: {}", react.body);
}

#[tokio::test]
async fn searching_too_fast_keeps_the_query() {
    let app = app_with(&["--search-limit", "1"]).await;
    let mut alice = app.client();
    alice.register("alice").await;
    assert_eq!(alice.get("/search?q=first").await.status, StatusCode::OK);
    let slowed = alice.get("/search?q=where+is+the+picnic").await;
    assert_slowed_down(&slowed);
    assert!(slowed.body.contains(r#"<form method="get" action="/search""#));
    assert!(slowed.body.contains(">where is the picnic</textarea>"), "{}", slowed.body);
    assert_slowed_down(&alice.get("/people?q=bo").await);
}

#[tokio::test]
async fn a_password_is_never_written_back_into_the_slow_down_page() {
    let app = app_with(&["--write-limit", "1"]).await;
    let mut alice = app.client();
    alice.register("alice").await;
    let form = [("current_password", "wrong one"), ("new_password", "a brand new secret phrase")];
    alice.post("/settings/password", &form).await;
    let slowed = alice.post("/settings/password", &form).await;
    assert_slowed_down(&slowed);
    assert!(!slowed.body.contains("brand new secret") && !slowed.body.contains("wrong one"));
}

#[tokio::test]
async fn a_user_may_hold_only_so_many_streams() {
    let app = app_with(&["--stream-limit", "2"]).await;
    let mut alice = app.client();
    alice.register("alice").await;
    let first = alice.events("/events", None).await;
    let second = alice.events("/events", None).await;
    assert_eq!((first.status, second.status), (StatusCode::OK, StatusCode::OK));
    let third = alice.events("/events", None).await;
    assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS);
    // Another person is not affected, and closing a tab frees a place.
    let mut bob = alice.fresh();
    bob.register("bob").await;
    assert_eq!(bob.events("/events", None).await.status, StatusCode::OK);
    drop(first);
    let mut again = alice.events("/events", None).await;
    for _ in 0..50 {
        if again.status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        again = alice.events("/events", None).await;
    }
    assert_eq!(again.status, StatusCode::OK);
}
