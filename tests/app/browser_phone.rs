//! Issue 12 in Chromium: below 720 px the app is a phone app (the conversation list a
//! screen of its own, a conversation full screen with a way back, the composer at the
//! bottom of the viewport); at desktop width both sit side by side. And a new user's
//! time zone is preset from the browser's.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use fantoccini::Locator;
use futures_util::FutureExt;
use serde_json::{Value, json};

use crate::browser::{Browser, chromium_and_driver, skip};
use crate::browser_chat::register;
use crate::conversations::{open_dm, send};
use crate::support::{Backend, FLOW_ARGS, TestApp};

/// Where the sidebar and the main pane are on screen: [sidebar left, width, right,
/// display], [main left, width, display], the viewport's width.
async fn layout(browser: &Browser) -> Value {
    browser
        .client
        .execute(
            "const box = (el) => { const r = el.getBoundingClientRect(); return [r.left, r.width, r.right, getComputedStyle(el).display]; };
             return { sidebar: box(document.querySelector('.sidebar')), main: box(document.querySelector('main')),
                      width: window.innerWidth, scroll: document.documentElement.scrollWidth };",
            vec![],
        )
        .await
        .expect("measure the layout")
}

fn number(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

async fn phone_flow(app: &TestApp, base: &str, browser: &Browser) {
    browser.set_time_zone("Asia/Tokyo").await;
    browser.client.set_window_size(390, 844).await.expect("a phone-sized window");
    register(browser, base, "alice").await;

    // The browser offered its zone on the first page; the profile shows it.
    browser
        .eventually("the profile to show the browser's zone", || async {
            browser.goto(&format!("{base}/settings/profile")).await;
            let field = browser.field("Time zone (times you see are shown in it)").await;
            match field.prop("value").await.map_err(|e| e.to_string())? {
                Some(zone) if zone == "Asia/Tokyo" => Ok(()),
                other => Err(format!("the field holds {other:?}")),
            }
        })
        .await;

    let mut bob = app.client();
    bob.register("bob").await;
    let dm = open_dm(&mut bob, "alice").await;
    let hello = send(&mut bob, dm, "hello from bob").await;

    // Home: the conversation list is the screen, full width.
    browser.goto(&format!("{base}/")).await;
    browser.wait_for_path("/", "opening home").await;
    let home = layout(browser).await;
    assert_ne!(home["sidebar"][3], json!("none"), "{home}");
    assert!(number(&home["sidebar"][1]) >= number(&home["width"]) - 1.0, "the list fills the width: {home}");
    assert!(number(&home["scroll"]) <= number(&home["width"]), "no sideways scrolling: {home}");

    // A conversation: full screen, the list hidden, a way back, the composer in view.
    browser.client.find(Locator::Css(&format!("a[href='/c/{dm}']"))).await.expect("the conversation in the list").click().await.expect("open it");
    browser.wait_for_conversation("opening the conversation").await;
    let open = layout(browser).await;
    assert_eq!(open["sidebar"][3], json!("none"), "the list is hidden: {open}");
    assert!(number(&open["main"][1]) >= number(&open["width"]) - 1.0, "the conversation fills the width: {open}");
    assert!(number(&open["scroll"]) <= number(&open["width"]), "no sideways scrolling: {open}");
    let back = browser.link("Back to conversations").await;
    assert!(back.is_displayed().await.expect("displayed?"), "the Back link shows");
    // Times are in the browser's zone, which became Alice's.
    let sent_at: i64 = reale::with_db!(app.state.store, pool => {
        sqlx::query_scalar("SELECT created_at FROM messages WHERE id = $1").bind(hello).fetch_one(pool).await
    })
    .expect("when Bob's message was sent");
    let tokyo = jiff::Timestamp::from_millisecond(sent_at).expect("instant").to_zoned(jiff::tz::TimeZone::get("Asia/Tokyo").expect("zone"));
    let shown = browser.text_of(&format!("#message-{hello} .permalink time")).await;
    assert_eq!(shown, format!("{:02}:{:02}", tokyo.hour(), tokyo.minute()), "the message's time in Tokyo");
    let compose: Value = browser
        .client
        .execute("const r = document.getElementById('compose').getBoundingClientRect(); return [r.top, r.bottom, window.innerHeight];", vec![])
        .await
        .expect("measure the composer");
    assert!(number(&compose[0]) >= 0.0 && number(&compose[1]) <= number(&compose[2]) + 0.5, "the composer is within the viewport: {compose}");

    back.click().await.expect("click Back");
    browser.wait_for_path("/", "going back").await;
    let again = layout(browser).await;
    assert!(number(&again["sidebar"][1]) >= number(&again["width"]) - 1.0, "the list again: {again}");

    // At desktop width the list and the conversation sit side by side, no Back link.
    browser.client.set_window_size(1280, 800).await.expect("a desktop-sized window");
    browser.goto(&format!("{base}/c/{dm}")).await;
    browser.wait_for_conversation("opening the conversation on a desktop").await;
    let wide = layout(browser).await;
    assert_ne!(wide["sidebar"][3], json!("none"), "{wide}");
    assert!(number(&wide["sidebar"][2]) <= number(&wide["main"][0]) + 1.0 && number(&wide["main"][1]) > 400.0, "side by side: {wide}");
    let back = browser.link("Back to conversations").await;
    assert!(!back.is_displayed().await.expect("displayed?"), "no Back link on a desktop");

    // Alice's own message comes twice, from her send's answer and live, the same bytes:
    // the element shown first stays (a click on it meanwhile is not lost).
    browser
        .client
        .execute(
            "window.__frames = []; window.__answered = false; window.__swappedOut = 0;
             document.addEventListener('htmx:sseMessage', (e) => window.__frames.push(e.detail.data));
             document.addEventListener('htmx:afterRequest', () => { window.__answered = true; });
             new MutationObserver((records) => { for (const r of records) for (const n of r.removedNodes)
               if (n.id && n.id.startsWith('message-') && n.textContent.includes('quick one')) window.__swappedOut += 1; })
               .observe(document.getElementById('messages'), { childList: true });",
            vec![],
        )
        .await
        .expect("watch the message list");
    browser.fill("Message", "quick one").await;
    browser.button("Send").await.click().await.expect("click Send");
    browser
        .eventually("the answer and the live copy of Alice's message", || async {
            let done = browser
                .client
                .execute("return window.__answered && window.__frames.some((f) => f.includes('quick one'));", vec![])
                .await
                .map_err(|e| e.to_string())?;
            if done == json!(true) { Ok(()) } else { Err("not both yet".to_string()) }
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let swapped = browser.client.execute("return window.__swappedOut;", vec![]).await.expect("count");
    assert_eq!(swapped, json!(0), "Alice's message element was never replaced by its identical copy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_phone_the_list_and_a_conversation_are_screens_of_their_own() {
    let Some((chromium, mut driver)) = chromium_and_driver().await else { return };
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, FLOW_ARGS).await else { return };
    let base = format!("http://{}", app.serve().await);
    let browser = match driver.browser("phone", &chromium, true).await {
        Ok(browser) => browser,
        Err(why) => return skip(&why),
    };
    let flow = tokio::time::timeout(Duration::from_secs(90), phone_flow(&app, &base, &browser));
    let outcome = AssertUnwindSafe(flow).catch_unwind().await;
    browser.close().await;
    drop(driver);
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(_)) => panic!("the phone flow did not finish within 90 s"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}
