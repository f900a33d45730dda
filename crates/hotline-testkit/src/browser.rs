//! A real headless Chromium, driven through chromedriver's WebDriver
//! protocol with fantoccini, for the pages people use: the console and the
//! on-call status page. Each step can write a screenshot under the test's
//! target directory for people to look at.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

/// A chromedriver process and one browser session on it.
pub struct Browser {
    pub client: Client,
    driver: tokio::process::Child,
    driver_url: String,
    shots: PathBuf,
    name: String,
    step: AtomicUsize,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session;
    /// screenshots go to `shots` as `{name}-{step}-{label}.png`.
    pub async fn start(shots: &Path, name: &str) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver is installed by the README's test command (Debian chromium-driver)");
        let driver_url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..100 {
            if http.get(format!("{driver_url}/status")).send().await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        // Headless, and quiet: the network is loopback only, so no background fetches.
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--lang=en-US",
            "--window-size=1280,1100",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let Value::Object(capabilities) = capabilities else { unreachable!() };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector).capabilities(capabilities).connect(&driver_url).await.unwrap();
        std::fs::create_dir_all(shots).unwrap();
        Browser {
            client,
            driver,
            driver_url,
            shots: shots.to_owned(),
            name: name.to_owned(),
            step: AtomicUsize::new(0),
            _profile: profile,
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// The text of the first element matching `css`, or `None` if there is none.
    pub async fn text(&self, css: &str) -> Option<String> {
        let script = "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;";
        self.client.execute(script, vec![json!(css)]).await.unwrap().as_str().map(str::to_owned)
    }

    /// Runs a script in the page and returns its value.
    pub async fn eval(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// Whether the element matching `css` is shown (exists and no `hidden` ancestor).
    pub async fn visible(&self, css: &str) -> bool {
        let script = "const e = document.querySelector(arguments[0]); return !!e && e.closest('[hidden]') === null;";
        self.client.execute(script, vec![json!(css)]).await.unwrap() == json!(true)
    }

    /// Waits (up to 20 s) until the text at `css` satisfies `ok`; returns it.
    pub async fn wait_for(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        let mut seen = None;
        for _ in 0..200 {
            seen = self.text(css).await;
            if seen.as_deref().is_some_and(&ok) {
                return seen.unwrap_or_default();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.shot("timed-out").await;
        panic!("{css} never showed what was expected; last seen {seen:?}");
    }

    /// Waits (up to 20 s) until the element at `css` is shown.
    pub async fn wait_visible(&self, css: &str) {
        for _ in 0..200 {
            if self.visible(css).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.shot("timed-out").await;
        panic!("{css} never became visible");
    }

    /// Types into whatever has the focus when each key is pressed, as a
    /// person at the keyboard does: key actions, not "send keys to element",
    /// which would first move the focus to the element it was given.
    pub async fn keys(&self, text: &str) {
        let mut keyboard = KeyActions::new("keyboard".to_owned());
        for key in text.chars() {
            keyboard = keyboard.then(KeyAction::Down { value: key }).then(KeyAction::Up { value: key });
        }
        self.client.perform_actions(keyboard).await.unwrap();
    }

    pub async fn tab(&self) {
        self.keys(&Key::Tab).await;
    }

    pub async fn enter(&self) {
        self.keys(&Key::Enter).await;
    }

    /// The id of the element that has the focus.
    pub async fn focused(&self) -> String {
        self.eval("return document.activeElement ? document.activeElement.id : '';")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Writes a screenshot of the page now; returns its path.
    pub async fn shot(&self, label: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 5_000, "a real screenshot ({} bytes)", png.len());
        let n = self.step.fetch_add(1, Ordering::SeqCst) + 1;
        let path = self.shots.join(format!("{}-{n:02}-{label}.png", self.name));
        std::fs::write(&path, &png).unwrap();
        path
    }

    /// The browser console's messages since the last call, as (level, message):
    /// chromedriver hands each message out once.
    pub async fn console_log(&self) -> Vec<(String, String)> {
        let session = self.client.session_id().await.unwrap().unwrap();
        let logs: Value = reqwest::Client::new()
            .post(format!("{}/session/{session}/se/log", self.driver_url))
            .json(&json!({"type": "browser"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        logs["value"].as_array().unwrap().iter().map(|e| (text(&e["level"]), text(&e["message"]))).collect()
    }

    pub async fn quit(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill().await;
    }
}
