//! The installable app in Chromium (acceptance 5): the manifest parses with what an
//! install needs and its icons load at their sizes; the service worker registers and
//! becomes active; then the server is stopped and, in the same browser, a navigation
//! shows the cached offline page and a cached asset still loads.
//!
//! Chromium's own "installable" signal is out of reach here: `beforeinstallprompt` does
//! not fire in headless Chromium and `Page.getInstallabilityErrors` is a DevTools
//! command that WebDriver does not carry. So the criteria are checked one by one: a
//! manifest with name, start_url, display standalone and 192/512 px icons, and an
//! active service worker controlling the scope with a fetch handler.

use std::time::Duration;

use serde_json::json;

use crate::browser::{Findings, chromium_and_driver, skip};
use crate::support::{Backend, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installable_app_works_offline_in_chromium() {
    let Some((chromium, mut driver)) = chromium_and_driver().await else { return };
    let Some(app) = TestApp::spawn_with(Backend::Sqlite, &[]).await else { return };
    // A server of its own, which this test can stop (TestApp::serve runs to the end).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a free port");
    let addr = listener.local_addr().expect("bound address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(reale::serve(listener, app.state.clone(), async move {
        let _ = stopped.await;
    }));
    let browser = match driver.browser("pwa", &chromium, true).await {
        Ok(browser) => browser,
        Err(why) => return skip(&why),
    };
    let base = format!("http://{addr}");
    let flow = async {
        let mut findings = Findings::default();
        browser.goto(&format!("{base}/login")).await;
        browser.wait_for_path("/login", "opening the login page").await;

        // The manifest, as the browser finds it from the page.
        let manifest = browser
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 const link = document.querySelector('link[rel=manifest]');
                 fetch(link.href).then(async (r) => done({ status: r.status, type: r.headers.get('content-type'), body: await r.json() }))
                   .catch((e) => done({ error: String(e) }));",
                vec![],
            )
            .await
            .expect("fetch the manifest");
        assert_eq!(manifest["status"], json!(200), "{manifest}");
        assert_eq!(manifest["type"], json!("application/manifest+json"));
        let body = &manifest["body"];
        for (field, value) in [("name", "Reale"), ("start_url", "/"), ("scope", "/"), ("display", "standalone")] {
            assert_eq!(body[field], json!(value), "manifest {field}: {body}");
        }
        assert!(body["short_name"].is_string() && body["theme_color"].is_string() && body["background_color"].is_string(), "{body}");
        let icons = body["icons"].as_array().expect("icons").clone();
        let mut sizes = Vec::new();
        for icon in &icons {
            let src = icon["src"].as_str().expect("src");
            let loaded = browser
                .client
                .execute_async(
                    "const [src, done] = [arguments[0], arguments[arguments.length - 1]];
                     fetch(src).then(async (r) => {
                       const type = r.headers.get('content-type');
                       const bitmap = await createImageBitmap(await r.blob());
                       done({ status: r.status, type, width: bitmap.width, height: bitmap.height });
                     }).catch((e) => done({ error: String(e) }));",
                    vec![json!(src)],
                )
                .await
                .expect("load an icon");
            assert_eq!((&loaded["status"], &loaded["type"]), (&json!(200), &json!("image/png")), "{src}: {loaded}");
            let size = format!("{}x{}", loaded["width"], loaded["height"]);
            assert_eq!(icon["sizes"], json!(size), "{src} is as large as the manifest says");
            sizes.push((size, icon["purpose"].as_str().unwrap_or("any").to_string()));
        }
        assert!(sizes.iter().any(|(s, _)| s == "192x192"), "{sizes:?}");
        assert!(sizes.iter().any(|(s, p)| s == "512x512" && p == "any"), "{sizes:?}");
        assert!(sizes.iter().any(|(_, p)| p == "maskable"), "{sizes:?}");

        // The worker registers, installs (precaching the shell) and becomes active.
        let worker = browser
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 navigator.serviceWorker.ready.then((r) => done({ scope: r.scope, state: r.active && r.active.state, script: r.active && r.active.scriptURL }));",
                vec![],
            )
            .await
            .expect("wait for the service worker");
        assert_eq!(worker["scope"], json!(format!("{base}/")), "{worker}");
        assert_eq!(worker["script"], json!(format!("{base}/sw.js")), "{worker}");
        let client = &browser.client;
        browser
            .eventually("expected the worker to be activated", || async move {
                let state = client
                    .execute("return navigator.serviceWorker.ready.then((r) => r.active.state)", vec![])
                    .await
                    .map_err(|e| e.to_string())?;
                if state == json!("activated") { Ok(()) } else { Err(format!("state {state}")) }
            })
            .await;
        let css = browser
            .client
            .execute("return document.querySelector('link[rel=stylesheet]').getAttribute('href')", vec![])
            .await
            .expect("the stylesheet's URL");
        browser.check_page("login", &mut findings).await;
        // A page loaded through the worker (controlled now) is not kept: pages hold private data.
        browser.goto(&format!("{base}/login")).await;
        browser.wait_for_path("/login", "reloading the login page through the worker").await;
        let cached = browser
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 caches.keys().then((names) => Promise.all(names.map((n) => caches.open(n).then((c) => c.keys()))))
                   .then((lists) => done(lists.flat().map((r) => new URL(r.url).pathname)));",
                vec![],
            )
            .await
            .expect("list the worker's caches");
        let cached: Vec<&str> = cached.as_array().expect("paths").iter().filter_map(|p| p.as_str()).collect();
        assert!(cached.contains(&"/offline") && cached.contains(&css.as_str().expect("css URL")), "the shell is precached: {cached:?}");
        assert!(cached.iter().all(|p| p.starts_with("/assets/") || *p == "/offline"), "only the shell is cached: {cached:?}");

        // Stop the server; nothing answers on its port any more.
        stop.send(()).expect("the server is running");
        tokio::time::timeout(Duration::from_secs(20), server).await.expect("the server stops").expect("joined").expect("served");
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the server is gone");

        // A navigation in the same browser shows the offline page, at the asked address.
        browser.goto(&format!("{base}/")).await;
        let offline = browser
            .the_one("//*[@id='offline']", "the offline page")
            .await
            .text()
            .await
            .expect("offline text");
        assert!(offline.contains("Reale can't reach the server. It will reload when it is back."), "{offline}");
        assert_eq!(browser.client.current_url().await.expect("url").path(), "/");
        // Its cached assets still load, and the network really is gone.
        let cached = browser
            .client
            .execute_async(
                "const [css, done] = [arguments[0], arguments[arguments.length - 1]];
                 const styled = getComputedStyle(document.body).minHeight !== '0px';
                 Promise.all([
                   // Past the browser's HTTP cache (which holds immutable assets too): only the worker can answer.
                   fetch(css, { cache: 'no-store' }).then((r) => r.status, (e) => String(e)),
                   fetch('/healthz', { cache: 'no-store' }).then((r) => r.status, () => 'unreachable'),
                 ]).then(([asset, health]) => done({ asset, health, styled, htmx: typeof window.htmx }));",
                vec![css],
            )
            .await
            .expect("fetch a cached asset");
        assert_eq!(cached, json!({ "asset": 200, "health": "unreachable", "styled": true, "htmx": "object" }), "offline: {cached}");
        browser.check_page("offline", &mut findings).await;
        findings.assert_none();
    };
    let outcome = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(tokio::time::timeout(Duration::from_secs(90), flow))).await;
    browser.close().await;
    drop(driver);
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(_)) => panic!("the PWA flow did not finish within 90 s"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}
