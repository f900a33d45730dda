//! The on-call status page in real headless Chromium, driven through
//! chromedriver's WebDriver protocol: it loads with no console errors, shows
//! the health, reception mode, rates and outbox of the running service, and
//! a screenshot is written (`target/tmp/ops-page.png`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod support;

use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

/// A chromedriver process and one browser session.
struct Browser {
    driver: tokio::process::Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver is installed by the README's test command (Debian chromium-driver)");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..100 {
            if http.get(format!("{base}/status")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        // Headless, and quiet: this machine's network is closed, so no background fetches.
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1280,1000",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let created: Value =
            http.post(format!("{base}/session")).json(&capabilities).send().await.unwrap().json().await.unwrap();
        let session =
            created["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {created}")).to_owned();
        Browser { driver, base, session, http, _profile: profile }
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut request = self.http.request(method, url);
        if !body.is_null() {
            request = request.json(&body);
        }
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        answer["value"].clone()
    }

    async fn text_of(&self, id: &str) -> String {
        let script = json!({"script": "const e = document.getElementById(arguments[0]); return e ? e.textContent : null;", "args": [id]});
        self.command(reqwest::Method::POST, "/execute/sync", script).await.as_str().unwrap_or_default().to_owned()
    }

    /// Waits (up to 30 s) until the element's text satisfies `ok`.
    async fn wait_for(&self, id: &str, ok: impl Fn(&str) -> bool) -> String {
        let mut seen = String::new();
        for _ in 0..300 {
            seen = self.text_of(id).await;
            if ok(&seen) {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("#{id} never showed what was expected; last seen {seen:?}");
    }

    async fn quit(mut self) {
        let _ = self.http.delete(format!("{}/session/{}", self.base, self.session)).send().await;
        let _ = self.driver.kill().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_the_service_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let server = support::embedded(dir.path());
    let curl = server.curl_line().await;
    let addr = server.addr().await;
    let out = support::paste(&curl).await;
    assert!(out.status.success());

    let browser = Browser::start().await;
    browser.command(reqwest::Method::POST, "/url", json!({"url": format!("http://{addr}/ops")})).await;
    assert_eq!(browser.wait_for("db", |t| t != "…").await, "ok");
    assert_eq!(browser.text_of("ca").await, "ok", "the embedded CA answers");
    assert_eq!(browser.text_of("cache").await, "ok");
    assert!(browser.text_of("mode-detail").await.contains("rules jpki-2023-05"));
    let mode = browser.text_of("mode").await;
    assert!(mode == "day" || mode == "night", "{mode}");
    assert!(browser.text_of("mode-detail").await.contains("accepts "), "the accepted items are listed");
    // The suspension reached the CA: nothing waits in the outbox.
    browser.wait_for("outbox", |t| t == "0 pending · 0 dead").await;
    assert_eq!(browser.text_of("dead").await, "none");
    // The page refreshes itself: within a few samples the suspension shows as a rate, with a plot.
    browser.wait_for("susp-rate", |t| t.parse::<f64>().is_ok_and(|r| r > 0.0)).await;
    let points = browser
        .command(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": "return document.querySelectorAll('#susp-plot polyline').length;", "args": []}),
        )
        .await;
    assert_eq!(points, json!(1), "a plot is drawn");

    let screenshot = browser.command(reqwest::Method::GET, "/screenshot", Value::Null).await;
    let png = base64::engine::general_purpose::STANDARD.decode(screenshot.as_str().unwrap()).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a real screenshot ({} bytes)", png.len());
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("ops-page.png");
    std::fs::write(&path, &png).unwrap();

    let logs = browser.command(reqwest::Method::POST, "/se/log", json!({"type": "browser"})).await;
    let errors: Vec<&Value> = logs
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["level"] == "SEVERE" || entry["level"] == "WARNING")
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    browser.quit().await;
    server.terminate().await;
}
