//! The accessibility check every browser test uses: axe-core (WCAG 2 A and AA rules) on
//! the page as it stands, once in the light and once in the dark colour scheme. The
//! scheme is switched with Chromium's own media emulation (DevTools
//! `Emulation.setEmulatedMedia` through chromedriver), and the page is asked which
//! scheme it sees before axe runs, so a check that silently stayed light cannot pass
//! as a dark one.

use axum::http::Method;
use serde_json::{Value, json};

use super::{Browser, Findings, http_json};

/// The axe-core release the accessibility checks run (vendored, MPL-2.0).
const AXE: &str = include_str!("../../support/axe-4.14.1.min.js");

/// The colour schemes a person may have chosen in their system settings.
const SCHEMES: [&str; 2] = ["light", "dark"];

/// Violations of these impacts fail the test; the others are printed.
const FAILING: [&str; 2] = ["serious", "critical"];

impl Browser {
    /// axe on the current page in both colour schemes: every serious or critical
    /// violation becomes a finding naming the rule, its impact, the scheme and the
    /// elements (selectors and HTML); lesser ones are printed. The scheme is left as the
    /// system's afterwards.
    pub(crate) async fn run_axe(&self, page: &str, findings: &mut Findings) {
        // WebDriver scripts are not subject to the page's CSP.
        self.client.execute(AXE, vec![]).await.expect("inject axe-core");
        for scheme in SCHEMES {
            self.emulate_color_scheme(scheme).await;
            self.axe_once(&format!("{page} [{scheme}]"), findings).await;
        }
        self.emulate_color_scheme("").await;
        // axe itself may log; what it logs is not the page's doing.
        let _ = self.log().await;
    }

    /// Makes the page see `prefers-color-scheme: scheme` ("" for the system's own) and
    /// checks that it does.
    pub(crate) async fn emulate_color_scheme(&self, scheme: &str) {
        let url = format!("{}/session/{}/goog/cdp/execute", self.driver, self.session);
        let command = json!({
            "cmd": "Emulation.setEmulatedMedia",
            "params": { "features": [{ "name": "prefers-color-scheme", "value": scheme }] },
        });
        http_json(Method::POST, &url, Some(command))
            .await
            .unwrap_or_else(|why| panic!("browser {}: emulating the {scheme:?} colour scheme: {why}", self.name));
        if scheme.is_empty() {
            return;
        }
        let seen = self
            .client
            .execute(
                "return [matchMedia('(prefers-color-scheme: dark)').matches, \
                 getComputedStyle(document.body).backgroundColor]",
                vec![],
            )
            .await
            .expect("read the colour scheme");
        assert_eq!(seen[0], json!(scheme == "dark"), "browser {}: the page does not see the {scheme} scheme: {seen}", self.name);
    }

    async fn axe_once(&self, page: &str, findings: &mut Findings) {
        let script = r#"
            const done = arguments[arguments.length - 1];
            axe.run(document, { runOnly: ['wcag2a', 'wcag2aa'] })
              .then(r => done({ passes: r.passes.length, violations: r.violations.map(v => ({
                  id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
                  nodes: v.nodes.map(n => ({ target: n.target.join(' '), html: n.html, summary: n.failureSummary })),
              })) }))
              .catch(e => done({ error: String(e) }));
        "#;
        let result = self.client.execute_async(script, vec![]).await.expect("run axe-core");
        if let Some(error) = result.get("error") {
            panic!("browser {}: axe-core failed on the {page} page: {error}", self.name);
        }
        assert!(result["passes"].as_u64().unwrap_or(0) > 0, "axe-core checked something on the {page} page: {result}");
        for violation in result["violations"].as_array().cloned().unwrap_or_default() {
            let text = describe(page, &violation);
            if FAILING.contains(&violation["impact"].as_str().unwrap_or("")) {
                findings.add(format!("browser {}: {text}", self.name));
            } else {
                eprintln!("browser {}: (not failed) {text}", self.name);
            }
        }
    }
}

/// One axe violation as a person fixing it wants to read it: rule, impact, what it
/// asks, and each element (selector, HTML, why it fails).
fn describe(page: &str, violation: &Value) -> String {
    let mut text = format!(
        "axe on the {page} page: {} ({}): {}\n  {}",
        violation["id"].as_str().unwrap_or("?"),
        violation["impact"].as_str().unwrap_or("?"),
        violation["help"].as_str().unwrap_or("?"),
        violation["helpUrl"].as_str().unwrap_or(""),
    );
    for node in violation["nodes"].as_array().cloned().unwrap_or_default() {
        text.push_str(&format!(
            "\n  - {}\n    {}\n    {}",
            node["target"].as_str().unwrap_or("?"),
            node["html"].as_str().unwrap_or("").chars().take(300).collect::<String>(),
            node["summary"].as_str().unwrap_or("").replace('\n', "\n    "),
        ));
    }
    text
}
