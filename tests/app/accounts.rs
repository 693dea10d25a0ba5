//! Accounts as a person meets them: register, log in and out, sessions, passwords.

use axum::http::StatusCode;

use crate::on_both_backends;
use crate::support::{PASSWORD, TestApp};

on_both_backends!(
    a_new_user_registers_and_is_signed_in,
    the_first_account_is_the_administrator,
    logging_out_ends_the_session_for_good,
    login_works_by_username_and_by_email_with_one_generic_error,
    bad_registrations_say_why_and_keep_the_input,
    duplicate_usernames_and_emails_are_refused_in_any_case,
    session_id_changes_at_login,
    sessions_page_lists_devices_and_signs_out_others,
    password_change_needs_the_current_one_and_signs_out_other_devices,
    repeated_wrong_passwords_are_limited_but_the_owner_gets_in_from_elsewhere,
    devices_idle_past_the_session_expiry_leave_the_sessions_page_and_the_database,
    a_stream_ends_when_its_device_is_deleted_without_any_message,
);

async fn a_new_user_registers_and_is_signed_in(app: TestApp) {
    let mut alice = app.client();
    let page = alice.get("/register").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(r#"<label for="username">Username</label>"#));

    alice
        .post("/register", &[("username", "alice"), ("email", "alice@example.org"), ("password", PASSWORD), ("display_name", "Alice L.")])
        .await
        .assert_redirect("/");
    let home = alice.get("/").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("Alice L."), "display name shown in the header");
    assert!(home.body.contains("Log out"));
}

async fn the_first_account_is_the_administrator(app: TestApp) {
    app.client().register("first").await;
    app.client().register("second").await;
    let admins: Vec<(String, bool)> = reale::with_db!(app.state.store, pool => {
        sqlx::query_as("SELECT username, is_admin FROM users ORDER BY id").fetch_all(pool).await
    })
    .expect("query users");
    assert_eq!(admins, vec![("first".to_string(), true), ("second".to_string(), false)]);
}

async fn logging_out_ends_the_session_for_good(app: TestApp) {
    let mut alice = app.client();
    alice.register("alice").await;
    let stolen_cookie = alice.clone();
    alice.post("/logout", &[]).await.assert_redirect("/login");
    alice.get("/").await.assert_redirect("/login");
    alice.get("/settings/sessions").await.assert_redirect("/login");

    // Replaying the cookie from before logout gets nowhere.
    let mut replay = stolen_cookie;
    replay.get("/").await.assert_redirect("/login");
}

