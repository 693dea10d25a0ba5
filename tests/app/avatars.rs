//! Issue 12, avatars: Alice's picture, squared and stripped, reaches Bob in message
//! headers, the DM sidebar, member lists and her profile card, and live; a file that
//! is not a picture is refused; removing it brings the initials back.

use std::io::Cursor;
use std::time::Duration;

use axum::http::{StatusCode, header};

use crate::conversations::{conversation_id, open_dm, send};
use crate::files::{contains, download, jpeg_with_gps, multipart, multipart_type};
use crate::profiles::{element, user_id};
use crate::support::{Client, TestApp};

const SOON: Duration = Duration::from_secs(3);

/// A 300 × 120 PNG: not square, so the served avatar shows the crop.
fn wide_png() -> Vec<u8> {
    let image = image::RgbImage::from_fn(300, 120, |x, _| if x < 150 { image::Rgb([10, 200, 10]) } else { image::Rgb([200, 10, 200]) });
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(image).write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png).expect("png");
    png
}

async fn upload(client: &mut Client, name: &str, bytes: &[u8]) -> crate::support::Resp {
    client.post_raw("/settings/profile/avatar", multipart(&[], &[(name, "image/png", bytes)]), &multipart_type()).await
}

/// The avatar slot for `user` in `html`: its `src` when it is a picture, None for initials.
fn avatar_src(html: &str, user: i64) -> Option<String> {
    let img = format!("<img class=\"avatar avatar-{user}\" src=\"");
    if let Some(at) = html.find(&img) {
        let rest = &html[at + img.len()..];
        return Some(rest[..rest.find('"').expect("src closes")].to_string());
    }
    assert!(html.contains(&format!("<span class=\"avatar avatar-{user} initials")), "no avatar slot for {user} in:\n{html}");
    None
}

async fn alices_avatar_reaches_bob_everywhere_her_name_is_and_live(app: TestApp) {
    let mut alice = app.client();
    alice.register("alice").await;
    let mut bob = app.client();
    bob.register("bob").await;
    let alice_id = user_id(&app, "alice").await;
    let dm = open_dm(&mut alice, "bob").await;
    let hello = send(&mut alice, dm, "hello").await;
    let group = conversation_id(&alice.post("/groups", &[("name", "Trip"), ("members", "bob")]).await);
    let mut stream = bob.events("/events", None).await;

    upload(&mut alice, "wide.png", &wide_png()).await.assert_redirect("/settings/profile?saved=avatar");
    let event = stream.expect(&format!("data-each=\".avatar-{alice_id}\""), SOON).await;
    let live = avatar_src(&event.data, alice_id).expect("a picture arrives live");

    let page = bob.get(&format!("/c/{dm}")).await.body;
    let sidebar = element(&page, &format!("<li id=\"sidebar-{dm}\""), "</li>");
    let article = element(&page, &format!("<article id=\"message-{hello}\""), "</article>");
    let src = avatar_src(sidebar, alice_id).expect("sidebar shows her picture");
    assert_eq!(avatar_src(article, alice_id).as_deref(), Some(src.as_str()), "{article}");
    assert_eq!(src, live);
    assert!(article.contains("width=\"32\" height=\"32\" alt=\"\" loading=\"lazy\""), "{article}");
    let members = bob.get(&format!("/c/{group}/members")).await.body;
    let list = element(&members, "<ul class=\"members\">", "</ul>");
    assert_eq!(avatar_src(list, alice_id).as_deref(), Some(src.as_str()), "{list}");
    assert_eq!(avatar_src(&bob.get("/u/alice").await.body, alice_id).as_deref(), Some(src.as_str()));

    // Served square, as PNG we wrote, cacheable for good (the key changes with the picture).
    let (status, headers, bytes) = download(&app, &bob, &src, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "image/png");
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert!(headers[header::CACHE_CONTROL].to_str().unwrap().contains("immutable"));
    let served = image::load_from_memory(&bytes).expect("decodes");
    assert_eq!((served.width(), served.height()), (120, 120));
    let etag = headers[header::ETAG].to_str().unwrap().to_string();
    let (status, _, _) = download(&app, &bob, &src, &[("if-none-match", &etag)]).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);

    // A photo with GPS EXIF replaces it: the new one carries none, the old URL is gone.
    upload(&mut alice, "photo.jpg", &jpeg_with_gps()).await.assert_redirect("/settings/profile?saved=avatar");
    let page = bob.get(&format!("/c/{dm}")).await.body;
    let new_src = avatar_src(element(&page, &format!("<article id=\"message-{hello}\""), "</article>"), alice_id).expect("picture");
    assert_ne!(new_src, src);
    let (status, _, bytes) = download(&app, &bob, &new_src, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!contains(&bytes, b"GPS-SECRET-SPOT") && !contains(&bytes, b"Exif"), "metadata left in the avatar");
    let square = image::load_from_memory(&bytes).expect("decodes");
    assert_eq!((square.width(), square.height()), (20, 20));
    assert_eq!(download(&app, &bob, &src, &[]).await.0, StatusCode::NOT_FOUND);
    // Signed out: no avatar.
    assert_ne!(download(&app, &app.client(), &new_src, &[]).await.0, StatusCode::OK);
}

