//! Reacting to a message through "Add reaction": a page of emoji without JavaScript,
//! the same picker inline with htmx, and a refused emoji that keeps what was typed.
//! Also keeps the message partial small, since every page and every stream carries it.

use axum::http::{Method, StatusCode};

use crate::conversations::{htmx, last_message_id, open_dm, send};
use crate::on_both_backends;
use crate::support::TestApp;

on_both_backends!(bob_reacts_through_the_picker_page_without_javascript, the_picker_opens_inline_with_htmx,);

async fn bob_reacts_through_the_picker_page_without_javascript(app: TestApp) {
    let mut alice = app.client();
    alice.register("alice").await;
    let mut bob = app.client();
    bob.register("bob").await;
    let dm = open_dm(&mut alice, "bob").await;
    let hello = send(&mut alice, dm, "Hello **Bob**").await;

    // The message offers one link, "Add reaction", to a page of emoji.
    let page = bob.get(&format!("/c/{dm}")).await;
    let picker_url = format!("/c/{dm}/m/{hello}/react");
    assert!(page.body.contains(&format!(r#"href="{picker_url}""#)) && page.body.contains(">Add reaction</a>"), "{}", page.body);
    let picker = bob.get(&picker_url).await;
    assert_eq!(picker.status, StatusCode::OK);
    assert!(picker.body.contains("<h1 id=\"react-title\">Add reaction</h1>"));
    assert!(picker.body.contains("To alice&#39;s message: Hello Bob") || picker.body.contains("To alice's message: Hello Bob"), "{}", picker.body);
    assert!(picker.body.contains(r#"aria-label="React with 👍""#) && picker.body.contains(&format!(r#"action="{picker_url}""#)));
    assert!(!picker.body.contains("hx-post"), "the page's forms post plainly");

    bob.post(&picker_url, &[("emoji", "👍")]).await.assert_redirect(&format!("/c/{dm}/m/{hello}"));
    let page = alice.get(&format!("/c/{dm}")).await;
    assert!(page.body.contains(r#"aria-label="👍 1: bob. Toggle your reaction""#));

    // A free emoji that is not one: 422, the picker again with the reason and the text.
    let refused = bob.post(&picker_url, &[("emoji", "ok then")]).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("Reactions are a single emoji.") && refused.body.contains(r#"value="ok then""#), "{}", refused.body);
    assert!(refused.body.contains(r#"aria-invalid="true""#));

    // Someone outside the conversation finds no picker.
    let mut eve = app.client();
    eve.register("eve").await;
    assert_eq!(eve.get(&picker_url).await.status, StatusCode::NOT_FOUND);
}

async fn the_picker_opens_inline_with_htmx(app: TestApp) {
    let mut alice = app.client();
    alice.register("alice").await;
    let mut bob = app.client();
    bob.register("bob").await;
    let dm = open_dm(&mut alice, "bob").await;

    let sent = alice.send(htmx(Method::POST, &format!("/c/{dm}/messages"), &[("body", "inline hello"), ("client_id", "r1")])).await;
    let id = last_message_id(&sent.body);
    let partial = sent.body.split("<form id=\"compose\"").next().expect("partial");
    // Every page and every stream carries this partial: a plain message stays under
    // 1.5 KB (it was 2.4 KB with a form per emoji and the htmx attributes repeated).
    assert!(partial.len() < 1_500, "{} bytes: {partial}", partial.len());

    let picker = bob.send(htmx(Method::GET, &format!("/c/{dm}/m/{id}/react"), &[])).await;
    assert_eq!(picker.status, StatusCode::OK);
    assert!(picker.body.starts_with(&format!(r#"<div id="react-{id}" class="react-picker" role="group" aria-label="Add reaction">"#)), "{}", picker.body);
    assert!(picker.body.contains(&format!(r#"hx-post="/c/{dm}/m/{id}/react""#)) && picker.body.contains(r#"aria-label="React with 🎉""#));

    let refused = bob.send(htmx(Method::POST, &format!("/c/{dm}/m/{id}/react"), &[("emoji", "nope")])).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.header("hx-retarget"), format!("#react-{id}"), "the error goes into the picker, not over the message");
    assert!(refused.body.contains(r#"value="nope""#) && refused.body.contains("Reactions are a single emoji."));

    let reacted = bob.send(htmx(Method::POST, &format!("/c/{dm}/m/{id}/react"), &[("emoji", "🎉")])).await;
    assert!(reacted.body.starts_with(&format!("<article id=\"message-{id}\"")) && reacted.body.contains("🎉 <span class=\"count\">1</span>"));
}
