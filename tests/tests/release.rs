//! Lifting a suspension at the counter, and reading suspensions.

use hotline_testkit::{Backend, TestApp, both_backends};
use reqwest::StatusCode;
use serde_json::json;

async fn suspended(app: &TestApp) -> (String, Vec<(String, String, String)>) {
    let (status, body) = app.suspend("s1", &TestApp::report(app.card_holder(0), "card")).await;
    assert_eq!(status, StatusCode::CREATED);
    let certs = body["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["issuer"].as_str().unwrap().to_owned(),
                c["serial"].as_str().unwrap().to_owned(),
                c["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (body["id"].as_str().unwrap().to_owned(), certs)
}

async fn a_release_resumes_identification_and_revokes_signature(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (id, certs) = suspended(&app).await;
    let path = format!("/v1/suspensions/{id}/release");
    let request = json!({"verified_with": "residence card", "note": "card found at home"});
    let (status, body) = app.post(&path, &app.clerk, Some("r1"), &request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "released");
    assert_eq!(body["verified_with"], "residence card");
    assert!(body["released_at"].as_str().unwrap().ends_with("+09:00"));
    for (issuer, serial, kind) in &certs {
        let expected = if kind == "signature" { "revoked" } else { "good" };
        assert_eq!(app.cert_status(issuer, serial).await, expected, "{kind}");
    }
    let (_, revoked) = app
        .get(&format!("/v1/status/jpki-sign/{}", certs.iter().find(|c| c.2 == "signature").unwrap().1), &app.validator)
        .await;
    assert_eq!(revoked["reason"], "superseded");
    // Retry: the same answer; a new key: 409, nothing changes.
    assert_eq!(app.post(&path, &app.clerk, Some("r1"), &request).await, (StatusCode::OK, body));
    let before = app.counts().await;
    let (status, again) = app.post(&path, &app.clerk, Some("r2"), &request).await;
    assert_eq!((status, again["code"].as_str()), (StatusCode::CONFLICT, Some("already_released")));
    assert_eq!(app.counts().await, before);
}

async fn only_clerks_release_and_bad_releases_store_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (id, _) = suspended(&app).await;
    let path = format!("/v1/suspensions/{id}/release");
    let before = app.counts().await;
    let ok = json!({"verified_with": "passport"});
    for token in [&app.operator, &app.supervisor, &app.validator] {
        assert_eq!(app.post(&path, token, Some("r"), &ok).await.0, StatusCode::FORBIDDEN);
    }
    assert_eq!(app.post(&path, "nope", Some("r"), &ok).await.0, StatusCode::UNAUTHORIZED);
    let (status, body) = app.post(&path, &app.clerk, Some("r"), &json!({"note": "x", "reason": "y"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["verified_with", "reason"]);
    assert_eq!(app.post(&path, &app.clerk, None, &ok).await.0, StatusCode::BAD_REQUEST);
    let (status, body) = app.post("/v1/suspensions/nope/release", &app.clerk, Some("r"), &ok).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("suspension_not_found")));
    let (status, body) = app.post("/v1/suspensions/%FF/release", &app.clerk, Some("r"), &ok).await;
    assert_eq!((status, body["errors"][0]["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("id")));
    assert_eq!(app.counts().await, before);
}

async fn who_may_read_a_suspension(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (id, _) = suspended(&app).await;
    let path = format!("/v1/suspensions/{id}");
    for token in [&app.operator, &app.supervisor, &app.clerk] {
        assert_eq!(app.get(&path, token).await.0, StatusCode::OK);
    }
    assert_eq!(app.get(&path, &app.validator).await.0, StatusCode::FORBIDDEN);
    assert_eq!(app.get(&path, "nope").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get("/v1/suspensions/unknown", &app.operator).await.1["code"], "suspension_not_found");
    let (status, body) = app.get("/v1/suspensions/%FF", &app.operator).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed")));
}

both_backends!(
    a_release_resumes_identification_and_revokes_signature,
    only_clerks_release_and_bad_releases_store_nothing,
    who_may_read_a_suspension,
);
