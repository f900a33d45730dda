//! `/metrics` exports what on-call needs, with the right labels, after the
//! routes are exercised: requests by route and status, suspension outcomes,
//! releases, status answers by source, build info.

use hotline_testkit::{Backend, TestApp, both_backends, night_instant};
use reqwest::StatusCode;
use serde_json::json;

async fn metrics_follow_what_happened(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, created) = app.suspend("k1", &TestApp::report(app.card_holder(0), "card")).await;
    app.suspend("k2", &TestApp::report(app.card_holder(0), "notification_card")).await;
    let mut bad = TestApp::report(app.card_holder(1), "card");
    bad["item"] = json!("passport");
    app.suspend("k3", &bad).await;
    app.clock.set(night_instant());
    app.suspend("k4", &TestApp::report(app.card_holder(2), "card")).await;
    let id = created["id"].as_str().unwrap();
    app.post(&format!("/v1/suspensions/{id}/release"), &app.clerk, Some("r"), &json!({"verified_with": "passport"}))
        .await;
    app.get("/v1/status/jpki-auth/00ff", &app.validator).await;

    let resp = app.client.get(format!("{}/metrics", app.base)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = resp.text().await.unwrap();
    for line in [
        r#"hotline_http_requests_total{method="POST",route="/v1/suspensions",status="201"} 1"#,
        r#"hotline_http_requests_total{method="POST",route="/v1/suspensions",status="200"} 1"#,
        r#"hotline_http_requests_total{method="POST",route="/v1/suspensions",status="422"} 1"#,
        r#"hotline_http_requests_total{method="POST",route="/v1/suspensions",status="409"} 1"#,
        r#"hotline_http_requests_total{method="POST",route="/v1/suspensions/{id}/release",status="200"} 1"#,
        r#"hotline_suspensions_total{item="card",mode="day",outcome="accepted"} 1"#,
        r#"hotline_suspensions_total{item="notification_card",mode="day",outcome="already_suspended"} 1"#,
        r#"hotline_suspensions_total{item="unknown",mode="unknown",outcome="rejected"} 1"#,
        r#"hotline_suspensions_total{item="card",mode="night",outcome="refused_by_rule"} 1"#,
        r#"hotline_releases_total{outcome="released"} 1"#,
        r#"hotline_build_info{version="0.0.0","#,
    ] {
        assert!(text.contains(line), "missing {line} in:\n{text}");
    }
    assert!(
        text.contains(
            r#"hotline_http_request_duration_seconds_bucket{le="0.1",method="POST",route="/v1/suspensions"}"#
        ) || text.contains(
            r#"hotline_http_request_duration_seconds_bucket{method="POST",route="/v1/suspensions",le="0.1"}"#
        ),
        "{text}"
    );
    assert!(text.contains(r#"hotline_status_answers_total{source="#), "{text}");
    // Built from a git checkout, the build names its commit.
    let head = std::process::Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output();
    if let Some(head) = head.ok().filter(|h| h.status.success()) {
        let commit = String::from_utf8(head.stdout).unwrap();
        assert!(text.contains(&format!(r#"commit="{}""#, commit.trim())), "{text}");
    }
    assert!(!text.contains(&app.card_holder(0).individual_number.expose_digits()));
}

both_backends!(metrics_follow_what_happened);
