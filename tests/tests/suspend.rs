//! Suspending through the API: the answer an operator reads out, exactly once.

use hotline_testkit::{Backend, TestApp, both_backends};
use reqwest::StatusCode;
use serde_json::json;

async fn a_card_report_is_suspended_with_a_reference(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let holder = app.card_holder(0);
    let (status, body) = app.suspend("key-1", &TestApp::report(holder, "card")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["status"], "suspended");
    assert_eq!(body["item"], "card");
    assert_eq!(body["cause"], "loss");
    assert_eq!(body["ca_sync"], "pending");
    assert_eq!(body["rules"], json!({"version": "jpki-2023-05", "mode": "day"}));
    assert_eq!(body["decided_at"], "2026-11-20T14:00:00.000+09:00");
    let reference = body["reference"].as_str().unwrap();
    assert_eq!(reference.len(), 9);
    let certs = body["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 2);
    for c in certs {
        assert_eq!(c["status"], "suspended");
        assert_eq!(c["medium"], "card");
        assert_eq!(app.cert_status(c["issuer"].as_str().unwrap(), c["serial"].as_str().unwrap()).await, "suspended");
    }
    let (status, read) = app.get(&format!("/v1/suspensions/{}", body["id"].as_str().unwrap()), &app.clerk).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["reference"], reference);
    assert_eq!(read["status"], "suspended");
    assert_eq!(read["language"], "en");
}

async fn a_retry_returns_the_first_answer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = TestApp::report(app.card_holder(0), "card");
    let (s1, first) = app.suspend("retry-key", &body).await;
    app.clock.set(app.clock_now() + chrono::Duration::minutes(3));
    let (s2, second) = app.suspend("retry-key", &body).await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(first, second);
    // The same JSON with its keys in another order is the same request.
    let reordered: serde_json::Value = serde_json::from_str(&format!(
        r#"{{"holder": {}, "cause": "loss", "item": "card", "language": "en", "call_id": "call-1"}}"#,
        body["holder"]
    ))
    .unwrap();
    assert_eq!(app.suspend("retry-key", &reordered).await, (StatusCode::CREATED, first));
    let suspensions = app.counts().await.into_iter().find(|(t, _)| *t == "suspensions").unwrap().1;
    assert_eq!(suspensions, 1);
}

async fn a_retry_is_answered_even_after_the_window_closes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = TestApp::report(app.card_holder(0), "card");
    let (s1, first) = app.suspend("k", &body).await;
    app.clock.set(hotline_testkit::night_instant());
    assert_eq!(app.suspend("k", &body).await, (s1, first));
}

async fn sixteen_concurrent_identical_requests_make_one_suspension(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = TestApp::report(app.card_holder(0), "card");
    let answers = futures::future::join_all((0..16).map(|_| app.suspend("double-click", &body))).await;
    let first = &answers[0];
    for a in &answers {
        assert_eq!(a.0, StatusCode::CREATED, "{}", a.1);
        assert_eq!(a.1["id"], first.1["id"]);
    }
    let counts = app.counts().await;
    let count = |t: &str| counts.iter().find(|(n, _)| *n == t).unwrap().1;
    assert_eq!((count("suspensions"), count("outbox"), count("audit_log")), (1, 2, 1));
}

async fn a_report_of_what_is_already_held_names_the_existing_suspension(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let holder = app.card_holder(0);
    let (_, first) = app.suspend("k1", &TestApp::report(holder, "card")).await;
    let outbox_before = app.counts().await;
    let (status, again) = app.suspend("k2", &TestApp::report(holder, "number_notice")).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["status"], "already_suspended");
    assert_eq!(again["reference"], first["reference"]);
    assert_eq!(again["id"], first["id"]);
    let after = app.counts().await;
    let outbox = |c: &Vec<(&str, i64)>| c.iter().find(|(n, _)| *n == "outbox").unwrap().1;
    assert_eq!(outbox(&after), outbox(&outbox_before));
}

async fn a_smartphone_report_suspends_the_phone_certificates_at_night(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.clock.set(hotline_testkit::night_instant());
    let holder = app.phone_holder(0);
    let (status, body) = app.suspend("k1", &TestApp::report(holder, "smartphone")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["rules"]["mode"], "night");
    let certs = body["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 2);
    assert!(certs.iter().all(|c| c["medium"] == "smartphone"));
    for c in &holder.card {
        assert_eq!(app.cert_status(&c.issuer, c.serial.as_str()).await, "good");
    }
}

async fn supervisors_may_suspend(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, _) =
        app.post("/v1/suspensions", &app.supervisor, Some("k"), &TestApp::report(app.card_holder(0), "card")).await;
    assert_eq!(status, StatusCode::CREATED);
}

both_backends!(
    a_card_report_is_suspended_with_a_reference,
    a_retry_returns_the_first_answer,
    a_retry_is_answered_even_after_the_window_closes,
    sixteen_concurrent_identical_requests_make_one_suspension,
    a_report_of_what_is_already_held_names_the_existing_suspension,
    a_smartphone_report_suspends_the_phone_certificates_at_night,
    supervisors_may_suspend,
);
