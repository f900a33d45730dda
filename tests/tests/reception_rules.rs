//! The reception rules through the API, at the published boundaries, decided
//! by the server's clock and never by anything the client sends.

use hotline_testkit::{Backend, TestApp, both_backends, jst};
use reqwest::StatusCode;
use serde_json::json;

async fn card_reports_at_each_boundary(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cases = [
        ((8, 29, 59), StatusCode::CONFLICT, "night"),
        ((8, 30, 0), StatusCode::CREATED, "day"),
        ((19, 59, 59), StatusCode::CREATED, "day"),
        ((20, 0, 0), StatusCode::CONFLICT, "night"),
    ];
    for (i, ((h, m, s), expected, mode)) in cases.into_iter().enumerate() {
        app.clock.set(jst(2026, 11, 24, h, m, s));
        let (status, body) = app.suspend(&format!("k{i}"), &TestApp::report(app.card_holder(i), "card")).await;
        assert_eq!(status, expected, "{h}:{m}:{s} {body}");
        if status == StatusCode::CREATED {
            assert_eq!(body["rules"]["mode"], mode);
        } else {
            assert_eq!(body["mode"], mode);
            let next = if h == 8 { "2026-11-24T08:30:00.000+09:00" } else { "2026-11-25T08:30:00.000+09:00" };
            assert_eq!(body["next_accepted_at"], next, "{body}");
        }
    }
}

async fn smartphone_reports_are_accepted_at_every_boundary(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (i, (h, m, s)) in [(8, 29, 59), (8, 30, 0), (19, 59, 59), (20, 0, 0), (3, 0, 0)].into_iter().enumerate() {
        app.clock.set(jst(2026, 11, 24, h, m, s));
        let (status, body) = app.suspend(&format!("k{i}"), &TestApp::report(app.phone_holder(i), "smartphone")).await;
        assert_eq!(status, StatusCode::CREATED, "{h}:{m}:{s} {body}");
    }
}

async fn a_time_sent_by_the_client_is_never_used(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.clock.set(jst(2026, 11, 24, 23, 0, 0));
    let mut report = TestApp::report(app.card_holder(0), "card");
    report["decided_at"] = json!("2026-11-24T10:00:00+09:00");
    let (status, body) = app.suspend("k1", &report).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed")));
    // A Date header claiming daytime changes nothing either.
    let resp = app
        .client
        .post(format!("{}/v1/suspensions", app.base))
        .bearer_auth(&app.operator)
        .header("Idempotency-Key", "k2")
        .header("Date", "Tue, 24 Nov 2026 01:00:00 GMT")
        .json(&TestApp::report(app.card_holder(0), "card"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CONFLICT);
}

async fn rules_now_says_what_is_accepted(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.clock.set(jst(2026, 11, 24, 8, 45, 0));
    let (status, day) = app.get("/v1/rules/now", &app.validator).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(day["mode"], "day");
    assert_eq!(day["accepted_items"], json!(["card", "smartphone", "notification_card", "number_notice"]));
    assert_eq!(day["next_change_at"], "2026-11-24T20:00:00.000+09:00");
    assert_eq!(day["rules_version"], "jpki-2023-05");
    assert_eq!(day["staffed_languages"], json!(["ja", "en", "zh", "ko", "es", "pt"]));
    app.clock.set(jst(2026, 11, 24, 22, 0, 0));
    let (_, night) = app.get("/v1/rules/now", &app.clerk).await;
    assert_eq!(night["accepted_items"], json!(["smartphone"]));
    assert_eq!(night["next_change_at"], "2026-11-25T08:30:00.000+09:00");
    assert_eq!(night["staffed_languages"], json!(["ja"]));
}

both_backends!(
    card_reports_at_each_boundary,
    smartphone_reports_are_accepted_at_every_boundary,
    a_time_sent_by_the_client_is_never_used,
    rules_now_says_what_is_accepted,
);
