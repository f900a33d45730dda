//! Commits whose outcome the service did not see (invariant 1): a connection
//! lost while `COMMIT` runs leaves the suspension in doubt, and the service
//! neither reports it done nor failed. It tries the whole transaction again
//! with the same Idempotency-Key: a commit that happened is answered as the
//! suspension it is (from its saved answer), one that did not is committed
//! afresh. Either way the operator sees one `201` and the registry holds one
//! suspension, its outbox events and its audit record.
//!
//! `COMMIT` is made slow on purpose (a deferred trigger that sleeps), so the
//! test can lose the connection while it runs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::time::Duration;

use hotline_testkit::{Backend, TcpProxy, TestApp, TestOptions};
use reqwest::StatusCode;
use serde_json::Value;

/// How long each `COMMIT` of a suspension takes in these tests.
const SLOW_COMMIT: &str = "1.5";

/// Makes every `COMMIT` that inserted a suspension sleep first, while its locks are held.
async fn slow_commits(app: &TestApp) {
    let pool = app.store.pool();
    let function = format!(
        "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN PERFORM pg_sleep({SLOW_COMMIT}); RETURN NULL; END $$"
    );
    sqlx::query(&function).execute(pool).await.unwrap();
    sqlx::query(
        "CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON suspensions DEFERRABLE INITIALLY DEFERRED \
         FOR EACH ROW EXECUTE FUNCTION slow_commit()",
    )
    .execute(pool)
    .await
    .unwrap();
}

/// Waits until a backend of this database sleeps in the slow commit; its process id.
async fn committing_backend(app: &TestApp) -> i32 {
    for _ in 0..100 {
        let pid: Option<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event = 'PgSleep'",
        )
        .fetch_optional(app.store.pool())
        .await
        .unwrap();
        if let Some(pid) = pid {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no suspension ever reached its COMMIT");
}

/// Sends a suspension from `app` in the background; its answer with its `Idempotent-Replayed` header.
fn suspend_in_background(app: &TestApp, key: &str) -> tokio::task::JoinHandle<(StatusCode, Option<String>, Value)> {
    let request = app
        .client
        .post(format!("{}/v1/suspensions", app.base))
        .bearer_auth(&app.operator)
        .header("Idempotency-Key", key)
        .json(&TestApp::report(app.card_holder(0), "card"));
    tokio::spawn(async move {
        let response = request.send().await.unwrap();
        let replayed = response.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap().to_owned());
        let (code, body) = TestApp::read(response).await;
        (code, replayed, body)
    })
}

/// One suspension, its two outbox events and its one audit record: nothing twice, nothing missing.
async fn exactly_one_suspension(app: &TestApp) {
    app.wait_sealed().await;
    let count =
        |sql: &'static str| async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(app.store.pool()).await.unwrap() };
    assert_eq!(count("SELECT COUNT(*) FROM suspensions").await, 1);
    assert_eq!(count("SELECT COUNT(*) FROM outbox").await, 2, "one event per certificate of the card");
    assert_eq!(count("SELECT COUNT(*) FROM audit_log WHERE action = 'suspension.created'").await, 1);
    assert_eq!(count("SELECT COUNT(*) FROM certificates WHERE status = 'suspended'").await, 2);
}

async fn a_commit_that_happened_though_its_connection_was_lost_is_answered_as_the_suspension() {
    let direct = TestApp::spawn(Backend::Postgres).await;
    slow_commits(&direct).await;
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let url = direct.db.url.replace("127.0.0.1:5432", &proxy.addr.to_string());
    let app = direct.instance(TestOptions { database_url: Some(url), ..TestOptions::default() }).await;
    let pending = suspend_in_background(&app, "in-doubt-1");
    committing_backend(&direct).await;
    // The connection goes while COMMIT runs; the server goes on and commits.
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(200)).await;
    proxy.mend();
    let (code, replayed, receipt) = pending.await.unwrap();
    assert_eq!(code, StatusCode::CREATED, "{receipt}");
    assert_eq!(replayed, None, "the operator's own suspension, not a replay of someone else's");
    assert!(receipt["reference"].is_string(), "{receipt}");
    exactly_one_suspension(&direct).await;
    let metrics = app.metrics.render();
    assert!(
        metrics.contains(r#"hotline_write_outages_total{write="suspension",outage="connection_lost"}"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"outcome="accepted"} 1"#), "{metrics}");
    // A retry by the operator is a replay of the same answer.
    let (code, again) = app.suspend("in-doubt-1", &TestApp::report(app.card_holder(0), "card")).await;
    assert_eq!((code, &again["reference"]), (StatusCode::CREATED, &receipt["reference"]));
}

async fn a_commit_that_did_not_happen_because_its_server_ended_it_is_committed_by_the_retry() {
    let app = TestApp::spawn(Backend::Postgres).await;
    slow_commits(&app).await;
    let pending = suspend_in_background(&app, "in-doubt-2");
    let pid = committing_backend(&app).await;
    // The server ends the session while COMMIT runs (as a primary shutting down would): nothing commits.
    let ended: bool =
        sqlx::query_scalar("SELECT pg_terminate_backend($1)").bind(pid).fetch_one(app.store.pool()).await.unwrap();
    assert!(ended);
    let (code, replayed, receipt) = pending.await.unwrap();
    assert_eq!(code, StatusCode::CREATED, "{receipt}");
    assert_eq!(replayed, None);
    exactly_one_suspension(&app).await;
    let metrics = app.metrics.render();
    assert!(
        metrics.contains(r#"hotline_write_outages_total{write="suspension",outage="shutting_down"}"#)
            || metrics.contains(r#"hotline_write_outages_total{write="suspension",outage="connection_lost"}"#),
        "{metrics}"
    );
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_commit_that_happened_though_its_connection_was_lost_is_answered_as_the_suspension() {
        super::a_commit_that_happened_though_its_connection_was_lost_is_answered_as_the_suspension().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_commit_that_did_not_happen_because_its_server_ended_it_is_committed_by_the_retry() {
        super::a_commit_that_did_not_happen_because_its_server_ended_it_is_committed_by_the_retry().await;
    }
}
