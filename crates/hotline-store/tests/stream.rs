//! The change stream and the audit chain, sealed after commit, on both
//! databases: a follower never skips a change that commits late, and the
//! sealer chains every committed record once, one sealer at a time.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use hotline_core::Item;
use hotline_store::{Backend, Sealed, Sealer, Store, SuspendOutcome};
use hotline_testkit::{Registry, both_backends, render_reference};
use rand::Rng;
use sqlx::Row;

/// Writers of the stream as the service's transactions write it: lock the
/// certificate's row, change it, record the change unsealed, and commit (or
/// roll back) after a random pause, so commits land out of the order their
/// rows were inserted in. Each change's `since` carries the certificate's own
/// version, to check the order the follower sees.
async fn write_changes(store: Store, certificate: i64, versions: u64, committed: Arc<AtomicU64>) {
    for version in 1..=versions {
        let mut tx = match store.backend() {
            Backend::Postgres => store.pool().begin().await.unwrap(),
            Backend::Sqlite => store.pool().begin_with("BEGIN IMMEDIATE").await.unwrap(),
        };
        let status = if version % 2 == 1 { "suspended" } else { "good" };
        let since = format!("2026-12-08T00:00:00.{version:06}Z");
        let row = sqlx::query("UPDATE certificates SET status = $1, since = $2 WHERE id = $3 RETURNING issuer, serial")
            .bind(status)
            .bind(&since)
            .bind(certificate)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        let (issuer, serial): (String, String) = (row.get("issuer"), row.get("serial"));
        sqlx::query(
            "INSERT INTO status_changes_pending (issuer, serial, status, reason, since) VALUES ($1, $2, $3, NULL, $4)",
        )
        .bind(&issuer)
        .bind(&serial)
        .bind(status)
        .bind(&since)
        .execute(&mut *tx)
        .await
        .unwrap();
        let pause = rand::rng().random_range(0..15u64);
        if store.backend() == Backend::Postgres {
            // SQLite's one writer would only make the others wait; PostgreSQL's commit late.
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        if version % 7 == 0 {
            // Rolled back: its change must never be seen, and its version is taken again.
            tx.rollback().await.unwrap();
            continue;
        }
        tx.commit().await.unwrap();
        committed.fetch_add(1, Ordering::Relaxed);
    }
}

async fn a_follower_never_skips_a_change_that_commits_late(backend: Backend) {
    let registry = Registry::new(backend, 12).await;
    let store = registry.store.clone();
    let certificates: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM certificates ORDER BY id LIMIT 8").fetch_all(store.pool()).await.unwrap();
    let committed = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> =
        certificates.iter().map(|&c| tokio::spawn(write_changes(store.clone(), c, 40, committed.clone()))).collect();
    let done = Arc::new(AtomicBool::new(false));
    let sealer = {
        let (sealer, done) = (Sealer::new(store.clone(), Duration::from_secs(5)), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                sealer.seal_all().await.unwrap();
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            sealer.seal_all().await.unwrap();
        })
    };
    // The follower reads windows all the while, from where the last one ended.
    let mut position = 0;
    let mut seen: Vec<i64> = Vec::new();
    while !(writers.iter().all(|w| w.is_finished()) && done.load(Ordering::Relaxed) && sealer.is_finished()) {
        if writers.iter().all(|w| w.is_finished()) {
            done.store(true, Ordering::Relaxed);
        }
        let window = store.status_changes_after(position, 7).await.unwrap();
        seen.extend(window.changes.iter().map(|c| c.position));
        position = window.to;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let last = store.status_changes_after(position, 1_000).await.unwrap();
    seen.extend(last.changes.iter().map(|c| c.position));
    let committed = committed.load(Ordering::Relaxed) as i64;
    assert_eq!(seen, (1..=committed).collect::<Vec<_>>(), "every committed change seen once, in position order");

    // Each certificate's changes have positions in the order of its own versions (its commits).
    let rows =
        sqlx::query("SELECT position, serial, since FROM status_changes ORDER BY position").fetch_all(store.pool());
    let mut by_serial: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in rows.await.unwrap() {
        by_serial.entry(row.get("serial")).or_default().push(row.get("since"));
    }
    for (serial, versions) in &by_serial {
        let mut sorted = versions.clone();
        sorted.sort();
        assert_eq!(versions, &sorted, "{serial}: its changes are streamed in the order they committed");
        assert_eq!(versions.len(), 40 - 40 / 7, "{serial}: rolled-back changes are not in the stream");
    }
}

async fn records_committed_while_no_sealer_runs_are_sealed_once_one_starts(backend: Backend) {
    let registry = Registry::new(backend, 12).await;
    for (i, holder) in [4, 5, 6].into_iter().enumerate() {
        let report = registry.report(holder, Item::Card, &format!("k{i}"));
        let outcome = registry.store.suspend(&report, render_reference).await.unwrap();
        assert!(matches!(outcome, SuspendOutcome::Created(_)));
    }
    let report = registry.store.verify_audit().await.unwrap();
    assert_eq!((report.records, report.unsealed, report.oldest_unsealed.is_some()), (0, 3, true));
    assert!(registry.store.status_changes_after(0, 100).await.unwrap().changes.is_empty(), "nothing in the stream yet");
    let sealer = Sealer::new(registry.store.clone(), Duration::from_secs(5));
    assert_eq!(sealer.seal_all().await.unwrap(), 6, "three cards' two certificates each");
    let report = registry.store.verify_audit().await.unwrap();
    assert_eq!((report.records, report.first_break, report.unsealed), (3, None, 0));
    assert_eq!(registry.store.status_changes_after(0, 100).await.unwrap().to, 6);
}

async fn two_sealers_never_both_seal(backend: Backend) {
    let registry = Registry::new(backend, 40).await;
    let (a, b) = (
        Arc::new(Sealer::new(registry.store.clone(), Duration::from_secs(30))),
        Arc::new(Sealer::new(registry.store.clone(), Duration::from_secs(30))),
    );
    assert!(matches!(a.seal_batch().await.unwrap(), Sealed::Batch { .. }), "the first takes the lease");
    assert_eq!(b.seal_batch().await.unwrap(), Sealed::NotHolder, "the other does not, while it holds");
    // Both trying all the while suspensions commit: only the holder ever seals.
    let stop = Arc::new(AtomicBool::new(false));
    let sealing = |sealer: Arc<Sealer>, stop: Arc<AtomicBool>| {
        tokio::spawn(async move {
            let mut batches = 0;
            while !stop.load(Ordering::Relaxed) {
                if let Sealed::Batch { changes, .. } = sealer.seal_batch().await.unwrap()
                    && changes > 0
                {
                    batches += 1;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            batches
        })
    };
    let (by_a, by_b) = (sealing(a.clone(), stop.clone()), sealing(b.clone(), stop.clone()));
    for holder in 0..30 {
        registry.suspend_card(holder).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let (by_a, by_b) = (by_a.await.unwrap(), by_b.await.unwrap());
    assert!(by_a > 0 && by_b == 0, "only the lease's holder sealed: {by_a} and {by_b} batches");
    a.seal_all().await.unwrap();
    let report = registry.store.verify_audit().await.unwrap();
    assert_eq!((report.records, report.first_break, report.unsealed), (30, None, 0));
    // Given up, the lease is the other's at once.
    a.release().await.unwrap();
    assert!(matches!(b.seal_batch().await.unwrap(), Sealed::Batch { .. }));
}

both_backends!(
    a_follower_never_skips_a_change_that_commits_late,
    records_committed_while_no_sealer_runs_are_sealed_once_one_starts,
    two_sealers_never_both_seal,
);
