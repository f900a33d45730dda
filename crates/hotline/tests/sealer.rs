//! The sealer in the real binary, killed mid-batch: a `hotline api` process
//! holding the sealer's lease is killed with SIGKILL while its batch is in
//! flight (an insert into the chain made slow on purpose); its transaction
//! rolls back, nobody else seals while its lease runs, another sealer takes
//! over once it lapses, and the chain verifies with every record once.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod support;

use std::time::{Duration, Instant};

use hotline_store::{Backend, Sealed, Sealer};
use hotline_testkit::TestDb;
use support::{Server, hotline};

const PII_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

async fn record_unsealed(store: &hotline_store::Store, subject: &str) {
    sqlx::query(
        "INSERT INTO audit_pending (at, actor, action, subject, details)
         VALUES ('2026-12-08T00:00:00.000000Z', 'test', 'test.recorded', $1, '{}')",
    )
    .bind(subject)
    .execute(store.pool())
    .await
    .unwrap();
}

/// Waits until a backend of the database sleeps (the sealer's batch, in the slow insert).
async fn a_batch_in_flight(store: &hotline_store::Store) {
    for _ in 0..300 {
        let sleeping: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event = 'PgSleep'",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        if sleeping > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the process never began a batch");
}

/// Waits until the chain holds `records` sealed records.
async fn sealed_records(store: &hotline_store::Store, records: i64) {
    for _ in 0..200 {
        if store.verify_audit().await.unwrap().records == records {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never {records} records sealed");
}

async fn a_sealer_killed_mid_batch_is_taken_over_within_its_lease() {
    let db = TestDb::new(Backend::Postgres).await;
    let store = db.store().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = hotline(dir.path());
    cmd.args(["api", "--listen", "127.0.0.1:0"])
        .env("HOTLINE_DATABASE_URL", &db.url)
        .env("HOTLINE_PII_KEY", PII_KEY)
        .env("HOTLINE_SEALER_LEASE_MS", "5000");
    let mut server = Server::start(cmd);
    // The process seals a first record: it holds the lease, committed.
    record_unsealed(&store, "first").await;
    sealed_records(&store, 1).await;
    // Its next batch is made slow, and it is killed in the middle of it.
    sqlx::raw_sql(
        "CREATE FUNCTION slow_seal() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(1); RETURN NULL; END $$;
         CREATE TRIGGER slow_seal BEFORE INSERT ON audit_log FOR EACH STATEMENT EXECUTE FUNCTION slow_seal();",
    )
    .execute(store.pool())
    .await
    .unwrap();
    record_unsealed(&store, "second").await;
    a_batch_in_flight(&store).await;
    server.child.kill().await.unwrap();
    let killed_at = Instant::now();
    sqlx::raw_sql("DROP TRIGGER slow_seal ON audit_log").execute(store.pool()).await.unwrap();

    // Its batch is rolled back; its lease, renewed by the batches before, runs on until it lapses.
    let takeover = Sealer::new(store.clone(), Duration::from_secs(5));
    assert_eq!(takeover.seal_batch().await.unwrap(), Sealed::NotHolder, "the killed process's lease still runs");
    assert_eq!(store.verify_audit().await.unwrap().unsealed, 1, "the killed batch sealed nothing");
    let mut sealed = Sealed::NotHolder;
    while killed_at.elapsed() < Duration::from_secs(20) {
        sealed = takeover.seal_batch().await.unwrap();
        if sealed != Sealed::NotHolder {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sealed, Sealed::Batch { records: 1, changes: 0, drained: true }, "taken over once the lease lapsed");
    let report = store.verify_audit().await.unwrap();
    assert_eq!((report.records, report.first_break, report.unsealed), (2, None, 0), "each record chained once");
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sealer_killed_mid_batch_is_taken_over_within_its_lease() {
        super::a_sealer_killed_mid_batch_is_taken_over_within_its_lease().await;
    }
}
