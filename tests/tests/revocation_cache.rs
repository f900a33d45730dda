//! The validator status service with the revocation cache, end to end: many
//! instances sharing one Redis and one database, and every fault that could
//! tempt a cache into saying "good". Each fault test runs its own Redis.

use std::time::Duration;

use hotline_testkit::{Backend, RedisServer, TcpProxy, TestApp, TestCache, TestOptions, unique_prefix};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn redis(server: &RedisServer, prefix: &str) -> TestOptions {
    TestOptions { cache: TestCache::Redis { url: server.url(), prefix: prefix.into() }, ..TestOptions::default() }
}

/// Suspends a card holder through `app`; returns (issuer, serial, kind) of its certificates and the suspension id.
async fn suspend_card(app: &TestApp, holder: usize) -> (String, Vec<(String, String, String)>) {
    let (status, body) = app.suspend(&format!("s{holder}"), &TestApp::report(app.card_holder(holder), "card")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let certs = body["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap().to_owned();
            (s("issuer"), s("serial"), s("kind"))
        })
        .collect();
    (body["id"].as_str().unwrap().to_owned(), certs)
}

async fn status(app: &TestApp, issuer: &str, serial: &str) -> (StatusCode, Value) {
    app.get(&format!("/v1/status/{issuer}/{serial}"), &app.validator).await
}

async fn suspended_through_one_instance_reads_suspended_through_another(backend: Backend) {
    let server = RedisServer::start();
    let prefix = unique_prefix();
    let a = TestApp::spawn_with(backend, redis(&server, &prefix)).await;
    let b = a.instance(redis(&server, &prefix)).await;
    b.wait_for_cache().await;
    let (id, certs) = suspend_card(&a, 0).await;
    let from_cache = b.answers_from("cache");
    for (issuer, serial, _) in &certs {
        let (code, body) = status(&b, issuer, serial).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(body["status"], "suspended", "{body}");
        assert!(body["as_of"].as_str().unwrap().ends_with("+09:00"));
    }
    assert_eq!(b.answers_from("cache"), from_cache + 2, "instance B answered from the shared cache");
    let (code, _) = a
        .post(&format!("/v1/suspensions/{id}/release"), &a.clerk, Some("r"), &json!({"verified_with": "passport"}))
        .await;
    assert_eq!(code, StatusCode::OK);
    for (issuer, serial, kind) in &certs {
        let expected = if kind == "signature" { "revoked" } else { "good" };
        assert_eq!(status(&b, issuer, serial).await.1["status"], expected, "{kind}");
    }
}

async fn with_redis_down_suspensions_succeed_and_answers_come_from_the_store(backend: Backend) {
    let mut server = RedisServer::start();
    let app = TestApp::spawn_with(backend, redis(&server, "hl")).await;
    app.wait_for_cache().await;
    server.kill();
    let (_, certs) = suspend_card(&app, 0).await;
    let from_store = app.answers_from("store");
    for (issuer, serial, _) in &certs {
        assert_eq!(status(&app, issuer, serial).await.1["status"], "suspended");
    }
    let good = &app.card_holder(1).card[0];
    assert_eq!(status(&app, &good.issuer, good.serial.as_str()).await.1["status"], "good");
    assert_eq!(app.answers_from("store"), from_store + 3, "answers came from the store while Redis was down");
    // Redis comes back empty: the cache is rebuilt and answers again, correctly.
    server.restart();
    app.wait_for_cache().await;
    let from_cache = app.answers_from("cache");
    for (issuer, serial, _) in &certs {
        assert_eq!(status(&app, issuer, serial).await.1["status"], "suspended");
    }
    assert_eq!(app.answers_from("cache"), from_cache + 2);
}

