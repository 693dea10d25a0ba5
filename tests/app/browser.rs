//! Accounts in a real browser: headless Chromium driven over WebDriver (chromedriver),
//! once with JavaScript (htmx and app.js run) and once without (plain HTML forms).
//! Fields are found by their label and buttons by their accessible name, as a person
//! finds them. Every page is checked for CSP violations in the browser's console log;
//! with JavaScript, also for WCAG 2 A/AA problems (axe-core, in the light and the dark
//! colour scheme: `browser/axe.rs`) and for sideways scrolling on a 360 px wide phone.
//! The browsers say they have a mouse (`hover: hover`), as a desktop does; headless
//! Chromium otherwise reports no pointer, and the styles for mouse users go unchecked.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (or `REALE_TEST_CHROMIUM` /
//! `REALE_TEST_CHROMEDRIVER`): without them the tests are skipped, or fail under CI.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::{Method, Request};
use bytes::Bytes;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use crate::support::{Backend, PASSWORD, TestApp, in_ci};

mod axe;

/// How long a navigation or an element may take to appear.
pub(crate) const WAIT: Duration = Duration::from_secs(10);
pub(crate) const POLL: Duration = Duration::from_millis(100);
/// The whole flow, so a hung browser fails the test instead of hanging it.
const FLOW_LIMIT: Duration = Duration::from_secs(90);

