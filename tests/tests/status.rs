//! Certificate status for validators, and the unauthenticated endpoints.

use hotline_testkit::{Backend, TestApp, both_backends};
use reqwest::StatusCode;

async fn status_answers_with_crl_semantics(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let holder = app.card_holder(0);
    let sign = &holder.card[0];
    let (status, body) = app.get(&format!("/v1/status/{}/{}", sign.issuer, sign.serial.as_str()), &app.validator).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((body["status"].as_str(), body["reason"].is_null()), (Some("good"), true));
    app.suspend("k", &TestApp::report(holder, "card")).await;
    let upper = sign.serial.as_str().to_uppercase();
    let (_, body) = app.get(&format!("/v1/status/{}/{upper}", sign.issuer), &app.validator).await;
    assert_eq!(body["status"], "suspended");
    assert_eq!(body["reason"], "certificate_hold");
    assert_eq!(body["serial"], sign.serial.as_str(), "serials are answered normalised");
    assert_eq!(body["since"], "2026-11-20T14:00:00.000+09:00");
    // Not listed: good, as on a CRL.
    let (_, unlisted) = app.get("/v1/status/jpki-auth/00ff", &app.validator).await;
    assert_eq!((unlisted["status"].as_str(), unlisted["since"].is_null()), (Some("good"), true));
}

async fn bad_status_queries(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app.get("/v1/status/jpki-other/00ff", &app.validator).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("issuer_not_found")));
    for serial in ["xyz", "abc", &"ab".repeat(21)] {
        let (status, body) = app.get(&format!("/v1/status/jpki-auth/{serial}"), &app.validator).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed")),
            "{serial}"
        );
    }
    // Not UTF-8 once percent-decoded: the same problem+json as any other bad serial.
    let (status, body) = app.get("/v1/status/jpki-auth/%FF", &app.validator).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed")));
    assert_eq!(body["errors"][0]["field"], "serial", "{body}");
    for token in [&app.operator, &app.clerk, &app.supervisor] {
        assert_eq!(app.get("/v1/status/jpki-auth/00ff", token).await.0, StatusCode::FORBIDDEN);
    }
    assert_eq!(app.get("/v1/status/jpki-auth/00ff", "").await.0, StatusCode::UNAUTHORIZED);
}

async fn health_docs_and_unknown_routes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let get = |path: &'static str| {
        let client = app.client.clone();
        let url = format!("{}{path}", app.base);
        async move { client.get(url).send().await.unwrap() }
    };
    assert_eq!(get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(get("/readyz").await.status(), StatusCode::OK);
    let doc: serde_json::Value = get("/openapi.json").await.json().await.unwrap();
    for path in [
        "/v1/suspensions",
        "/v1/suspensions/{id}",
        "/v1/suspensions/{id}/release",
        "/v1/status/{issuer}/{serial}",
        "/v1/rules/now",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing from the OpenAPI document");
    }
    assert!(doc["components"]["schemas"]["SuspensionReceipt"].is_object());
    let docs = get("/docs").await;
    assert_eq!(docs.status(), StatusCode::OK);
    let html = docs.text().await.unwrap();
    assert!(html.contains("/openapi.json") && !html.contains("https://"), "the docs page must be self-contained");
    let (status, body) = TestApp::read(get("/v2/nothing").await).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    let (status, _) = TestApp::read(get("/v1/suspensions").await).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let resp = get("/healthz").await;
    assert!(resp.headers().get("x-request-id").is_some(), "every response carries its request id");
}

/// Plain single queries skip the router; written any other way they take it.
/// Both ways must answer alike, count under the same route, and refuse alike.
async fn single_queries_answer_alike_whichever_way_they_take(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let holder = app.card_holder(0);
    app.suspend("k", &TestApp::report(holder, "card")).await;
    let without_as_of = |mut body: serde_json::Value| {
        body.as_object_mut().unwrap().remove("as_of").expect("every answer carries as_of");
        body
    };
    let mut asked = 0;
    for certificate in [&holder.card[0], &app.card_holder(1).card[0]] {
        let (issuer, serial) = (certificate.issuer.to_string(), certificate.serial.as_str().to_owned());
        let plain = format!("/v1/status/{issuer}/{serial}");
        // Percent-encoded letters read the same once decoded, and are not the plain form.
        let encoded =
            format!("/v1/status/{}/%{:02X}{}", issuer.replace('-', "%2D"), serial.as_bytes()[0], &serial[1..]);
        let (plain_status, plain_body) = app.get(&plain, &app.validator).await;
        let (encoded_status, encoded_body) = app.get(&encoded, &app.validator).await;
        assert_eq!(plain_status, StatusCode::OK, "{plain_body}");
        assert_eq!(encoded_status, plain_status, "{encoded}");
        assert_eq!(without_as_of(encoded_body), without_as_of(plain_body), "{plain} and {encoded}");
        for token in ["", app.clerk.as_str()] {
            assert_eq!(app.get(&plain, token).await.0, app.get(&encoded, token).await.0, "{plain} as {token:?}");
        }
        asked += 2;
    }
    let (status, body) = app.get("/v1/status/jpki-auth/00ff/", &app.validator).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found")),
        "a trailing slash is no route"
    );
    let posted = app.client.post(format!("{}/v1/status/jpki-auth/00ff", app.base)).send().await.unwrap();
    let (status, body) = TestApp::read(posted).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed")));
    let head = app.client.head(format!("{}/v1/status/jpki-auth/00ff", app.base)).bearer_auth(&app.validator);
    assert_eq!(head.send().await.unwrap().status(), StatusCode::OK, "HEAD is answered as GET is");

    let metrics = app.client.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
    let counted = format!(
        r#"hotline_http_requests_total{{method="GET",route="/v1/status/{{issuer}}/{{serial}}",status="200"}} {asked}"#
    );
    assert!(metrics.contains(&counted), "missing {counted} in:\n{metrics}");
}

both_backends!(
    status_answers_with_crl_semantics,
    bad_status_queries,
    single_queries_answer_alike_whichever_way_they_take,
    health_docs_and_unknown_routes
);
