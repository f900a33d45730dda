//! Every refusal of `POST /v1/suspensions`: a clear problem+json with a stable
//! code, and nothing stored (every table's row count is unchanged).

use hotline_testkit::{Backend, TestApp, both_backends, jst};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Sends `send`'s request and checks its status, code and that no row was added anywhere.
async fn refused<F, Fut>(app: &TestApp, expected: StatusCode, code: &str, send: F) -> Value
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = (StatusCode, Value)>,
{
    let before = app.counts().await;
    let (status, body) = send().await;
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(app.counts().await, before, "a refused request stored something: {body}");
    body
}

async fn raw(
    app: &TestApp,
    token: Option<&str>,
    content_type: Option<&str>,
    key: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let mut req = app.client.post(format!("{}/v1/suspensions", app.base)).body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    TestApp::read(req.send().await.unwrap()).await
}

async fn malformed_json_is_400(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = refused(&app, StatusCode::BAD_REQUEST, "malformed_body", || {
        raw(&app, Some(&app.operator), Some("application/json"), Some("k"), b"{\"item\": ".to_vec())
    })
    .await;
    assert!(body["detail"].as_str().unwrap().contains("line 1"), "{body}");
}

async fn a_missing_idempotency_key_is_400(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let report = TestApp::report(app.card_holder(0), "card");
    refused(&app, StatusCode::BAD_REQUEST, "idempotency_key_required", || {
        app.post("/v1/suspensions", &app.operator, None, &report)
    })
    .await;
    refused(&app, StatusCode::BAD_REQUEST, "idempotency_key_required", || {
        app.post("/v1/suspensions", &app.operator, Some("  "), &report)
    })
    .await;
}

async fn a_body_over_16_kib_is_413(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut report = TestApp::report(app.card_holder(0), "card");
    report["police_report_number"] = json!("x".repeat(17 * 1024));
    refused(&app, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", || app.suspend("k", &report)).await;
}

async fn a_body_that_is_not_json_is_415(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let report = serde_json::to_vec(&TestApp::report(app.card_holder(0), "card")).unwrap();
    refused(&app, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", || {
        raw(&app, Some(&app.operator), Some("text/plain"), Some("k"), report.clone())
    })
    .await;
    refused(&app, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", || {
        raw(&app, Some(&app.operator), None, Some("k"), report.clone())
    })
    .await;
}

async fn invalid_fields_are_422_with_every_error(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let holder = app.card_holder(0);
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({"holder": {"individual_number": "123456789010"}}), vec!["holder.individual_number"]),
        (json!({"holder": {"date_of_birth": "1980-02-30"}}), vec!["holder.date_of_birth"]),
        (json!({"holder": {"date_of_birth": "2027-01-01"}}), vec!["holder.date_of_birth"]),
        (json!({"item": "passport"}), vec!["item"]),
        (json!({"cause": "fire"}), vec!["cause"]),
        (json!({"language": "fr"}), vec!["language"]),
        (json!({"decided_at": "2026-11-20T10:00:00+09:00"}), vec!["decided_at"]),
        (json!({"item": "smartphone"}), vec!["device_id"]),
        (json!({"device_id": "android-1"}), vec!["device_id"]),
        (
            json!({"holder": {"individual_number": "1234", "nickname": "x"}}),
            vec!["holder.individual_number", "holder.nickname"],
        ),
    ];
    for (i, (patch, fields)) in cases.into_iter().enumerate() {
        let mut report = TestApp::report(holder, "card");
        merge(&mut report, &patch);
        let key = format!("k{i}");
        let body =
            refused(&app, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", || app.suspend(&key, &report)).await;
        let got: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        assert_eq!(got, fields, "{patch}: {body}");
        assert!(body["errors"][0]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
}

fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (t, p) => *t = p.clone(),
    }
}

async fn a_reused_key_is_422(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, _) = app.suspend("k", &TestApp::report(app.card_holder(0), "card")).await;
    assert_eq!(status, StatusCode::CREATED);
    let other = TestApp::report(app.card_holder(1), "card");
    refused(&app, StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused", || app.suspend("k", &other)).await;
}

async fn an_unknown_holder_is_404_without_saying_which_part_failed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let holder = app.card_holder(0);
    let mut wrong_birth = TestApp::report(holder, "card");
    wrong_birth["holder"]["date_of_birth"] = json!("1901-01-01");
    let a = refused(&app, StatusCode::NOT_FOUND, "holder_not_found", || app.suspend("k1", &wrong_birth)).await;
    let mut wrong_number = TestApp::report(holder, "card");
    wrong_number["holder"]["individual_number"] = json!("123456789018");
    let b = refused(&app, StatusCode::NOT_FOUND, "holder_not_found", || app.suspend("k2", &wrong_number)).await;
    assert_eq!(a, b, "the two failures must be indistinguishable");
}

async fn an_unknown_device_is_404(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut report = TestApp::report(app.phone_holder(0), "smartphone");
    report["device_id"] = json!(app.phone_holder(1).smartphones[0].device_id.as_str());
    refused(&app, StatusCode::NOT_FOUND, "device_not_found", || app.suspend("k", &report)).await;
}

async fn a_card_at_night_is_409_with_the_call_back_time(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.clock.set(jst(2026, 11, 21, 23, 15, 0));
    for item in ["card", "notification_card", "number_notice"] {
        let report = TestApp::report(app.card_holder(0), item);
        let body = refused(&app, StatusCode::CONFLICT, "outside_reception_hours", || app.suspend(item, &report)).await;
        assert_eq!(body["next_accepted_at"], "2026-11-22T08:30:00.000+09:00");
        assert_eq!(body["mode"], "night");
    }
}

async fn without_a_valid_token_it_is_401(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let report = serde_json::to_vec(&TestApp::report(app.card_holder(0), "card")).unwrap();
    refused(&app, StatusCode::UNAUTHORIZED, "unauthorized", || {
        raw(&app, None, Some("application/json"), Some("k"), report.clone())
    })
    .await;
    refused(&app, StatusCode::UNAUTHORIZED, "unauthorized", || {
        raw(&app, Some("hl_0000"), Some("application/json"), Some("k"), report.clone())
    })
    .await;
}

async fn roles_that_may_not_suspend_get_403(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let report = TestApp::report(app.card_holder(0), "card");
    for token in [&app.clerk, &app.validator] {
        refused(&app, StatusCode::FORBIDDEN, "forbidden", || app.post("/v1/suspensions", token, Some("k"), &report))
            .await;
    }
}

both_backends!(
    malformed_json_is_400,
    a_missing_idempotency_key_is_400,
    a_body_over_16_kib_is_413,
    a_body_that_is_not_json_is_415,
    invalid_fields_are_422_with_every_error,
    a_reused_key_is_422,
    an_unknown_holder_is_404_without_saying_which_part_failed,
    an_unknown_device_is_404,
    a_card_at_night_is_409_with_the_call_back_time,
    without_a_valid_token_it_is_401,
    roles_that_may_not_suspend_get_403,
);
