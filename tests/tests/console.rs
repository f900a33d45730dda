//! The console as its people use it, in real headless Chromium through
//! WebDriver (fantoccini): an operator takes a call by keyboard by day and
//! by night, a clerk lifts a suspension at the counter, requests that fail
//! are retried without suspending twice. Each step writes a screenshot under
//! `target/tmp/console/`. The server's clock is the test's, as in the rule
//! tests; the CA is a real ca-sim drained by a real worker.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hotline_core::IndividualNumber;
use hotline_store::synthetic::SampleHolder;
use hotline_testkit::{Backend, Browser, CaSimServer, TcpProxy, TestApp, TestOptions, night_instant};
use hotline_worker::{TrustStore, Worker, WorkerMetrics};
use prometheus_client::registry::Registry as Prometheus;
use reqwest::StatusCode;

fn shots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console")
}

/// An instance on PostgreSQL with a CA whose outbox a worker drains, as in production.
struct Rig {
    app: TestApp,
    _ca: CaSimServer,
    worker: tokio::task::JoinHandle<()>,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.worker.abort();
    }
}

async fn rig() -> Rig {
    let ca = CaSimServer::start();
    let app =
        TestApp::spawn_with(Backend::Postgres, TestOptions { ca_url: Some(ca.url()), ..TestOptions::default() }).await;
    let settings = hotline_testkit::quick_worker_settings();
    let metrics = Arc::new(WorkerMetrics::new(&mut Prometheus::default()));
    let worker = Worker::new(app.store.clone(), ca.client(), settings, metrics, TrustStore::default());
    let worker = tokio::spawn(async move {
        loop {
            let _ = worker.drain_once().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    Rig { app, _ca: ca, worker }
}

async fn suspensions(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM suspensions").fetch_one(app.store.pool()).await.unwrap()
}

async fn sign_in(browser: &Browser, base: &str, token: &str) {
    browser.goto(&format!("{base}/console")).await;
    browser.wait_visible("#sign-in").await;
    assert_eq!(browser.focused().await, "token", "the token field has the focus");
    browser.keys(token).await;
    browser.enter().await;
    browser.wait_for("#who", |t| t.starts_with("Signed in as")).await;
}

/// Types a call and a holder into the identification form, field after field with Tab, and sends it with Enter.
async fn identify_by_keyboard(browser: &Browser, call_id: &str, number: &str, birth: &str) {
    assert_eq!(browser.focused().await, "call-id", "a new call starts at the call id");
    browser.keys(call_id).await;
    browser.tab().await; // the "generate" button
    browser.tab().await; // the caller's language: the first staffed one is chosen
    browser.tab().await;
    assert_eq!(browser.focused().await, "number");
    browser.keys(number).await;
    browser.tab().await;
    browser.keys(birth).await;
    browser.enter().await;
}

fn birth(holder: &SampleHolder) -> String {
    holder.date_of_birth.format("%Y-%m-%d").to_string()
}

/// From the chosen item (which has the focus) to the Suspend button.
async fn to_suspend_button(browser: &Browser) {
    browser.tab().await; // the cause
    browser.tab().await; // the police report receipt number
    browser.tab().await;
    assert_eq!(browser.focused().await, "suspend");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn by_day_an_operator_suspends_a_card_by_keyboard_exactly_once() {
    let rig = rig().await;
    let app = &rig.app;
    let browser = Browser::start(&shots(), "day").await;
    sign_in(&browser, &app.base, &app.operator).await;
    browser.wait_for("#line-mode", |t| t == "Day: every report is accepted").await;
    let line = browser.wait_for("#line-next", |t| !t.is_empty()).await;
    assert_eq!(line, "Changes at 20:00 JST, in 6 h 0 min", "the server's clock stands at 14:00 JST");
    assert!(browser.text("#line-staffed").await.unwrap().starts_with("Languages staffed now: "));
    browser.shot("signed-in").await;

    let holder = app.card_holder(0).clone();
    let number = holder.individual_number.expose_digits();
    identify_by_keyboard(&browser, "call-day-1", &number, &birth(&holder)).await;
    browser.wait_for("#identify-message", |t| t == "Holder found.").await;
    assert!(
        browser.eval("return document.getElementById('number').classList.contains('masked');").await == true,
        "masked once entered"
    );
    assert_eq!(browser.focused().await, "item-0", "the card is chosen and has the focus");
    browser.shot("identified").await;
    to_suspend_button(&browser).await;
    // Enter twice, as a hurried operator would.
    browser.enter().await;
    browser.enter().await;
    let reference = browser.wait_for("#reference", |t| t.len() == 9).await;
    browser.shot("suspended").await;
    browser.wait_for("#ca-sync", |t| t == "confirmed").await;
    browser.wait_for("#calls td.ref", |t| t == reference).await;
    browser.shot("confirmed").await;
    assert_eq!(suspensions(app).await, 1, "two Enters, one suspension");
    for cert in &holder.card {
        assert_eq!(app.cert_status(&cert.issuer, cert.serial.as_str()).await, "suspended");
    }
    let (_, stored) = app.get(&format!("/v1/suspensions/{reference}"), &app.operator).await;
    assert_eq!((stored["call_id"].as_str(), stored["ca_sync"].as_str()), (Some("call-day-1"), Some("confirmed")));

    // The next call, by mouse: a double click suspends once.
    let active = browser.eval("return document.activeElement.outerHTML.slice(0, 80);").await;
    assert_eq!(browser.focused().await, "copy", "after a result, a stray Enter only copies the reference: {active}");
    browser.tab().await;
    browser.enter().await; // "New call"
    let second = app.card_holder(1).clone();
    identify_by_keyboard(&browser, "call-day-2", &second.individual_number.expose_digits(), &birth(&second)).await;
    browser.wait_for("#identify-message", |t| t == "Holder found.").await;
    let button = browser.client.find(fantoccini::Locator::Id("suspend")).await.unwrap();
    let _ = button.click().await;
    let _ = button.click().await;
    browser.wait_for("#reference", |t| t.len() == 9 && t != reference).await;
    assert_eq!(suspensions(app).await, 2, "a double click, one suspension");

    // The session cookie, as the browser holds it.
    let cookie = browser.client.get_named_cookie("hotline_session").await.unwrap();
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");
    // The number is in no URL, no storage and no console line.
    assert!(!browser.client.current_url().await.unwrap().as_str().contains(&number));
    let storage =
        browser.eval("return JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)]);").await;
    assert!(!storage.as_str().unwrap().contains(&number[..8]), "{storage}");
    let log = browser.console_log().await;
    assert!(log.iter().all(|(_, message)| !message.contains(&number)), "{log:?}");
    let problems: Vec<_> = log.iter().filter(|(level, _)| level == "SEVERE" || level == "WARNING").collect();
    assert!(problems.is_empty(), "the console logs no error or warning: {problems:?}");

    // 日本語: the switch is remembered by this browser.
    let switch = browser.client.find(fantoccini::Locator::Id("ui-language")).await.unwrap();
    switch.select_by_value("ja").await.unwrap();
    browser.wait_for("h1", |t| t == "紛失・盗難 一時停止受付").await;
    browser.client.refresh().await.unwrap();
    browser.wait_for("#line-mode", |t| t == "日中：すべての届出を受け付けます").await;
    browser.wait_for("#line-next", |t| t.contains("日本時間 20:00")).await;
    let kept = browser.eval("return document.querySelectorAll('#calls td.ref').length;").await;
    assert_eq!(kept, 2, "this session's calls survive a reload");
    let storage =
        browser.eval("return JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)]);").await;
    assert!(
        storage.as_str().unwrap().contains(&reference) && !storage.as_str().unwrap().contains(&number[..8]),
        "{storage}"
    );
    browser.shot("japanese").await;
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_night_the_card_is_refused_before_it_is_tried_and_the_smartphone_is_suspended() {
    let rig = rig().await;
    let app = &rig.app;
    app.clock.set(night_instant());
    let browser = Browser::start(&shots(), "night").await;
    sign_in(&browser, &app.base, &app.operator).await;
    browser.wait_for("#line-mode", |t| t.starts_with("Night")).await;
    let holder = app.phone_holder(0).clone();
    identify_by_keyboard(&browser, "call-night-1", &holder.individual_number.expose_digits(), &birth(&holder)).await;
    browser.wait_for("#identify-message", |t| t == "Holder found.").await;
    let card = browser.text("#items label:first-child").await.unwrap();
    assert!(card.contains("Individual Number Card"), "{card}");
    assert!(card.contains("call back from 08:30 JST, in 5 h 30 min"), "refused before it is tried: {card}");
    assert_eq!(browser.eval("return document.getElementById('item-0').disabled;").await, true);
    assert_eq!(browser.focused().await, "item-1", "the smartphone, the first item accepted, is chosen");
    browser.shot("refused-card").await;
    to_suspend_button(&browser).await;
    browser.enter().await;
    browser.wait_for("#reference", |t| t.len() == 9).await;
    browser.shot("suspended-phone").await;
    assert_eq!(suspensions(app).await, 1);
    let phone = &holder.smartphones[0];
    for cert in &phone.certificates {
        assert_eq!(app.cert_status(&cert.issuer, cert.serial.as_str()).await, "suspended");
    }
    for cert in &holder.card {
        assert_eq!(app.cert_status(&cert.issuer, cert.serial.as_str()).await, "good", "the card was not tried");
    }
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mistyped_check_digit_sends_nothing_and_an_unknown_holder_is_said_plainly() {
    let rig = rig().await;
    let app = &rig.app;
    let browser = Browser::start(&shots(), "mistyped").await;
    sign_in(&browser, &app.base, &app.operator).await;
    let holder = app.card_holder(0).clone();
    let number = holder.individual_number.expose_digits();
    let wrong = format!("{}{}", &number[..11], (number.as_bytes()[11] - b'0' + 1) % 10);
    let before = app.counts().await;
    identify_by_keyboard(&browser, "call-typo-1", &wrong, &birth(&holder)).await;
    let message = browser.wait_for("#number-message", |t| !t.is_empty()).await;
    assert_eq!(message, "The last digit does not match: ask the caller to read the number again.");
    assert_eq!(browser.focused().await, "number", "the operator is taken back to the number");
    browser.shot("check-digit").await;
    assert_eq!(app.counts().await, before, "nothing was sent that could store anything");

    // A number that is valid but nobody's.
    let nobody = IndividualNumber::from_first_eleven([9, 9, 9, 9, 0, 0, 0, 0, 1, 2, 3]).unwrap().expose_digits();
    browser.eval("document.getElementById('number').value = ''; document.getElementById('number').focus();").await;
    browser.keys(&nobody).await;
    browser.enter().await;
    let said = browser.wait_for("#identify-message", |t| t.starts_with("No holder")).await;
    assert!(said.contains("Check both with the caller"), "{said}");
    assert!(!browser.visible("#report-form").await, "nothing to suspend is offered");
    browser.shot("unknown-holder").await;
    app.wait_sealed().await;
    let audited: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'holder.identified'")
        .fetch_one(app.store.pool())
        .await
        .unwrap();
    assert_eq!(audited, 1, "only the well-formed look-up reached the service");
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_cut_off_is_retried_with_the_same_key_and_suspends_once() {
    let rig = rig().await;
    let app = &rig.app;
    let proxy = TcpProxy::start(app.addr).await;
    let base = format!("http://{}", proxy.addr);
    let browser = Browser::start(&shots(), "retry").await;
    sign_in(&browser, &base, &app.operator).await;
    let holder = app.card_holder(0).clone();
    identify_by_keyboard(&browser, "call-cut-1", &holder.individual_number.expose_digits(), &birth(&holder)).await;
    browser.wait_for("#identify-message", |t| t == "Holder found.").await;
    to_suspend_button(&browser).await;
    // The service hangs: while the request is in flight the button says so and takes no second press.
    proxy.stall();
    browser.enter().await;
    browser.wait_for("#suspend", |t| t == "Suspending…").await;
    assert_eq!(browser.eval("return document.getElementById('suspend').disabled;").await, true);
    browser.shot("in-flight").await;
    // Then the connection is cut, unanswered, and no new one gets through.
    proxy.cut();
    proxy.unstall();
    browser.wait_for("#suspend-message", |t| t.starts_with("The request did not get an answer")).await;
    assert_eq!(browser.text("#suspend").await.as_deref(), Some("Suspend"));
    assert!(browser.visible("#retry").await);
    assert_eq!(browser.focused().await, "retry");
    browser.shot("cut-off").await;
    assert_eq!(suspensions(app).await, 0);
    assert_eq!(
        browser.eval("return document.getElementById('call-id').value;").await,
        "call-cut-1",
        "everything typed is kept"
    );
    proxy.mend();
    browser.enter().await;
    browser.wait_for("#reference", |t| t.len() == 9).await;
    browser.shot("retried").await;
    assert_eq!(suspensions(app).await, 1);
    let keys: Vec<String> =
        sqlx::query_scalar("SELECT idempotency_key FROM idempotency").fetch_all(app.store.pool()).await.unwrap();
    assert_eq!(keys.len(), 1, "one key for the call and its choice: {keys:?}");
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_clerk_releases_by_reference_and_an_idle_session_goes_back_to_sign_in() {
    let rig = rig().await;
    let app = &rig.app;
    let holder = app.card_holder(0).clone();
    let (status, receipt) = app.suspend("s1", &TestApp::report(&holder, "card")).await;
    assert_eq!(status, StatusCode::CREATED);
    let reference = receipt["reference"].as_str().unwrap().to_owned();
    for _ in 0..200 {
        if app.get(&format!("/v1/suspensions/{reference}"), &app.clerk).await.1["ca_sync"] == "confirmed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let browser = Browser::start(&shots(), "clerk").await;
    sign_in(&browser, &app.base, &app.clerk).await;
    assert_eq!(browser.text("#who").await.as_deref(), Some("Signed in as test-clerk (clerk)"));
    assert_eq!(browser.focused().await, "find-reference");
    browser.keys(&reference.to_lowercase()).await;
    browser.enter().await;
    browser.wait_visible("#release-form").await;
    assert_eq!(browser.text("#found-state").await.as_deref(), Some("In force"));
    browser.wait_for("#found-ca-sync", |t| t == "confirmed").await;
    browser.keys(" ").await; // ticks the first document, which has the focus
    for _ in 0..7 {
        browser.tab().await; // past the five other documents and the note
    }
    assert_eq!(browser.focused().await, "release");
    browser.shot("found").await;
    browser.enter().await;
    let said = browser.wait_for("#release-message", |t| t.starts_with("Released.")).await;
    assert!(said.contains("signature certificates are revoked"), "{said}");
    assert_eq!(browser.text("#found-state").await.as_deref(), Some("Released"));
    browser.shot("released").await;
    for cert in &holder.card {
        let expected = if cert.kind == hotline_core::CertificateKind::Signature { "revoked" } else { "good" };
        assert_eq!(app.cert_status(&cert.issuer, cert.serial.as_str()).await, expected);
    }
    let (_, stored) = app.get(&format!("/v1/suspensions/{reference}"), &app.clerk).await;
    assert_eq!(stored["documents_checked"], serde_json::json!(["my_number_card"]));

    // Sixteen minutes away from the desk: the next action goes back to sign-in.
    app.clock.set(app.clock_now() + chrono::Duration::minutes(16));
    browser.eval("document.getElementById('find-reference').focus();").await;
    browser.enter().await;
    browser.wait_visible("#sign-in").await;
    assert!(browser.text("#sign-in-notice").await.unwrap().starts_with("You were signed out"));
    browser.shot("idle").await;

    // Signing in again and out: the session ends in the store, for every instance.
    sign_in(&browser, &app.base, &app.clerk).await;
    browser.client.find(fantoccini::Locator::Id("sign-out")).await.unwrap().click().await.unwrap();
    browser.wait_visible("#sign-in").await;
    let live: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM console_sessions WHERE ended_at IS NULL")
        .fetch_one(app.store.pool())
        .await
        .unwrap();
    assert_eq!(live, 1, "the idle session lapsed by time, the signed-out one is ended");
    browser.quit().await;
}
