//! Faults answered the way clients and on-call expect: a database that
//! cannot be reached, or hangs, past the write deadline is `503
//! database_unavailable` with `Retry-After` (counted apart from unexpected
//! errors, nothing stored), one back within it is invisible, and the service
//! recovers without a restart; `/readyz` answers within its bound while the
//! database hangs; a client that stalls in its body gets `408`, counted as a
//! client error; a header the API reads once, sent twice, is `400`; instants
//! carry milliseconds.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::time::Duration;

use hotline_testkit::{Backend, PostgresServer, TcpProxy, TestApp, TestDb, TestOptions, both_backends};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An instance reaching its database through a proxy the test can cut or stall.
async fn behind_a_proxy(options: TestOptions) -> (TestApp, TcpProxy, TestApp) {
    let direct = TestApp::spawn(Backend::Postgres).await;
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let options =
        TestOptions { database_url: Some(direct.db.url.replace("127.0.0.1:5432", &proxy.addr.to_string())), ..options };
    let app = direct.instance(options).await;
    (app, proxy, direct)
}

fn retry_after(response: &reqwest::Response) -> Option<String> {
    response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned())
}

/// An instance behind a proxy with a one-second write deadline, its operator token already seen
/// (so the token check does not decide the answers), and a card report for holder `holder`.
async fn writing_behind_a_proxy(holder: usize) -> (TestApp, TcpProxy, TestApp, Value) {
    let options = TestOptions { write_deadline: Duration::from_millis(1_000), ..TestOptions::default() };
    let (app, proxy, direct) = behind_a_proxy(options).await;
    let body = TestApp::report(app.card_holder(holder), "card");
    let (code, _) = app.get("/v1/rules/now", &app.operator).await;
    assert_eq!(code, StatusCode::OK);
    (app, proxy, direct, body)
}