async fn a_file_that_is_not_a_picture_is_refused_and_removing_brings_back_initials(app: TestApp) {
    let mut alice = app.client();
    alice.register("alice").await;
    let mut bob = app.client();
    bob.register("bob").await;
    let alice_id = user_id(&app, "alice").await;
    let dm = open_dm(&mut alice, "bob").await;
    let hello = send(&mut alice, dm, "hello").await;

    let response = upload(&mut alice, "notes.png", b"just some text, claiming to be a PNG").await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(response.body.contains("That file is not a picture we can use"), "{}", response.body);
    assert!(response.body.contains("id=\"avatar\" name=\"avatar\" type=\"file\" accept=\"image/*\" aria-invalid=\"true\""), "{}", response.body);
    let page = bob.get(&format!("/c/{dm}")).await.body;
    assert_eq!(avatar_src(element(&page, &format!("<article id=\"message-{hello}\""), "</article>"), alice_id), None);

    upload(&mut alice, "wide.png", &wide_png()).await.assert_redirect("/settings/profile?saved=avatar");
    let page = bob.get(&format!("/c/{dm}")).await.body;
    let src = avatar_src(element(&page, &format!("<article id=\"message-{hello}\""), "</article>"), alice_id).expect("picture");
    let mut stream = bob.events("/events", None).await;

    alice.post("/settings/profile/avatar/remove", &[]).await.assert_redirect("/settings/profile?saved=avatar");
    let event = stream.expect(&format!("<span class=\"avatar avatar-{alice_id} initials"), SOON).await;
    assert!(event.data.contains(">A</span>"), "{}", event.data);
    let page = bob.get(&format!("/c/{dm}")).await.body;
    assert_eq!(avatar_src(element(&page, &format!("<article id=\"message-{hello}\""), "</article>"), alice_id), None);
    assert_eq!(download(&app, &bob, &src, &[]).await.0, StatusCode::NOT_FOUND);
}

/// The rail entry of `server` on a page.
fn rail_entry(page: &str, server: i64) -> &str {
    element(page, &format!("<li><a href=\"/s/{server}\" class=\"rail-item"), "</li>")
}

async fn a_server_icon_shows_in_the_rail_and_only_managers_set_it(app: TestApp) {
    let mut alice = app.client();
    alice.register("alice").await;
    let server = crate::servers::create_server(&mut alice, "Rustaceans").await;
    let code = crate::servers::invite(&mut alice, server, "10080", "0").await;
    let mut bob = app.client();
    bob.register("bob").await;
    bob.post(&format!("/i/{code}"), &[]).await.assert_redirect(&format!("/s/{server}"));
    let rail = bob.get("/").await.body;
    assert!(rail_entry(&rail, server).contains("<span aria-hidden=\"true\">R</span>"), "{rail}");

    // Bob may not (no MANAGE_SERVER); a text file is refused with why; a picture is taken.
    let icon = |bytes: &[u8]| multipart(&[], &[("icon.png", "image/png", bytes)]);
    let response = bob.post_raw(&format!("/s/{server}/icon"), icon(&wide_png()), &multipart_type()).await;
    assert_eq!(response.status, StatusCode::FORBIDDEN);
    let response = alice.post_raw(&format!("/s/{server}/icon"), icon(b"plain words"), &multipart_type()).await;
    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(response.body.contains("That file is not a picture we can use"), "{}", response.body);
    let response = alice.post_raw(&format!("/s/{server}/icon"), icon(&wide_png()), &multipart_type()).await;
    response.assert_redirect(&format!("/s/{server}/settings"));

    let rail = bob.get("/").await.body;
    let entry = rail_entry(&rail, server);
    assert!(entry.contains("<img class=\"rail-icon\" src=\"/avatars/") && entry.contains("<span class=\"visually-hidden\">Rustaceans"), "{entry}");
    let src = entry.split("src=\"").nth(1).and_then(|s| s.split('"').next()).expect("src");
    let (status, _, bytes) = download(&app, &bob, src, &[]).await;
    assert_eq!(status, StatusCode::OK);
    let square = image::load_from_memory(&bytes).expect("decodes");
    assert_eq!(square.width(), square.height());

    alice.post(&format!("/s/{server}/icon/remove"), &[]).await.assert_redirect(&format!("/s/{server}/settings"));
    assert!(!rail_entry(&bob.get("/").await.body, server).contains("<img"));
    assert_eq!(download(&app, &bob, src, &[]).await.0, StatusCode::NOT_FOUND);
}

crate::on_both_backends!(
    alices_avatar_reaches_bob_everywhere_her_name_is_and_live,
    a_file_that_is_not_a_picture_is_refused_and_removing_brings_back_initials,
    a_server_icon_shows_in_the_rail_and_only_managers_set_it,
);