async fn a_stale_or_missing_marker_sends_readers_to_the_store(backend: Backend) {
    let server = RedisServer::start();
    let mut options = redis(&server, "hl");
    options.sync_interval = None;
    options.freshness_bound = Duration::from_millis(300);
    let app = TestApp::spawn_with(backend, options).await;
    app.status.sync.step().await.unwrap();
    let (_, certs) = suspend_card(&app, 0).await;
    let (issuer, serial, _) = &certs[0];
    // Fresh: the cache answers.
    let from_cache = app.answers_from("cache");
    assert_eq!(status(&app, issuer, serial).await.1["status"], "suspended");
    assert_eq!(app.answers_from("cache"), from_cache + 1);
    // Stale (nobody confirms the marker): the store answers, still correctly.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let from_store = app.answers_from("store");
    assert_eq!(status(&app, issuer, serial).await.1["status"], "suspended");
    assert_eq!(app.answers_from("store"), from_store + 1);
    // Missing: the marker is deleted behind the service's back; entries alone are never trusted.
    let client = redis_client(&server).await;
    let mut conn = client;
    let _: () = redis_cmd(&mut conn, &["DEL", "hl:marker"]).await;
    app.status.sync.follow().await.unwrap();
    let from_store = app.answers_from("store");
    assert_eq!(status(&app, issuer, serial).await.1["status"], "suspended");
    assert_eq!(app.answers_from("store"), from_store + 1);
    // And a full step rebuilds it.
    app.status.sync.step().await.unwrap();
    let from_cache = app.answers_from("cache");
    assert_eq!(status(&app, issuer, serial).await.1["status"], "suspended");
    assert_eq!(app.answers_from("cache"), from_cache + 1);
}

/// Polls (up to 2 s) until the status is `want`; returns the last status seen.
/// A change reaches other instances' near-caches by pub/sub: soon, not instantly.
async fn eventually(app: &TestApp, issuer: &str, serial: &str, want: &str) -> String {
    let mut seen = String::new();
    for _ in 0..100 {
        seen = status(app, issuer, serial).await.1["status"].as_str().unwrap_or_default().to_owned();
        if seen == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    seen
}

async fn redis_client(server: &RedisServer) -> tokio::net::TcpStream {
    tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await.unwrap()
}

/// Sends one command in RESP and reads (and ignores) one reply line.
async fn redis_cmd(conn: &mut tokio::net::TcpStream, args: &[&str]) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut msg = format!("*{}\r\n", args.len());
    for a in args {
        msg.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    conn.write_all(msg.as_bytes()).await.unwrap();
    let mut buf = [0u8; 64];
    let n = conn.read(&mut buf).await.unwrap();
    assert!(n > 0 && buf[0] != b'-', "redis refused {args:?}");
}

async fn with_redis_and_the_database_unreachable_the_answer_is_503(backend: Backend) {
    assert_eq!(backend, Backend::Postgres, "the database is cut with a TCP proxy");
    let mut server = RedisServer::start();
    let app = TestApp::spawn_with(backend, redis(&server, "hl")).await;
    let (_, certs) = suspend_card(&app, 0).await;
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let url = app.db.url.replace("127.0.0.1:5432", &proxy.addr.to_string());
    let mut options = redis(&server, "hl");
    options.database_url = Some(url);
    let b = app.instance(options).await;
    b.wait_for_cache().await;
    assert_eq!(status(&b, &certs[0].0, &certs[0].1).await.1["status"], "suspended");
    server.kill();
    proxy.cut();
    for (issuer, serial, _) in &certs {
        let (code, body) = status(&b, issuer, serial).await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["code"], "status_unavailable");
    }
    let good = &app.card_holder(1).card[0];
    let (code, _) = status(&b, &good.issuer, good.serial.as_str()).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "never good by default");
    assert!(b.answers_from("unavailable") >= 3);
}