async fn postgres_cut_off_is_503_with_retry_after_and_stores_nothing() {
    let (app, proxy, direct, body) = writing_behind_a_proxy(0).await;
    let before = direct.counts().await;
    proxy.cut();
    let response = app
        .client
        .post(format!("{}/v1/suspensions", app.base))
        .bearer_auth(&app.operator)
        .header("Idempotency-Key", "outage-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(retry_after(&response).as_deref(), Some("2"));
    let (code, problem) = TestApp::read(response).await;
    assert_eq!(
        (code, problem["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("database_unavailable")),
        "{problem}"
    );
    assert_eq!(direct.counts().await, before, "nothing stored");
    let metrics = app.metrics.render();
    assert!(metrics.contains(r#"hotline_unavailable_answers_total{dependency="database"} 1"#), "{metrics}");
    // The database back: the same request, the same key, is served without a restart.
    proxy.mend();
    let mut answered = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..50 {
        answered = app.suspend("outage-1", &body).await.0;
        if answered == StatusCode::CREATED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answered, StatusCode::CREATED);
}

async fn a_postgres_killed_and_restarted_within_the_write_deadline_is_invisible_to_the_operator() {
    let mut server = PostgresServer::start();
    let app = TestApp::spawn_on(TestDb::postgres_at(&server.url()).await, TestOptions::default()).await;
    let body = TestApp::report(app.card_holder(1), "card");
    let (code, _) = app.get("/v1/rules/now", &app.operator).await;
    assert_eq!(code, StatusCode::OK);
    server.kill();
    let request = app.client.post(format!("{}/v1/suspensions", app.base)).bearer_auth(&app.operator);
    let pending = tokio::spawn(request.header("Idempotency-Key", "crash-1").json(&body).send());
    // The request keeps trying while the server is down; back within the write deadline, it commits.
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.restart();
    let (code, receipt) = TestApp::read(pending.await.unwrap().unwrap()).await;
    assert_eq!(code, StatusCode::CREATED, "{receipt}");
    let suspensions = app.counts().await.into_iter().find(|(t, _)| *t == "suspensions").unwrap().1;
    assert_eq!(suspensions, 1, "one suspension, whatever the outage");
    let metrics = app.metrics.render();
    assert!(!metrics.contains(r#"hotline_unavailable_answers_total{dependency="database"}"#), "no 503: {metrics}");
}

async fn a_database_that_hangs_is_answered_503_within_the_write_deadline_and_then_recovers() {
    let (app, proxy, direct, body) = writing_behind_a_proxy(2).await;
    proxy.stall();
    // The client's bound only keeps a broken server from hanging the test: the answer comes well before it.
    let request = app.client.post(format!("{}/v1/suspensions", app.base)).bearer_auth(&app.operator);
    let response = request.header("Idempotency-Key", "hang-1").json(&body).timeout(Duration::from_secs(5)).send();
    let response = response.await.expect("a hung database is answered within the write deadline");
    assert_eq!(retry_after(&response).as_deref(), Some("2"));
    let (code, problem) = TestApp::read(response).await;
    assert_eq!((code, problem["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("database_unavailable")));
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("not known yet"),
        "a write cut off unanswered is in doubt, never 'nothing changed': {detail}"
    );
    proxy.unstall();
    proxy.cut();
    proxy.mend();
    let mut answered = (StatusCode::SERVICE_UNAVAILABLE, Value::Null);
    for _ in 0..50 {
        answered = app.suspend("hang-1", &body).await;
        if answered.0 != StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
    }
    assert_eq!(answered.0, StatusCode::CREATED, "{}", answered.1);
    let suspensions = direct.counts().await.into_iter().find(|(t, _)| *t == "suspensions").unwrap().1;
    assert_eq!(suspensions, 1, "the hung attempt and the one after it made one suspension");
}

async fn readiness_answers_within_its_bound_while_the_database_hangs() {
    let options = TestOptions {
        ready_timeout: Duration::from_millis(200),
        freshness_bound: Duration::from_millis(300),
        max_staleness: Duration::from_millis(1_500),
        ..TestOptions::default()
    };
    let (app, proxy, _direct) = behind_a_proxy(options).await;
    app.wait_for_cache().await;
    let (code, body) = app.get("/readyz", "").await;
    assert_eq!((code, body["database"].as_str()), (StatusCode::OK, Some("ok")), "{body}");
    proxy.stall();
    // The client's own bound only keeps a broken server from hanging the test.
    let readyz = || app.client.get(format!("{}/readyz", app.base)).timeout(Duration::from_secs(5)).send();
    let (code, body) = TestApp::read(readyz().await.expect("readyz answers within its bound")).await;
    assert_eq!(
        (code, body["database"].as_str()),
        (StatusCode::OK, Some("unreachable")),
        "still ready while the cache can answer validators: {body}"
    );
    assert!(body["validators_answered_as_of"].is_string(), "{body}");
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let (code, problem) = TestApp::read(readyz().await.expect("readyz answers within its bound")).await;
    assert_eq!(
        (code, problem["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("not_ready")),
        "past the maximum staleness: {problem}"
    );
    let healthz = app.client.get(format!("{}/healthz", app.base)).timeout(Duration::from_secs(5)).send().await;
    assert_eq!(healthz.unwrap().status(), StatusCode::OK, "liveness never asks the database");
    proxy.mend();
}

async fn a_body_that_stalls_is_408_and_counted_as_a_client_error(backend: Backend) {
    let options = TestOptions { body_timeout: Duration::from_millis(300), ..TestOptions::default() };
    let app = TestApp::spawn_with(backend, options).await;
    let mut conn = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /v1/suspensions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nIdempotency-Key: slow-1\r\n\
         Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"call_id\":",
        app.operator
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut answer)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"request_timeout\"") && answer.contains("application/problem+json"), "{answer}");
    let metrics = app.metrics.render();
    assert!(
        metrics.contains(r#"hotline_http_requests_total{method="POST",route="/v1/suspensions",status="408"} 1"#),
        "{metrics}"
    );
    assert!(!metrics.contains(r#"route="/v1/suspensions",status="5"#), "no 5xx counted: {metrics}");
    let suspensions = app.counts().await.into_iter().find(|(t, _)| *t == "suspensions").unwrap().1;
    assert_eq!(suspensions, 0);
}

async fn a_header_read_once_and_sent_twice_is_400_and_stores_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = TestApp::report(app.card_holder(0), "card").to_string();
    let before = app.counts().await;
    let send = |headers: Vec<(&'static str, String)>| {
        let mut request = app.client.post(format!("{}/v1/suspensions", app.base)).body(body.clone());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send()
    };
    let auth = format!("Bearer {}", app.operator);
    let json = ("Content-Type", "application/json".to_owned());
    for (twice, headers) in [
        (
            "idempotency-key",
            vec![
                ("Authorization", auth.clone()),
                json.clone(),
                ("Idempotency-Key", "a".into()),
                ("Idempotency-Key", "b".into()),
            ],
        ),
        (
            "authorization",
            vec![
                ("Authorization", auth.clone()),
                ("Authorization", auth.clone()),
                json.clone(),
                ("Idempotency-Key", "c".into()),
            ],
        ),
        (
            "content-type",
            vec![("Authorization", auth.clone()), json.clone(), json.clone(), ("Idempotency-Key", "d".into())],
        ),
    ] {
        let (code, problem) = TestApp::read(send(headers).await.unwrap()).await;
        assert_eq!((code, problem["code"].as_str()), (StatusCode::BAD_REQUEST, Some("header_repeated")), "{problem}");
        assert_eq!(problem["header"], twice);
    }
    assert_eq!(app.counts().await, before, "nothing stored");
}

async fn instants_carry_milliseconds(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.wait_for_cache().await;
    let (_, receipt) = app.suspend("ms-1", &TestApp::report(app.card_holder(2), "card")).await;
    let cert = &receipt["certificates"][0];
    let (_, status) = app
        .get(
            &format!("/v1/status/{}/{}", cert["issuer"].as_str().unwrap(), cert["serial"].as_str().unwrap()),
            &app.validator,
        )
        .await;
    let (_, now) = app.get("/v1/rules/now", &app.validator).await;
    let with_millis = |v: &Value| {
        let text = v.as_str().unwrap_or_default();
        let (seconds, offset) = text.split_at(text.len() - 6);
        offset == "+09:00" && seconds.len() == 23 && seconds.as_bytes()[19] == b'.'
    };
    for (what, value) in [
        ("as_of", &status["as_of"]),
        ("since", &status["since"]),
        ("decided_at", &receipt["decided_at"]),
        ("now", &now["now"]),
        ("next_change_at", &now["next_change_at"]),
    ] {
        assert!(with_millis(value), "{what} = {value} carries milliseconds");
    }
    let batch = json!({"certificates": [{"issuer": cert["issuer"], "serial": cert["serial"]}]});
    let (_, answer) = app.post("/v1/status", &app.validator, None, &batch).await;
    assert!(with_millis(&answer["as_of"]), "{answer}");
}

both_backends!(
    a_body_that_stalls_is_408_and_counted_as_a_client_error,
    a_header_read_once_and_sent_twice_is_400_and_stores_nothing,
    instants_carry_milliseconds
);

hotline_testkit::postgres_only!(
    postgres_cut_off_is_503_with_retry_after_and_stores_nothing,
    a_postgres_killed_and_restarted_within_the_write_deadline_is_invisible_to_the_operator,
    a_database_that_hangs_is_answered_503_within_the_write_deadline_and_then_recovers,
    readiness_answers_within_its_bound_while_the_database_hangs,
);
