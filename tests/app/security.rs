//! The security baseline every response carries.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};

use crate::support::{Backend, PASSWORD, TestApp};

#[tokio::test]
async fn every_page_carries_csp_with_a_fresh_nonce_and_the_other_headers() {
    let app = TestApp::spawn(Backend::Sqlite).await.expect("sqlite always works");
    let mut visitor = app.client();
    let mut nonces = Vec::new();
    for path in ["/register", "/login", "/no-such-page", "/healthz"] {
        let response = visitor.get(path).await;
        let csp = response.header("content-security-policy");
        assert!(csp.contains("script-src 'self' 'nonce-"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("object-src 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{path}: {csp}");
        assert_eq!(response.header("x-content-type-options"), "nosniff");
        assert!(!response.header("referrer-policy").is_empty());
        assert!(response.header("strict-transport-security").is_empty(), "no HSTS over plain http");
        nonces.push(csp.split("'nonce-").nth(1).unwrap_or("").to_string());
    }
    nonces.dedup();
    assert_eq!(nonces.len(), 4, "a new nonce per response");
    let page = visitor.get("/login").await;
    assert!(!page.body.contains(" style="), "no inline style attributes");
    assert!(!page.body.contains("<script>"), "no inline scripts");
}

#[tokio::test]
async fn https_public_url_turns_on_secure_host_cookies_and_hsts() {
    let app = TestApp::spawn_with(Backend::Sqlite, &["--public-url", "https://chat.example.org"]).await.expect("sqlite");
    let mut alice = app.client();
    let response = alice
        .post("/register", &[("username", "alice"), ("email", "alice@example.org"), ("password", PASSWORD)])
        .await;
    let cookie = response.header("set-cookie");
    assert!(cookie.starts_with("__Host-reale_session="), "{cookie}");
    assert!(cookie.contains("Secure") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"));
    assert!(response.header("strict-transport-security").contains("max-age="));
}

#[tokio::test]
async fn a_form_posted_from_another_site_is_refused_and_writes_nothing() {
    let app = TestApp::spawn(Backend::Sqlite).await.expect("sqlite");
    let mut alice = app.client();
    alice.register("alice").await;
    for (name, value) in [("sec-fetch-site", "cross-site"), ("origin", "http://evil.example")] {
        let request = Request::builder()
            .method(Method::POST)
            .uri("/register")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(name, value)
            .body(Body::from(format!("username=evil&email=evil@example.org&password={}", PASSWORD.replace(' ', "+"))))
            .expect("request");
        let response = app.client().send(request).await;
        assert_eq!(response.status, StatusCode::FORBIDDEN);
        assert!(response.body.contains("another site"));
        let logout = Request::builder().method(Method::POST).uri("/logout").header(name, value).body(Body::empty()).expect("request");
        assert_eq!(alice.send(logout).await.status, StatusCode::FORBIDDEN);
    }
    assert_eq!(alice.get("/").await.status, StatusCode::OK, "still signed in");
    assert_eq!(app.client().login("evil", PASSWORD).await.status, StatusCode::UNPROCESSABLE_ENTITY, "no account was created");
}

#[tokio::test]
async fn friendly_error_pages_and_htmx_fragments() {
    let app = TestApp::spawn(Backend::Sqlite).await.expect("sqlite");
    let mut visitor = app.client();
    let missing = visitor.get("/nowhere").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body.contains("<h1 id=\"error-title\">Not found</h1>"));
    assert!(missing.header("content-type").starts_with("text/html"));

    let wrong_method = visitor.send(Request::builder().method(Method::DELETE).uri("/login").body(Body::empty()).expect("req")).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(wrong_method.body.contains("Not allowed"));

    let htmx = visitor
        .send(Request::builder().uri("/nowhere").header("hx-request", "true").body(Body::empty()).expect("req"))
        .await;
    assert_eq!(htmx.status, StatusCode::NOT_FOUND);
    assert!(htmx.body.starts_with("<div class=\"flash error\" role=\"alert\">"), "{}", htmx.body);
    assert_eq!(htmx.header("hx-retarget"), "#flash");

    // htmx requests that end in a redirect get HX-Redirect, so htmx navigates instead of swapping.
    let redirect = visitor.send(Request::builder().uri("/").header("hx-request", "true").body(Body::empty()).expect("req")).await;
    assert_eq!(redirect.status, StatusCode::OK);
    assert_eq!(redirect.header("hx-redirect"), "/login");
}

#[tokio::test]
async fn assets_are_served_immutable_under_their_hash() {
    let app = TestApp::spawn(Backend::Sqlite).await.expect("sqlite");
    let mut visitor = app.client();
    let page = visitor.get("/login").await;
    let css = page.body.split("href=\"").find(|s| s.starts_with("/assets/") && s.contains(".css\"")).and_then(|s| s.split('"').next()).expect("css link");
    let response = visitor.get(css).await;
    assert_eq!(response.status, StatusCode::OK);
    assert!(response.header("cache-control").contains("immutable"));
    assert!(response.header("content-type").starts_with("text/css"));
    let stale = format!("/assets/000000000000/{}", css.rsplit('/').next().expect("file name"));
    assert_eq!(visitor.get(&stale).await.status, StatusCode::NOT_FOUND);
}