async fn login_works_by_username_and_by_email_with_one_generic_error(app: TestApp) {
    let mut alice = app.client();
    alice.register("alice").await;
    alice.post("/logout", &[]).await;

    alice.login("alice", PASSWORD).await.assert_redirect("/");
    alice.post("/logout", &[]).await;
    alice.login("ALICE@Example.org", PASSWORD).await.assert_redirect("/");
    alice.post("/logout", &[]).await;

    let wrong_password = alice.login("alice", "not the password at all").await;
    let no_such_user = alice.login("nobody", "not the password at all").await;
    assert_eq!(wrong_password.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(no_such_user.status, StatusCode::UNPROCESSABLE_ENTITY);
    let message = "That username or email and password do not match.";
    assert!(wrong_password.body.contains(message));
    assert!(no_such_user.body.contains(message));
    assert!(wrong_password.body.contains(r#"value="alice""#), "the login is kept");
    alice.get("/").await.assert_redirect("/login");
}

async fn bad_registrations_say_why_and_keep_the_input(app: TestApp) {
    let mut visitor = app.client();
    let (long_name, long_password) = ("x".repeat(33), "p".repeat(1025));
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("username", "a"), ("email", "a@example.org"), ("password", PASSWORD)], "at least 2 characters"),
        (vec![("username", &long_name), ("email", "x@example.org"), ("password", PASSWORD)], "at most 32 characters"),
        (vec![("username", "no spaces"), ("email", "n@example.org"), ("password", PASSWORD)], "only letters a–z"),
        (vec![("username", "bob"), ("email", "not-an-email"), ("password", PASSWORD)], "email address like"),
        (vec![("username", "bob"), ("email", "bob@example.org"), ("password", "short")], "at least 8 characters"),
        (vec![("username", "bob"), ("email", "bob@example.org"), ("password", "password123")], "too common"),
        (vec![("username", "bob"), ("email", "bob@example.org"), ("password", &long_password)], "at most 1,024 bytes"),
        (vec![("email", "bob@example.org"), ("password", PASSWORD)], "Choose a username"),
        (vec![], "Choose a username"),
    ];
    for (form, message) in cases {
        let response = visitor.post("/register", &form).await;
        assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY, "{form:?}");
        assert!(response.body.contains(message), "{form:?} should say {message:?}");
        if let Some((_, email)) = form.iter().find(|(k, _)| *k == "email") {
            assert!(response.body.contains(&format!(r#"value="{email}""#)), "email kept for {form:?}");
        }
        assert!(!response.body.contains(PASSWORD), "passwords are never echoed");
    }
    // A long password is fine.
    let long = "a long passphrase that keeps going ".repeat(3);
    visitor
        .post("/register", &[("username", "longpw"), ("email", "l@example.org"), ("password", &long)])
        .await
        .assert_redirect("/");

    // Broken bodies: never a 500, and nothing written.
    let mut other = app.client();
    for (body, content_type, expected) in [
        (b"username=%zz&email=%&password=%%".to_vec(), "application/x-www-form-urlencoded", StatusCode::UNPROCESSABLE_ENTITY),
        (b"username=\xff\xfe&email=\xc3&password=\x80abcdefgh".to_vec(), "application/x-www-form-urlencoded", StatusCode::UNPROCESSABLE_ENTITY),
        (b"{\"username\":\"json\"}".to_vec(), "application/json", StatusCode::UNSUPPORTED_MEDIA_TYPE),
        (vec![b'a'; 2 * 1024 * 1024], "application/x-www-form-urlencoded", StatusCode::PAYLOAD_TOO_LARGE),
    ] {
        let response = other.post_raw("/register", body, content_type).await;
        assert_eq!(response.status, expected);
        assert!(response.body.contains("<h1") || response.body.contains("field-error"), "a friendly page");
    }
    let users: i64 = reale::with_db!(app.state.store, pool => {
        sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(pool).await
    })
    .expect("count");
    assert_eq!(users, 1, "only the valid registration was written");
}

async fn duplicate_usernames_and_emails_are_refused_in_any_case(app: TestApp) {
    app.client().register("alice").await;
    let mut other = app.client();
    let taken = other.post("/register", &[("username", "ALICE"), ("email", "new@example.org"), ("password", PASSWORD)]).await;
    assert_eq!(taken.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(taken.body.contains("That username is taken"));
    let email_taken = other.post("/register", &[("username", "alice2"), ("email", "Alice@EXAMPLE.org"), ("password", PASSWORD)]).await;
    assert_eq!(email_taken.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(email_taken.body.contains("already exists"));
}

async fn session_id_changes_at_login(app: TestApp) {
    let mut alice = app.client();
    alice.register("alice").await;
    alice.post("/logout", &[]).await;
    // Mallory signs in and plants her own, valid session id in Alice's browser.
    let mut mallory = app.client();
    mallory.register("mallory").await;
    let planted = mallory.cookies.get("reale_session").cloned().expect("mallory's session cookie");
    alice.cookies.insert("reale_session".into(), planted.clone());
    assert!(alice.get("/").await.body.contains(r#"title="@mallory""#), "the planted id is a live session");
    alice.login("alice", PASSWORD).await.assert_redirect("/");
    let after = alice.cookies.get("reale_session").cloned().expect("session cookie set at login");
    assert_ne!(after, planted, "a new session id at login");
    assert!(alice.get("/").await.body.contains(r#"title="@alice""#));
    // The planted id does not lead into Alice's account.
    let home = mallory.get("/").await;
    assert!(!home.body.contains(r#"title="@alice""#), "the old id must not open alice's account");

    let mut bob = app.client();
    let response = bob.post("/register", &[("username", "bob"), ("email", "bob@example.org"), ("password", PASSWORD)]).await;
    let cookie = response.header("set-cookie").to_string();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain http: no Secure flag ({cookie})");
}

async fn sessions_page_lists_devices_and_signs_out_others(app: TestApp) {
    let mut laptop = app.client();
    laptop.register("alice").await;
    let mut phone = app.client().from_ip([127, 0, 0, 2]);
    phone.user_agent = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Firefox/140.0".into();
    phone.login("alice", PASSWORD).await.assert_redirect("/");
    let mut tablet = app.client().from_ip([127, 0, 0, 3]);
    tablet.login("alice", PASSWORD).await.assert_redirect("/");

    let page = laptop.get("/settings/sessions").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Chrome on Linux"));
    assert!(page.body.contains("Firefox on Android"));
    assert!(page.body.contains("127.0.0.2"));
    assert!(page.body.contains("This device"));
    assert_eq!(page.body.matches(r#"class="device""#).count(), 3);

    // Sign out the phone alone.
    let phone_id = device_id_with_ip(&page.body, "127.0.0.2");
    laptop.post(&format!("/settings/sessions/{phone_id}/revoke"), &[]).await.assert_redirect("/settings/sessions");
    phone.get("/").await.assert_redirect("/login");
    assert_eq!(tablet.get("/").await.status, StatusCode::OK);

    // Someone else's device id is not found, not revoked.
    let mut mallory = app.client();
    mallory.register("mallory").await;
    let laptop_page = laptop.get("/settings/sessions").await;
    let tablet_id = device_id_with_ip(&laptop_page.body, "127.0.0.3");
    assert_eq!(mallory.post(&format!("/settings/sessions/{tablet_id}/revoke"), &[]).await.status, StatusCode::NOT_FOUND);
    assert_eq!(tablet.get("/").await.status, StatusCode::OK);

    laptop.post("/settings/sessions/revoke-others", &[]).await.assert_redirect("/settings/sessions");
    tablet.get("/").await.assert_redirect("/login");
    assert_eq!(laptop.get("/").await.status, StatusCode::OK);
}

/// Runs one statement on the app's database, as another instance (or an operator)
/// would, behind the running app's back.
async fn execute(app: &TestApp, sql: &str, id: i64) {
    match &app.state.store.db {
        reale::store::Db::Sqlite(pool) => sqlx::query(sql).bind(id).execute(pool).await.map(|_| ()),
        reale::store::Db::Postgres(pool) => sqlx::query(sql).bind(id).execute(pool).await.map(|_| ()),
    }
    .expect("statement runs");
}

async fn devices_idle_past_the_session_expiry_leave_the_sessions_page_and_the_database(app: TestApp) {
    let mut laptop = app.client();
    laptop.register("alice").await;
    let mut old_phone = app.client().from_ip([127, 0, 0, 9]);
    old_phone.login("alice", PASSWORD).await.assert_redirect("/");
    let page = laptop.get("/settings/sessions").await;
    assert_eq!(page.body.matches(r#"class="device""#).count(), 2);
    let phone_id: i64 = device_id_with_ip(&page.body, "127.0.0.9").parse().expect("id");

    // The phone was last used 31 days ago: its session expired after 30 idle days.
    let days_31 = 31 * 24 * 3600 * 1000_i64;
    execute(&app, &format!("UPDATE devices SET last_active_at = last_active_at - {days_31} WHERE id = $1"), phone_id).await;
    let page = laptop.get("/settings/sessions").await;
    assert_eq!(page.body.matches(r#"class="device""#).count(), 1, "only this laptop: {}", page.body);
    assert!(!page.body.contains("127.0.0.9"));

    // The hourly sweep deletes its row (and only its row).
    let swept = reale::accounts::store::delete_idle_devices(&app.state.store).await.expect("sweep");
    assert_eq!(swept, vec![phone_id]);
    assert_eq!(laptop.get("/").await.status, StatusCode::OK);
    old_phone.get("/").await.assert_redirect("/login");
}

/// A sign-out whose Redis message never arrives (here: the row deleted directly, as
/// another instance without a bus would) still ends the stream within the check period.
async fn a_stream_ends_when_its_device_is_deleted_without_any_message(app: TestApp) {
    let mut laptop = app.client();
    laptop.register("alice").await;
    let mut phone = app.client().from_ip([127, 0, 0, 7]);
    phone.login("alice", PASSWORD).await.assert_redirect("/");
    let mut phone_stream = phone.events("/events", None).await;
    let mut laptop_stream = laptop.events("/events", None).await;
    assert_eq!(phone_stream.status, StatusCode::OK);
    let page = laptop.get("/settings/sessions").await;
    let phone_id: i64 = device_id_with_ip(&page.body, "127.0.0.7").parse().expect("id");

    execute(&app, "DELETE FROM devices WHERE id = $1", phone_id).await;
    let period = reale::realtime::REVOCATION_CHECK;
    let signed_out = phone_stream.expect("signed out", period + std::time::Duration::from_secs(5)).await;
    assert_eq!(signed_out.name, "resync");
    assert!(phone_stream.ends_within(std::time::Duration::from_secs(2)).await, "the phone's stream ends");
    // The laptop's stream stays: as long a wait as the phone's took, and then some.
    assert!(!laptop_stream.ends_within(period + std::time::Duration::from_secs(5)).await, "the laptop's stream stays open");
}

/// The revoke form's id for the device row that shows `ip`.
fn device_id_with_ip(body: &str, ip: &str) -> String {
    let row = body.split(r#"<li class="device""#).find(|row| row.contains(ip)).expect("device row");
    let start = row.find("/settings/sessions/").expect("revoke form") + "/settings/sessions/".len();
    row[start..].split('/').next().expect("id").to_string()
}

async fn password_change_needs_the_current_one_and_signs_out_other_devices(app: TestApp) {
    let mut laptop = app.client();
    laptop.register("alice").await;
    let mut phone = app.client();
    phone.login("alice", PASSWORD).await.assert_redirect("/");

    let wrong = laptop.post("/settings/password", &[("current_password", "nope nope nope"), ("new_password", "a brand new passphrase")]).await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong.body.contains("current password is not correct"));
    let weak = laptop.post("/settings/password", &[("current_password", PASSWORD), ("new_password", "12345678")]).await;
    assert_eq!(weak.status, StatusCode::UNPROCESSABLE_ENTITY);

    laptop
        .post("/settings/password", &[("current_password", PASSWORD), ("new_password", "a brand new passphrase")])
        .await
        .assert_redirect("/settings/password?changed=1");
    assert!(laptop.get("/settings/password?changed=1").await.body.contains("Your password was changed"));
    phone.get("/").await.assert_redirect("/login");
    assert_eq!(phone.login("alice", PASSWORD).await.status, StatusCode::UNPROCESSABLE_ENTITY);
    phone.login("alice", "a brand new passphrase").await.assert_redirect("/");
}

async fn repeated_wrong_passwords_are_limited_but_the_owner_gets_in_from_elsewhere(app: TestApp) {
    app.client().register("alice").await;
    let mut attacker = app.client().from_ip([127, 0, 0, 66]);
    let mut limited = 0;
    for _ in 0..30 {
        let response = attacker.login("alice", "guess guess guess").await;
        if response.status == StatusCode::TOO_MANY_REQUESTS {
            limited += 1;
            assert!(response.header("retry-after").parse::<u64>().is_ok_and(|s| s > 0));
            assert!(response.body.contains("Too many attempts"));
        }
    }
    assert!(limited >= 15, "only {limited} of 30 attempts were limited");
    // Even the right password is refused from the attacking address while limited.
    assert_eq!(attacker.login("alice", PASSWORD).await.status, StatusCode::TOO_MANY_REQUESTS);
    // The owner, elsewhere, is not locked out.
    let mut owner = app.client().from_ip([127, 0, 0, 7]);
    owner.login("alice", PASSWORD).await.assert_redirect("/");
}