async fn a_failed_cache_write_after_commit_is_repaired_by_the_background_sync(backend: Backend) {
    let server = RedisServer::start();
    let prefix = unique_prefix();
    let b = TestApp::spawn_with(backend, redis(&server, &prefix)).await;
    b.wait_for_cache().await;
    // Instance A cannot reach Redis: its cache update after each commit fails.
    let dead = TestOptions {
        cache: TestCache::Redis { url: "redis://127.0.0.1:1".into(), prefix: prefix.clone() },
        sync_interval: None,
        ..TestOptions::default()
    };
    let a = b.instance(dead).await;
    let (_, certs) = suspend_card(&a, 0).await;
    assert!(a.metrics.render().contains("hotline_cache_write_failures_total 1"), "{}", a.metrics.render());
    // B's background sync applies the change; B then answers from the cache.
    for _ in 0..100 {
        let marker = b.status.cache.marker().await.unwrap().unwrap();
        if marker.position >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let from_cache = b.answers_from("cache");
    for (issuer, serial, _) in &certs {
        assert_eq!(status(&b, issuer, serial).await.1["status"], "suspended");
    }
    assert_eq!(b.answers_from("cache"), from_cache + 2);
}

async fn batch_status_queries(backend: Backend) {
    let app = TestApp::spawn_with(backend, TestOptions::shared_redis()).await;
    app.wait_for_cache().await;
    let (_, certs) = suspend_card(&app, 0).await;
    let mut asked: Vec<Value> = certs.iter().map(|(i, s, _)| json!({"issuer": i, "serial": s})).collect();
    for h in 1..5 {
        for c in &app.card_holder(h).card {
            asked.push(json!({"issuer": c.issuer, "serial": c.serial.as_str()}));
        }
    }
    while asked.len() < 1000 {
        asked.push(json!({"issuer": "jpki-auth", "serial": format!("{:06x}", asked.len())}));
    }
    let (code, body) = app.post("/v1/status", &app.validator, None, &json!({"certificates": asked})).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 1000);
    assert_eq!((results[0]["status"].as_str(), results[1]["status"].as_str()), (Some("suspended"), Some("suspended")));
    assert!(results[2..].iter().all(|r| r["status"] == "good"));
    assert_eq!(results[0]["serial"], certs[0].1.as_str(), "results come in the order asked");
    assert!(body["as_of"].is_string());

    let mut too_many = asked.clone();
    too_many.push(json!({"issuer": "jpki-auth", "serial": "00"}));
    let (code, body) = app.post("/v1/status", &app.validator, None, &json!({"certificates": too_many})).await;
    assert_eq!((code, body["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("batch_too_large")));
    let bad = json!({"certificates": [{"issuer": "jpki-x", "serial": "00"}, {"issuer": "jpki-auth", "serial": "0g"}, {"issuer": "jpki-auth"}]});
    let (code, body) = app.post("/v1/status", &app.validator, None, &bad).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["certificates[0].issuer", "certificates[1].serial", "certificates[2].serial"]);
    let (code, _) = app.post("/v1/status", &app.operator, None, &json!({"certificates": []})).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (code, body) = app.post("/v1/status", &app.validator, None, &json!({"certificates": []})).await;
    assert_eq!((code, body["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_failed")));
}

async fn the_embedded_in_process_cache_answers_too(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.wait_for_cache().await;
    let (_, certs) = suspend_card(&app, 0).await;
    let from_cache = app.answers_from("cache");
    assert_eq!(status(&app, &certs[0].0, &certs[0].1).await.1["status"], "suspended");
    assert_eq!(app.answers_from("cache"), from_cache + 1);
}

async fn with_near_caches_a_suspension_reaches_every_instance_by_pub_sub(backend: Backend) {
    let server = RedisServer::start();
    let prefix = unique_prefix();
    let mut options = redis(&server, &prefix);
    options.near_cache = true;
    let a = TestApp::spawn_with(backend, options.clone()).await;
    // B polls the store only once a minute: only a poke can bring it the change in time.
    options.sync_interval = Some(Duration::from_secs(60));
    options.freshness_bound = Duration::from_secs(30);
    let b = a.instance(options).await;
    b.wait_for_cache().await;
    // Give B's subscriber a moment to be subscribed before the poke is sent.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, certs) = suspend_card(&a, 0).await;
    let (issuer, serial, _) = &certs[0];
    assert_eq!(eventually(&b, issuer, serial, "suspended").await, "suspended");
    assert!(b.answers_from("near_cache") > 0);
    assert_eq!(b.answers_from("store"), 0, "B never needed the store");
}

async fn a_near_cache_that_lost_its_feed_stops_answering(backend: Backend) {
    assert_eq!(backend, Backend::Postgres, "the database is cut with a TCP proxy");
    let server = RedisServer::start();
    let prefix = unique_prefix();
    let a = TestApp::spawn_with(backend, redis(&server, &prefix)).await;
    a.wait_for_cache().await;
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let mut options = redis(&server, &prefix);
    options.near_cache = true;
    options.database_url = Some(a.db.url.replace("127.0.0.1:5432", &proxy.addr.to_string()));
    options.freshness_bound = Duration::from_millis(500);
    let b = a.instance(options).await;
    b.wait_for_cache().await;
    let (_, before) = suspend_card(&a, 0).await;
    assert_eq!(eventually(&b, &before[0].0, &before[0].1, "suspended").await, "suspended");
    // B's near-cache can no longer read the store; A keeps the shared cache fresh.
    proxy.cut();
    let (_, after) = suspend_card(&a, 1).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (near, shared) = (b.answers_from("near_cache"), b.answers_from("cache"));
    for (issuer, serial, _) in before.iter().chain(&after) {
        assert_eq!(status(&b, issuer, serial).await.1["status"], "suspended");
    }
    assert_eq!(b.answers_from("near_cache"), near, "a near-cache past its bound must not answer");
    assert_eq!(b.answers_from("cache"), shared + 4, "the shared cache answered instead");
}

/// The `as_of` of an answer, as an instant.
fn as_of(body: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(body["as_of"].as_str().unwrap()).unwrap().to_utc()
}

async fn validators_are_answered_through_a_database_outage_as_of_the_last_confirmation(backend: Backend) {
    assert_eq!(backend, Backend::Postgres, "the database is cut with a TCP proxy");
    let server = RedisServer::start();
    let prefix = unique_prefix();
    let a = TestApp::spawn_with(backend, redis(&server, &prefix)).await;
    let (_, held) = suspend_card(&a, 0).await;
    let good = a.card_holder(1).card[0].clone();
    let good = (good.issuer, good.serial.as_str().to_owned());
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let through_proxy = a.db.url.replace("127.0.0.1:5432", &proxy.addr.to_string());
    let outage_options = |near_cache| TestOptions {
        database_url: Some(through_proxy.clone()),
        near_cache,
        freshness_bound: Duration::from_millis(300),
        max_staleness: Duration::from_millis(2_500),
        ..redis(&server, &prefix)
    };
    // One instance with a near-cache, one reading the shared cache only; A itself stops its sync.
    let (near, shared) = (a.instance(outage_options(true)).await, a.instance(outage_options(false)).await);
    for app in [&near, &shared] {
        app.wait_for_cache().await;
        // Each has checked the validator's token before: a validator that asks often is remembered.
        assert_eq!(status(app, &held[0].0, &held[0].1).await.1["status"], "suspended");
    }
    drop(a);
    let cut_at = chrono::Utc::now();
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Each answers from the freshest cache it has (the near-cache, or the shared cache if that was confirmed later).
    let stale = |app: &TestApp| app.answers_from("near_cache_stale") + app.answers_from("cache_stale");
    for app in [&near, &shared] {
        let before = stale(app);
        for ((issuer, serial), want) in [((&held[0].0, &held[0].1), "suspended"), ((&good.0, &good.1), "good")] {
            let (code, body) = status(app, issuer, serial).await;
            assert_eq!((code, body["status"].as_str()), (StatusCode::OK, Some(want)), "{body}");
            assert!(as_of(&body) <= cut_at, "never fresher than the last confirmation: {body}");
            assert!(as_of(&body) > cut_at - chrono::Duration::seconds(2), "the last confirmation, not older: {body}");
        }
        assert_eq!(stale(app), before + 2, "{}", app.metrics.render());
    }
    assert_eq!(shared.answers_from("near_cache_stale"), 0, "an instance without a near-cache reads the shared one");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    for app in [&near, &shared] {
        let (code, body) = status(app, &held[0].0, &held[0].1).await;
        assert_eq!(
            (code, body["code"].as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("status_unavailable")),
            "past the maximum staleness: {body}"
        );
    }
    proxy.mend();
    for app in [&near, &shared] {
        let mut last = Value::Null;
        for _ in 0..100 {
            let (code, body) = status(app, &held[0].0, &held[0].1).await;
            last = body;
            if code == StatusCode::OK && as_of(&last) > cut_at {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(last["status"], "suspended", "fresh again once the database is back: {last}");
        assert!(as_of(&last) > cut_at, "{last}");
    }
}

mod postgres {
    use super::*;

    macro_rules! on_postgres {
        ($($name:ident),+) => {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                super::$name(Backend::Postgres).await
            }
        )+};
    }

    on_postgres!(
        suspended_through_one_instance_reads_suspended_through_another,
        with_redis_down_suspensions_succeed_and_answers_come_from_the_store,
        a_stale_or_missing_marker_sends_readers_to_the_store,
        with_redis_and_the_database_unreachable_the_answer_is_503,
        a_failed_cache_write_after_commit_is_repaired_by_the_background_sync,
        batch_status_queries,
        the_embedded_in_process_cache_answers_too,
        with_near_caches_a_suspension_reaches_every_instance_by_pub_sub,
        a_near_cache_that_lost_its_feed_stops_answering,
        validators_are_answered_through_a_database_outage_as_of_the_last_confirmation
    );
}

mod sqlite {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_embedded_in_process_cache_answers_too() {
        super::the_embedded_in_process_cache_answers_too(Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn with_redis_down_suspensions_succeed_and_answers_come_from_the_store() {
        super::with_redis_down_suspensions_succeed_and_answers_come_from_the_store(Backend::Sqlite).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn batch_status_queries() {
        super::batch_status_queries(Backend::Sqlite).await
    }
}
