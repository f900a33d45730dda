//! The binary's CA sync: `hotline serve` with no CA configured delivers to
//! ca-sim in its own process, and `hotline outbox` shows and re-queues dead
//! letters.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod support;

use hotline_testkit::{Backend, TestDb};
use serde_json::Value;
use support::{hotline, run};

#[tokio::test]
async fn the_embedded_default_delivers_suspensions_to_an_in_process_ca() {
    let dir = tempfile::tempdir().unwrap();
    let server = support::embedded(dir.path());
    let curl = server.curl_line().await;
    let operator = server.wait_for(|l| l.trim_start().strip_prefix("operator ").map(|t| t.trim().to_owned())).await;
    let addr = server.addr().await;
    server.wait_for(|l| l.contains("running the development CA (ca-sim) in this process").then_some(())).await;
    let out = support::paste(&curl).await;
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = answer["id"].as_str().unwrap();
    let detail = support::wait_ca_confirmed(&addr, &operator, id).await;
    let client = reqwest::Client::new();
    assert!(detail["ca_sync_at"].as_str().unwrap().ends_with("+09:00"));
    let metrics = client.get(format!("http://{addr}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("hotline_ca_requests_total{outcome=\"applied\"} 2"), "{metrics}");
    let (code, _, _) = server.terminate().await;
    assert_eq!(code, 0);
    // The embedded CA keeps its issuing keys beside the database.
    assert!(dir.path().join("hotline-data/ca-sim/jpki-sign.pem").exists());
}

#[tokio::test]
async fn outbox_show_and_retry_dead_requeue_dead_letters_with_an_audit_record() {
    let db = TestDb::new(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let mut seed = hotline(dir.path());
    seed.args(["seed", "--holders", "2"]).env("HOTLINE_DATABASE_URL", &db.url);
    let (code, out, err) = run(seed).await;
    assert_eq!(code, 0, "{out}{err}");
    let store = db.store().await;
    sqlx::query(
        "INSERT INTO outbox (event_id, certificate_id, issuer, serial, action, reason, created_at, next_attempt_at, state, attempts, last_error)
         SELECT 'dead-1', id, issuer, serial, 'hold', 'certificate_hold', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z', 'dead', 20, 'gave up'
           FROM certificates LIMIT 1",
    )
    .execute(store.pool())
    .await
    .unwrap();

    let mut show = hotline(dir.path());
    show.args(["outbox", "show"]).env("HOTLINE_DATABASE_URL", &db.url);
    let (code, out, _) = run(show).await;
    assert_eq!(code, 0);
    assert!(out.contains("pending: 0  dead: 1"), "{out}");
    assert!(out.contains("dead-1") && out.contains("gave up"), "{out}");

    let mut retry = hotline(dir.path());
    retry.args(["outbox", "retry-dead"]).env("HOTLINE_DATABASE_URL", &db.url);
    let (code, out, _) = run(retry).await;
    assert_eq!((code, out.trim()), (0, "re-queued 1 dead-lettered events"));
    let state: (String, i64) = sqlx::query_as("SELECT state, attempts FROM outbox WHERE event_id = 'dead-1'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(state, ("pending".to_owned(), 0));
    let audited: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'outbox.dead_letters_requeued'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(audited, 1);
}

#[tokio::test]
async fn a_worker_without_a_ca_url_is_refused_at_start() {
    let db = TestDb::new(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = hotline(dir.path());
    cmd.args(["worker"]).env("HOTLINE_DATABASE_URL", &db.url);
    let (code, _, err) = run(cmd).await;
    assert_eq!(code, 1);
    assert!(err.contains("HOTLINE_CA_URL is required"), "{err}");
}

#[tokio::test]
async fn a_worker_on_its_own_serves_the_apis_probes_and_drains_on_sigterm() {
    let db = TestDb::new(Backend::Sqlite).await;
    let ca = hotline_testkit::CaSimServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = hotline(dir.path());
    cmd.args(["worker", "--listen", "127.0.0.1:0"])
        .env("HOTLINE_DATABASE_URL", &db.url)
        .env("HOTLINE_CA_URL", ca.url());
    let server = support::Server::start(cmd);
    let base = format!("http://{}", server.logged_addr("worker metrics and health").await);
    let client = reqwest::Client::new();
    let healthz = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(healthz.status(), 200);
    assert_eq!(healthz.json::<Value>().await.unwrap()["status"], "ok");
    let readyz = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(readyz.status(), 200, "the database answers");
    let metrics = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let content_type = metrics.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(content_type, hotline_api::METRICS_CONTENT_TYPE, "the same metrics content type as the API's");
    let text = metrics.text().await.unwrap();
    assert!(text.contains("hotline_ca_requests_total") || text.contains("hotline_outbox_pending"), "{text}");
    let (code, _, stderr) = server.terminate().await;
    assert_eq!(code, 0, "SIGTERM is a clean exit: {}", stderr.join("\n"));
    let said = |message: &str| stderr.iter().any(|l| l.contains(message));
    assert!(said("shutting down") && said("CA sync worker stopped") && said("\"stopped\""), "{}", stderr.join("\n"));
}