const USERNAME: &str = "alice";
const EMAIL: &str = "alice@example.org";
const DISPLAY_NAME: &str = "Alice Browser";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_flow_in_chromium_with_javascript() {
    accounts_flow(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_flow_in_chromium_without_javascript() {
    accounts_flow(false).await;
}

async fn accounts_flow(javascript: bool) {
    with_two_browsers("accounts", javascript, &[], ["A", "B"], run_flow).await;
}

/// Runs `flow` against a fresh app (started with `args`) in two browsers, with
/// JavaScript on or off. Browsers and chromedriver are cleaned up whatever happens,
/// and only then is a failure reported; a missing Chromium skips (fails under CI).
pub(crate) async fn with_two_browsers(
    what: &str,
    javascript: bool,
    args: &[&str],
    names: [&'static str; 2],
    flow: impl AsyncFnOnce(&str, &Browser, &Browser),
) {
    with_two_browsers_on(Backend::Sqlite, what, javascript, args, names, flow).await;
}

/// `with_two_browsers` on the given backend (a missing Postgres skips, or fails under CI).
pub(crate) async fn with_two_browsers_on(
    backend: Backend,
    what: &str,
    javascript: bool,
    args: &[&str],
    names: [&'static str; 2],
    flow: impl AsyncFnOnce(&str, &Browser, &Browser),
) {
    let started = Instant::now();
    let mode = if javascript { "with JavaScript" } else { "without JavaScript" };
    let Some((chromium, mut driver)) = chromium_and_driver().await else { return };
    let Some(app) = TestApp::spawn_with(backend, args).await else { return };
    let base = format!("http://{}", app.serve().await);

    let a = match driver.browser(names[0], &chromium, javascript).await {
        Ok(a) => a,
        Err(why) => return skip(&why),
    };
    let b = match driver.browser(names[1], &chromium, javascript).await {
        Ok(b) => b,
        Err(why) => {
            a.close().await;
            return skip(&why);
        }
    };

    let flow = tokio::time::timeout(FLOW_LIMIT, flow(&base, &a, &b));
    let outcome = AssertUnwindSafe(flow).catch_unwind().await;
    // Clean up whatever happened; only then report the failure.
    a.close().await;
    b.close().await;
    drop(driver);
    match outcome {
        Ok(Ok(())) => println!("browser {what} flow {mode} on {backend:?}: passed in {:.1} s", started.elapsed().as_secs_f64()),
        Ok(Err(_)) => panic!("browser {what} flow {mode} on {backend:?} did not finish within {FLOW_LIMIT:?}"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

async fn run_flow(base: &str, a: &Browser, b: &Browser) {
    let js = a.javascript;
    let mut findings = Findings::default();

    // 1. Register in browser A.
    a.goto(&format!("{base}/register")).await;
    a.check_page("register", &mut findings).await;
    if js {
        a.check_csp_violations_are_seen().await;
    }
    a.fill("Username", USERNAME).await;
    a.fill("Email", EMAIL).await;
    a.fill("Display name (optional)", DISPLAY_NAME).await;
    a.fill("Password", PASSWORD).await;
    a.button("Create account").await.click().await.expect("click Create account");
    a.wait_for_path("/", "registering").await;
    let header = a.text_of("header").await;
    assert!(header.contains(DISPLAY_NAME), "the header shows the display name; it reads {header:?}");
    a.button("Log out").await; // exactly one, or this fails
    a.check_page("home", &mut findings).await;
    if js {
        a.check_no_horizontal_scroll_at_360px("home").await;
    }

    // 2. Log out; the home page is then out of reach.
    a.button("Log out").await.click().await.expect("click Log out");
    a.wait_for_path("/login", "logging out").await;
    a.goto(&format!("{base}/")).await;
    a.wait_for_path("/login", "opening / after logging out").await;
    a.check_page("login", &mut findings).await;

    // 3. Log in again by username.
    a.log_in(USERNAME).await;

    // 4. A second browser logs in as the same user, by email.
    b.goto(&format!("{base}/login")).await;
    b.log_in(EMAIL).await;

    // 5. Browser A signs browser B out from the Sessions page.
    a.link("Settings").await.click().await.expect("click Settings");
    a.wait_for_path("/settings/sessions", "following Settings").await;
    a.wait_for_devices(2).await;
    a.check_page("sessions", &mut findings).await;
    if js {
        a.check_no_horizontal_scroll_at_360px("sessions").await;
    }
    let sign_out = a.button_labelled_starting("Sign out ").await;
    let device = sign_out.find(Locator::XPath("./ancestor::li")).await.expect("the button's device");
    let device = device.text().await.expect("device text");
    assert!(!device.contains("This device"), "the button belongs to the other device, not to {device:?}");
    let text = sign_out.text().await.expect("button text");
    assert_eq!(text.trim(), "Sign out", "its visible text is short; the device is in its accessible name");
    sign_out.click().await.expect("click Sign out <device>");
    a.wait_for_devices(1).await;
    a.wait_for_path("/settings/sessions", "signing the other device out").await;

    // 6. Browser B finds itself signed out.
    b.goto(&format!("{base}/settings/sessions")).await;
    b.wait_for_path("/login", "opening Sessions on the signed-out device").await;

    // B signs in again and A uses "Sign out everywhere else".
    b.log_in(USERNAME).await;
    a.goto(&format!("{base}/settings/sessions")).await;
    a.wait_for_devices(2).await;
    a.button("Sign out everywhere else").await.click().await.expect("click Sign out everywhere else");
    a.wait_for_devices(1).await;
    let header = a.text_of("header").await;
    assert!(header.contains(DISPLAY_NAME), "browser A is still signed in; its header reads {header:?}");
    b.goto(&format!("{base}/")).await;
    b.wait_for_path("/login", "opening / after being signed out everywhere else").await;
    b.check_page("login (browser B)", &mut findings).await;

    findings.assert_none();
}

/// Problems found on the way (CSP violations, accessibility), reported all at once at
/// the end so one run shows every one of them.
#[derive(Default)]
pub(crate) struct Findings(pub(crate) Vec<String>);

impl Findings {
    pub(crate) fn add(&mut self, finding: String) {
        eprintln!("FINDING: {finding}");
        self.0.push(finding);
    }

    pub(crate) fn assert_none(&self) {
        assert!(self.0.is_empty(), "{} problem(s) found in the browser:\n\n{}", self.0.len(), self.0.join("\n\n"));
    }
}

/// Chromium's path and a running chromedriver; None after a skip line (under CI=true
/// the skip fails the test instead).
pub(crate) async fn chromium_and_driver() -> Option<(PathBuf, Driver)> {
    let chromium = binary("REALE_TEST_CHROMIUM", "/usr/bin/chromium");
    let chromedriver = binary("REALE_TEST_CHROMEDRIVER", "/usr/bin/chromedriver");
    for path in [&chromium, &chromedriver] {
        if !path.is_file() {
            skip(&format!("{} not found", path.display()));
            return None;
        }
    }
    match Driver::start(&chromedriver).await {
        Ok(driver) => Some((chromium, driver)),
        Err(why) => {
            skip(&why);
            None
        }
    }
}

pub(crate) fn binary(env: &str, default: &str) -> PathBuf {
    std::env::var_os(env).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(default))
}

pub(crate) fn skip(why: &str) {
    if in_ci() {
        panic!("the browser tests need Chromium and chromedriver under CI=true: {why}");
    }
    eprintln!("SKIPPED: browser test ({why})");
}

/// A plain-http client for talking to chromedriver where fantoccini has no command.
fn http() -> hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>> {
    hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http()
}

async fn http_json(method: Method, url: &str, body: Option<Value>) -> Result<Value, String> {
    let request = Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.map(|b| b.to_string()).unwrap_or_default())))
        .map_err(|e| e.to_string())?;
    let response = http().request(request).await.map_err(|e| e.to_string())?;
    let status = response.status();
    let bytes = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| format!("{status}: {e}"))?;
    if !status.is_success() {
        return Err(format!("{status}: {value}"));
    }
    Ok(value)
}

/// chromedriver as a child process on a free port; killed (and the browser profiles
/// removed) on drop.
pub(crate) struct Driver {
    child: Child,
    url: String,
    profiles: Vec<PathBuf>,
}

impl Driver {
    pub(crate) async fn start(chromedriver: &Path) -> Result<Driver, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", chromedriver.display()))?;
        let driver = Driver { child, url: format!("http://127.0.0.1:{port}"), profiles: Vec::new() };
        let deadline = Instant::now() + WAIT;
        loop {
            match http_json(Method::GET, &format!("{}/status", driver.url), None).await {
                Ok(status) if status["value"]["ready"] == json!(true) => return Ok(driver),
                Ok(status) if Instant::now() > deadline => return Err(format!("chromedriver is not ready: {status}")),
                Err(why) if Instant::now() > deadline => return Err(format!("chromedriver does not answer: {why}")),
                _ => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// A new WebDriver session: its own Chromium with a fresh profile.
    pub(crate) async fn browser(&mut self, name: &'static str, chromium: &Path, javascript: bool) -> Result<Browser, String> {
        self.browser_with(name, chromium, javascript, &[]).await
    }

    /// `browser` with more Chromium switches (fake camera and microphone, say).
    pub(crate) async fn browser_with(&mut self, name: &'static str, chromium: &Path, javascript: bool, switches: &[&str]) -> Result<Browser, String> {
        let profile = std::env::temp_dir().join(format!(
            "reale_chromium_{}_{name}_{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        self.profiles.push(profile.clone());
        let mut chrome = json!({
            "binary": chromium.display().to_string(),
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--disable-quic", "--window-size=1280,900",
                // A mouse: hover and a fine pointer (ui::HoverType 2, ui::PointerType 4).
                "--blink-settings=primaryHoverType=2,availableHoverTypes=2,primaryPointerType=4,availablePointerTypes=4",
                format!("--user-data-dir={}", profile.display()),
            ],
        });
        if let Some(args) = chrome["args"].as_array_mut() {
            args.extend(switches.iter().map(|s| json!(s)));
        }
        if !javascript {
            chrome["prefs"] = json!({ "profile.managed_default_content_settings.javascript": 2 });
        }
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": chrome,
            "goog:loggingPrefs": { "browser": "ALL" },
            "timeouts": { "script": 30_000, "pageLoad": 20_000 },
        });
        let Value::Object(capabilities) = capabilities else { unreachable!() };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .map_err(|e| format!("cannot start Chromium through chromedriver: {e}"))?;
        let pid = client
            .capabilities()
            .and_then(|c| c.get("goog:processID"))
            .and_then(Value::as_u64);
        let session = match client.session_id().await {
            Ok(Some(id)) => id,
            other => {
                let _ = client.close().await;
                return Err(format!("no WebDriver session id: {other:?}"));
            }
        };
        Ok(Browser { name, client, javascript, driver: self.url.clone(), session, pid })
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for profile in &self.profiles {
            let _ = std::fs::remove_dir_all(profile);
        }
    }
}

/// One browser window, with the helpers a test needs to use it like a person.
pub(crate) struct Browser {
    pub(crate) name: &'static str,
    pub(crate) client: Client,
    pub(crate) javascript: bool,
    driver: String,
    session: String,
    /// Chromium's process, killed if the session cannot be closed politely.
    pid: Option<u64>,
}

impl Browser {
    pub(crate) async fn close(self) {
        if let Err(error) = self.client.clone().close().await {
            eprintln!("browser {}: closing the session failed ({error}); killing Chromium", self.name);
            if let Some(pid) = self.pid {
                let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            }
        }
    }

    /// Kills this browser's Chromium at once, as a crash or a pulled plug would.
    pub(crate) fn kill(&self) {
        if let Some(pid) = self.pid {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    }

    /// Waits until this browser shows a conversation page, loaded, and says which.
    pub(crate) async fn wait_for_conversation(&self, after: &str) -> i64 {
        let client = &self.client;
        self.eventually(&format!("expected a conversation after {after}"), || async move {
            let url = client.current_url().await.map_err(|e| e.to_string())?;
            let id = url.path().strip_prefix("/c/").and_then(|id| id.parse::<i64>().ok()).ok_or_else(|| format!("still at {url}"))?;
            let state = client.execute("return document.readyState", vec![]).await.map_err(|e| e.to_string())?;
            if state != json!("complete") {
                return Err(format!("document is {state}"));
            }
            client.find(Locator::Id("messages")).await.map_err(|e| e.to_string())?;
            Ok(id)
        })
        .await
    }

    /// Finds `username` through *Find people* and opens the DM with them, as a person
    /// would; the conversation's id.
    pub(crate) async fn message_through_people(&self, username: &str) -> i64 {
        self.link("Find people").await.click().await.expect("click Find people");
        self.wait_for_path("/people", "following Find people").await;
        self.fill("Username or name", username).await;
        self.button("Search people").await.click().await.expect("click Search people");
        let message = format!("Message {username}");
        self.button(&message).await.click().await.unwrap_or_else(|e| panic!("click {message}: {e}"));
        self.wait_for_conversation(&format!("clicking {message}")).await
    }

    /// Runs `script` at the start of every page this browser opens, before the page's
    /// own scripts (DevTools' Page.addScriptToEvaluateOnNewDocument, through chromedriver).
    pub(crate) async fn on_every_page(&self, script: &str) {
        let url = format!("{}/session/{}/goog/cdp/execute", self.driver, self.session);
        let body = json!({ "cmd": "Page.addScriptToEvaluateOnNewDocument", "params": { "source": script } });
        http_json(Method::POST, &url, Some(body)).await.unwrap_or_else(|e| panic!("browser {}: adding a script to every page: {e}", self.name));
    }

    pub(crate) async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("browser {}: opening {url}: {e}", self.name));
    }

    /// Polls `attempt` until it succeeds or `WAIT` passes; then panics with its last error.
    pub(crate) async fn eventually<T, F, Fut>(&self, what: &str, mut attempt: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        let deadline = Instant::now() + WAIT;
        loop {
            match attempt().await {
                Ok(value) => return value,
                Err(why) if Instant::now() > deadline => {
                    let url = self.client.current_url().await.map(|u| u.to_string()).unwrap_or_default();
                    panic!("browser {}: {what}: gave up after {WAIT:?} at {url}: {why}", self.name)
                }
                Err(_) => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// Waits until the address bar shows `path` and that page has loaded. With htmx,
    /// a form posts in the background and the server's `HX-Redirect` navigates later.
    pub(crate) async fn wait_for_path(&self, path: &str, after: &str) {
        let client = &self.client;
        self.eventually(&format!("expected to arrive at {path} after {after}"), || async move {
            let url = client.current_url().await.map_err(|e| e.to_string())?;
            if url.path() != path {
                return Err(format!("still at {url}"));
            }
            let state = client.execute("return document.readyState", vec![]).await.map_err(|e| e.to_string())?;
            if state != json!("complete") {
                return Err(format!("document is {state}"));
            }
            Ok(())
        })
        .await;
    }

    /// The one element that `xpath` finds (none or several is an error).
    pub(crate) async fn the_one(&self, xpath: &str, what: &str) -> Element {
        let client = &self.client;
        self.eventually(&format!("looking for {what}"), || async move {
            let mut found = client.find_all(Locator::XPath(xpath)).await.map_err(|e| e.to_string())?;
            match found.len() {
                1 => Ok(found.remove(0)),
                n => Err(format!("{n} elements match {xpath}")),
            }
        })
        .await
    }

    /// The form field whose `<label>` reads `label`.
    pub(crate) async fn field(&self, label: &str) -> Element {
        let xpath = format!("//label[normalize-space(.)={}]", xpath_literal(label));
        let label_element = self.the_one(&xpath, &format!("the label {label:?}")).await;
        let id = label_element
            .attr("for")
            .await
            .expect("label's for")
            .unwrap_or_else(|| panic!("browser {}: the label {label:?} names no field (no `for`)", self.name));
        let field = self.the_one(&format!("//*[@id={}]", xpath_literal(&id)), &format!("the field labelled {label:?}")).await;
        let tag = field.tag_name().await.expect("tag name");
        assert!(matches!(tag.as_str(), "input" | "textarea" | "select"), "the label {label:?} points at a <{tag}>");
        field
    }

    pub(crate) async fn fill(&self, label: &str, value: &str) {
        let field = self.field(label).await;
        field.clear().await.expect("clear field");
        field.send_keys(value).await.unwrap_or_else(|e| panic!("browser {}: typing into {label:?}: {e}", self.name));
    }

    /// The button whose accessible name is `name` (its aria-label, else its text).
    pub(crate) async fn button(&self, name: &str) -> Element {
        let name = xpath_literal(name);
        let xpath = format!(
            "//button[(@aria-label and normalize-space(@aria-label)={name}) or (not(@aria-label) and normalize-space(.)={name})]"
        );
        self.the_one(&xpath, &format!("the button {name}")).await
    }

    /// The button whose aria-label (its accessible name) starts with `prefix`; a button
    /// whose visible text merely starts so (e.g. "Sign out everywhere else") is not it.
    async fn button_labelled_starting(&self, prefix: &str) -> Element {
        let prefix = xpath_literal(prefix);
        let xpath = format!("//button[starts-with(normalize-space(@aria-label), {prefix})]");
        self.the_one(&xpath, &format!("the button labelled {prefix}…")).await
    }

    pub(crate) async fn link(&self, name: &str) -> Element {
        let xpath = format!("//a[normalize-space(.)={}]", xpath_literal(name));
        self.the_one(&xpath, &format!("the link {name:?}")).await
    }

    pub(crate) async fn text_of(&self, css: &str) -> String {
        let element = self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("browser {}: no {css}: {e}", self.name));
        element.text().await.expect("element text")
    }

    /// On the login page: log in as `login` (username or email) and arrive home.
    async fn log_in(&self, login: &str) {
        self.wait_for_path("/login", "opening the login page").await;
        self.fill("Username or email", login).await;
        self.fill("Password", PASSWORD).await;
        self.button("Log in").await.click().await.expect("click Log in");
        self.wait_for_path("/", &format!("logging in as {login}")).await;
        let header = self.text_of("header").await;
        assert!(header.contains(DISPLAY_NAME), "browser {}: signed in; the header reads {header:?}", self.name);
    }

    /// Waits until the Sessions page lists `n` devices, exactly one of them this one.
    async fn wait_for_devices(&self, n: usize) {
        let client = &self.client;
        self.eventually(&format!("expected {n} signed-in device(s)"), || async move {
            let items = client.find_all(Locator::XPath("//main//ul/li")).await.map_err(|e| e.to_string())?;
            let mut texts = Vec::new();
            for item in &items {
                texts.push(item.text().await.map_err(|e| e.to_string())?);
            }
            let current = texts.iter().filter(|t| t.contains("This device")).count();
            if texts.len() != n || current != 1 {
                return Err(format!("devices listed: {texts:?}"));
            }
            Ok(())
        })
        .await;
    }

    /// After a page has loaded: JavaScript is on or off as asked, the browser logged
    /// no Content-Security-Policy violation, and (with JavaScript) axe finds no serious
    /// or critical WCAG 2 A/AA violation in either colour scheme.
    pub(crate) async fn check_page(&self, page: &str, findings: &mut Findings) {
        let htmx = self.client.execute("return typeof window.htmx", vec![]).await.expect("typeof htmx");
        let expected = if self.javascript { "object" } else { "undefined" };
        assert_eq!(htmx, json!(expected), "browser {}: on the {page} page htmx is {htmx}", self.name);

        for entry in self.log().await {
            let message = entry["message"].as_str().unwrap_or_default();
            let lower = message.to_lowercase();
            if lower.contains("content security policy") || lower.contains("refused to") {
                findings.add(format!("CSP violation on the {page} page: {message}"));
            } else if entry["level"] == json!("SEVERE") {
                eprintln!("browser {} console on the {page} page: {message}", self.name);
            }
        }
        // Without JavaScript axe cannot run: its checks never finish (timers do not fire).
        if self.javascript {
            self.run_axe(page, findings).await;
        }
    }

    /// A canary for `check_page`: an inline script without the nonce must be refused,
    /// and the refusal must show in the log this test reads.
    async fn check_csp_violations_are_seen(&self) {
        let blocked = self
            .client
            .execute(
                "const s = document.createElement('script'); s.textContent = 'window.__cspCanary = 1'; \
                 document.head.appendChild(s); return window.__cspCanary === undefined",
                vec![],
            )
            .await
            .expect("insert an inline script");
        assert_eq!(blocked, json!(true), "the CSP refuses an inline script without the nonce");
        self.eventually("expected the refused inline script in the console log", || async move {
            let log = self.log().await;
            if log.iter().any(|e| e["message"].as_str().unwrap_or_default().contains("Content Security Policy")) {
                Ok(())
            } else {
                Err(format!("log: {log:?}"))
            }
        })
        .await;
    }

    /// Chromium's console since the last call (chromedriver's `se/log` endpoint, which
    /// fantoccini has no command for).
    pub(crate) async fn log(&self) -> Vec<Value> {
        let url = format!("{}/session/{}/se/log", self.driver, self.session);
        let value = http_json(Method::POST, &url, Some(json!({ "type": "browser" })))
            .await
            .unwrap_or_else(|why| panic!("browser {}: reading the console log: {why}", self.name));
        value["value"].as_array().cloned().unwrap_or_default()
    }

    /// At 360 × 800 (a small phone) the page must not scroll sideways. Restores the
    /// window size afterwards.
    async fn check_no_horizontal_scroll_at_360px(&self, page: &str) {
        let before = self.client.get_window_size().await.expect("window size");
        self.client.set_window_size(360, 800).await.expect("resize to 360 × 800");
        let client = &self.client;
        let (inner, scroll) = self
            .eventually("expected a 360 px wide viewport", || async move {
                let sizes = client
                    .execute("return [window.innerWidth, document.documentElement.scrollWidth]", vec![])
                    .await
                    .map_err(|e| e.to_string())?;
                let inner = sizes[0].as_u64().unwrap_or(0);
                let scroll = sizes[1].as_u64().unwrap_or(0);
                if inner == 0 || inner > 360 {
                    return Err(format!("the viewport is {inner} px wide"));
                }
                Ok((inner, scroll))
            })
            .await;
        assert!(
            scroll <= inner,
            "browser {}: the {page} page scrolls sideways at 360 px: content is {scroll} px wide, viewport {inner} px",
            self.name
        );
        self.client.set_window_size(before.0 as u32, before.1 as u32).await.expect("restore window size");
    }
}

/// `s` as an XPath 1.0 string literal (which has no escapes).
pub(crate) fn xpath_literal(s: &str) -> String {
    if !s.contains('\'') {
        format!("'{s}'")
    } else if !s.contains('"') {
        format!("\"{s}\"")
    } else {
        let parts: Vec<String> = s.split('\'').map(|p| format!("'{p}'")).collect();
        format!("concat({})", parts.join(", \"'\", "))
    }
}
