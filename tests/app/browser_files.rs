//! Files in real browsers (acceptance 2): Alice sends Bob a picture and a PDF in their
//! DM — with JavaScript by dropping them on the compose form, without it through the
//! plain file input — and Bob sees the thumbnail (loaded, under the page's CSP) and the
//! PDF's card, live with JavaScript and on reload without.

use fantoccini::Locator;
use serde_json::json;

use crate::browser::{Browser, Findings, with_two_browsers};
use crate::browser_chat::register;
use crate::files::{PDF, jpeg_with_gps};
use crate::support::FLOW_ARGS;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_flow_in_chromium_with_javascript() {
    with_two_browsers("files", true, FLOW_ARGS, ["alice", "bob"], run_flow).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_flow_in_chromium_without_javascript() {
    with_two_browsers("files", false, FLOW_ARGS, ["alice", "bob"], run_flow).await;
}

/// Drops `files` (name, type, bytes) on the compose box as a person dragging them would;
/// returns how many files the form's input then holds.
async fn drop_files(b: &Browser, files: &[(&str, &str, &[u8])]) -> i64 {
    let payload: Vec<serde_json::Value> = files.iter().map(|(name, kind, bytes)| json!([name, kind, bytes])).collect();
    let script = r#"
        const dt = new DataTransfer();
        for (const [name, type, bytes] of arguments[0]) dt.items.add(new File([new Uint8Array(bytes)], name, { type }));
        const target = document.getElementById("compose-body");
        target.dispatchEvent(new DragEvent("dragover", { bubbles: true, cancelable: true, dataTransfer: dt }));
        target.dispatchEvent(new DragEvent("drop", { bubbles: true, cancelable: true, dataTransfer: dt }));
        return document.getElementById("compose-files").files.length;
    "#;
    let held = b.client.execute(script, vec![json!(payload)]).await.expect("drop files");
    held.as_i64().expect("a count")
}

async fn run_flow(base: &str, alice: &Browser, bob: &Browser) {
    let js = alice.javascript;
    tokio::join!(register(alice, base, "alice"), register(bob, base, "bob"));
    let dm = alice.message_through_people("bob").await;
    let dm_url = format!("{base}/c/{dm}");
    bob.goto(&dm_url).await;
    bob.wait_for_path(&format!("/c/{dm}"), "opening the DM").await;

    let photo = jpeg_with_gps();
    if js {
        assert_eq!(drop_files(alice, &[("beach.jpg", "image/jpeg", &photo), ("report.pdf", "application/pdf", PDF)]).await, 2);
    } else {
        // The plain file input, as a person picks files in the dialog.
        let dir = std::env::temp_dir().join(format!("reale_browser_files_{}", rand::random::<u32>()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("beach.jpg"), &photo).expect("write");
        std::fs::write(dir.join("report.pdf"), PDF).expect("write");
        let input = alice.field("Attach files").await;
        let paths = format!("{}\n{}", dir.join("beach.jpg").display(), dir.join("report.pdf").display());
        input.send_keys(&paths).await.expect("choose files");
    }
    alice.fill("Message", "Holiday snaps").await;
    alice.button("Send").await.click().await.expect("click Send");

    // Alice sees her message with the thumbnail; Bob too (live with JavaScript, else on reload).
    let thumb = "//*[@id='messages']//ul[@aria-label='Pictures']//a/img[@alt='beach.jpg']";
    let card = "//*[@id='messages']//ul[@aria-label='Files']//a[@download][.='report.pdf']";
    alice.the_one(thumb, "alice's thumbnail").await;
    if !js {
        bob.goto(&dm_url).await;
        bob.wait_for_path(&format!("/c/{dm}"), "reloading the DM").await;
    }
    bob.the_one(thumb, "bob's thumbnail").await;
    bob.the_one(card, "the PDF's card").await;
    // The thumbnail really loaded: the cookie went with it and the page's CSP allowed it.
    let client = &bob.client;
    let width = bob
        .eventually("the thumbnail to load", || async move {
            let width = client
                .execute("const i = document.querySelector(\"img[alt='beach.jpg']\"); return i && i.complete ? i.naturalWidth : 0", vec![])
                .await
                .map_err(|e| e.to_string())?;
            match width.as_i64() {
                Some(w) if w > 0 => Ok(w),
                _ => Err("not loaded yet".to_string()),
            }
        })
        .await;
    assert_eq!(width, 20, "the upright thumbnail (the photo is 40 × 20 turned by its EXIF)");
    let shown = bob.client.find_all(Locator::XPath(thumb)).await.expect("find").len();
    assert_eq!(shown, 1, "one thumbnail, once");
    let mut findings = Findings::default();
    bob.check_page("DM with files", &mut findings).await;
    findings.assert_none();
}
