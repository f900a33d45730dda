//! The on-call status page in real headless Chromium, driven through
//! chromedriver with fantoccini (`hotline_testkit::Browser`): it loads with no
//! console errors, shows the health, reception mode, rates and outbox of the
//! running service, and a screenshot is written (`target/tmp/ops-page-*.png`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod support;

use hotline_testkit::Browser;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_the_service_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let server = support::embedded(dir.path());
    let addr = server.suspend_the_sample().await;
    // Beside the curl line, the console's address, which serves the console.
    let console = server.wait_for(|l| l.strip_prefix("The console for operators and clerks").map(str::to_owned)).await;
    assert!(console.ends_with(&format!("http://{addr}/console")), "{console}");

    let browser = Browser::start(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")), "ops-page").await;
    browser.goto(&format!("http://{addr}/ops")).await;
    assert_eq!(browser.wait_for("#db", |t| t != "…").await, "ok");
    // One SQLite file: no standby, and none required of the embedded default.
    assert_eq!(browser.text("#db-detail").await.as_deref(), Some("no synchronous standby: commits are on one server"));
    assert_eq!(browser.text("#ca").await.as_deref(), Some("ok"), "the embedded CA answers");
    assert_eq!(browser.text("#cache").await.as_deref(), Some("ok"));
    assert!(browser.text("#mode-detail").await.unwrap_or_default().contains("rules jpki-2023-05"));
    let mode = browser.text("#mode").await.unwrap_or_default();
    assert!(mode == "day" || mode == "night", "{mode}");
    assert!(
        browser.text("#mode-detail").await.unwrap_or_default().contains("accepts "),
        "the accepted items are listed"
    );
    // The suspension reached the CA: nothing waits in the outbox.
    browser.wait_for("#outbox", |t| t == "0 pending · 0 dead").await;
    assert_eq!(browser.text("#dead").await.as_deref(), Some("none"));
    // The page refreshes itself: within a few samples the suspension shows as a rate, with a plot.
    browser.wait_for("#susp-rate", |t| t.parse::<f64>().is_ok_and(|r| r > 0.0)).await;
    let points = browser.eval("return document.querySelectorAll('#susp-plot polyline').length;").await;
    assert_eq!(points, serde_json::json!(1), "a plot is drawn");
    browser.shot("status").await;
    browser.goto(&format!("http://{addr}/console")).await;
    browser.wait_visible("#sign-in").await;
    assert_eq!(browser.text("h1").await.as_deref(), Some("Loss and theft hotline"));

    let problems: Vec<(String, String)> =
        browser.console_log().await.into_iter().filter(|(level, _)| level == "SEVERE" || level == "WARNING").collect();
    assert!(problems.is_empty(), "console errors: {problems:?}");
    browser.quit().await;
    server.terminate().await;
}
