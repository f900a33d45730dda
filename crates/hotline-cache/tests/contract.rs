//! The cache's contract, proven on both backends (in-process and Redis):
//! cold until built, ordered applies that only move the marker over what they
//! applied, atomic rebuilds, and nothing lost when a rebuild races suspensions.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use chrono::{Duration, Utc};
use hotline_cache::{Applied, CacheSync, Lookup, MemoryCache, RedisCache, RedisSettings, RevocationCache, SyncOutcome};
use hotline_core::{CertificateStatus, IssuerId, RevocationReason, Serial, StatusRecord};
use hotline_store::{Backend, StatusChange};
use hotline_testkit::{Registry, redis_url, unique_prefix};

#[derive(Clone, Copy, Debug)]
enum Kind {
    Memory,
    Redis,
}

fn cache(kind: Kind) -> RevocationCache {
    match kind {
        Kind::Memory => RevocationCache::Memory(MemoryCache::new()),
        Kind::Redis => RevocationCache::Redis(
            RedisCache::new(RedisSettings {
                url: redis_url(),
                prefix: unique_prefix(),
                timeout: std::time::Duration::from_secs(2),
            })
            .unwrap(),
        ),
    }
}

fn key(issuer: &str, serial: &str) -> (IssuerId, Serial) {
    (IssuerId::parse(issuer).unwrap(), Serial::parse(serial).unwrap())
}

fn change(position: i64, serial: &str, status: CertificateStatus) -> StatusChange {
    let (issuer, serial) = key("jpki-auth", serial);
    let record = StatusRecord {
        status,
        reason: (status != CertificateStatus::Good).then_some(RevocationReason::CertificateHold),
        since: chrono::DateTime::from_timestamp(1_763_791_200, 0).unwrap(),
    };
    StatusChange { position, issuer, serial, record }
}

async fn statuses(cache: &RevocationCache, serials: &[&str]) -> Vec<Option<CertificateStatus>> {
    let keys: Vec<_> = serials.iter().map(|s| key("jpki-auth", s)).collect();
    match cache.lookup(&keys).await.unwrap() {
        Lookup::Known { entries, .. } => entries.into_iter().map(|e| e.map(|e| e.status)).collect(),
        Lookup::Cold => panic!("cold"),
    }
}

async fn built_empty(cache: &RevocationCache, position: i64) {
    let r = cache.begin_rebuild().await.unwrap();
    cache.finish_rebuild(r, position, Utc::now()).await.unwrap();
}

async fn a_new_cache_is_cold_and_refuses_applies(kind: Kind) {
    let c = cache(kind);
    assert_eq!(c.lookup(&[key("jpki-auth", "00ff")]).await.unwrap(), Lookup::Cold);
    assert_eq!(c.marker().await.unwrap(), None);
    assert_eq!(
        c.apply(0, &[change(1, "00ff", CertificateStatus::Suspended)], 1, Some(Utc::now())).await.unwrap(),
        Applied::NoMarker
    );
    assert_eq!(c.lookup(&[key("jpki-auth", "00ff")]).await.unwrap(), Lookup::Cold);
}

async fn ordered_applies_move_the_marker_over_what_they_applied(kind: Kind) {
    let c = cache(kind);
    built_empty(&c, 10).await;
    let t1 = Utc::now();
    let batch = [change(11, "0a", CertificateStatus::Suspended), change(12, "0b", CertificateStatus::Revoked)];
    assert_eq!(c.apply(10, &batch, 12, Some(t1)).await.unwrap(), Applied::Advanced { position: 12 });
    assert_eq!(
        statuses(&c, &["0a", "0b", "0c"]).await,
        [Some(CertificateStatus::Suspended), Some(CertificateStatus::Revoked), None]
    );
    // A batch that starts after the marker would skip changes: refused.
    assert_eq!(
        c.apply(14, &[change(15, "0c", CertificateStatus::Suspended)], 15, None).await.unwrap(),
        Applied::Gap { marker: 12 }
    );
    assert_eq!(statuses(&c, &["0c"]).await, [None]);
    // A late, overlapping batch changes nothing it already has.
    assert_eq!(
        c.apply(10, &[change(11, "0a", CertificateStatus::Good)], 11, None).await.unwrap(),
        Applied::Advanced { position: 12 }
    );
    assert_eq!(statuses(&c, &["0a"]).await, [Some(CertificateStatus::Suspended)]);
    // Back to good removes the entry.
    assert_eq!(
        c.apply(12, &[change(13, "0a", CertificateStatus::Good)], 13, None).await.unwrap(),
        Applied::Advanced { position: 13 }
    );
    assert_eq!(statuses(&c, &["0a"]).await, [None]);
    let marker = c.marker().await.unwrap().unwrap();
    assert_eq!(marker.position, 13);
    assert_eq!(marker.as_of.timestamp_millis(), t1.timestamp_millis(), "as_of moves only with a complete read");
    // A confirmation with no changes moves as_of forward, never back.
    let t2 = t1 + Duration::seconds(5);
    c.apply(13, &[], 13, Some(t2)).await.unwrap();
    c.apply(13, &[], 13, Some(t1)).await.unwrap();
    assert_eq!(c.marker().await.unwrap().unwrap().as_of.timestamp_millis(), t2.timestamp_millis());
}

async fn readers_never_see_a_half_built_generation(kind: Kind) {
    let c = cache(kind);
    built_empty(&c, 0).await;
    c.apply(0, &[change(1, "0a", CertificateStatus::Suspended)], 1, Some(Utc::now())).await.unwrap();
    let before = c.marker().await.unwrap().unwrap();
    let rebuild = c.begin_rebuild().await.unwrap();
    c.load(rebuild, &[change(5, "0b", CertificateStatus::Suspended)]).await.unwrap();
    // Mid-rebuild: still the old generation, whole.
    assert_eq!(c.marker().await.unwrap().unwrap(), before);
    assert_eq!(statuses(&c, &["0a", "0b"]).await, [Some(CertificateStatus::Suspended), None]);
    c.finish_rebuild(rebuild, 5, Utc::now()).await.unwrap();
    let after = c.marker().await.unwrap().unwrap();
    assert_eq!((after.position, after.generation), (5, rebuild.generation));
    assert_eq!(statuses(&c, &["0a", "0b"]).await, [None, Some(CertificateStatus::Suspended)]);
}

async fn the_sync_builds_then_follows_a_postgres_store(kind: Kind) {
    let registry = Registry::new(Backend::Postgres, 12).await;
    let first = registry.suspend_card(0).await;
    registry.seal().await;
    let c = cache(kind);
    let sync = CacheSync::new(registry.store.clone(), c.clone());
    assert_eq!(sync.step().await.unwrap(), SyncOutcome::Rebuilt { position: 2, entries: 2 });
    let second = registry.suspend_card(1).await;
    assert_eq!(sync.step().await.unwrap(), SyncOutcome::UpToDate { position: 2 }, "committed, not sealed yet");
    registry.seal().await;
    assert_eq!(sync.step().await.unwrap(), SyncOutcome::UpToDate { position: 4 });
    for view in [&first, &second] {
        let keys: Vec<_> = view.certificates.iter().map(|c| key(&c.issuer, &c.serial)).collect();
        let Lookup::Known { entries, marker } = c.lookup(&keys).await.unwrap() else { panic!("cold") };
        assert_eq!(marker.position, 4);
        assert!(entries.iter().all(|e| e.as_ref().is_some_and(
            |e| e.status == CertificateStatus::Suspended && e.reason == Some(RevocationReason::CertificateHold)
        )));
    }
    let good = &registry.holders[5].card[0];
    assert_eq!(statuses_of(&c, &good.issuer, good.serial.as_str()).await, None);
}

async fn statuses_of(c: &RevocationCache, issuer: &str, serial: &str) -> Option<CertificateStatus> {
    match c.lookup(&[key(issuer, serial)]).await.unwrap() {
        Lookup::Known { entries, .. } => entries[0].as_ref().map(|e| e.status),
        Lookup::Cold => panic!("cold"),
    }
}

async fn a_rebuild_racing_suspensions_on_postgres_loses_nothing(kind: Kind) {
    let registry = Registry::new(Backend::Postgres, 60).await;
    for i in 0..20 {
        registry.suspend_card(i).await;
    }
    registry.seal().await;
    let c = cache(kind);
    // Pages of 7 entries: the 40 held before and the 80 held during the rebuild span many pages,
    // so a suspension lands before, inside and after the page being read.
    let sync = CacheSync::new(registry.store.clone(), c.clone()).with_page(7);
    let suspensions = async {
        let mut views = Vec::new();
        for i in 20..60 {
            views.push(registry.suspend_card(i).await);
            // Sealed now and then, so positions are given before, inside and after the page being read.
            if i % 3 == 0 {
                registry.seal().await;
            }
        }
        views
    };
    let (views, rebuilt) = futures::join!(suspensions, sync.rebuild(|_| {}));
    rebuilt.unwrap();
    registry.seal().await;
    sync.step().await.unwrap();
    let keys: Vec<_> = views.iter().flat_map(|v| v.certificates.iter().map(|c| key(&c.issuer, &c.serial))).collect();
    let Lookup::Known { entries, marker } = c.lookup(&keys).await.unwrap() else { panic!("cold") };
    assert_eq!(marker.position, 120);
    assert!(
        entries.iter().all(|e| e.as_ref().is_some_and(|e| e.status == CertificateStatus::Suspended)),
        "every suspension made during the rebuild reads as suspended"
    );
}

macro_rules! both_caches {
    ($($name:ident),+ $(,)?) => {
        mod memory {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(super::Kind::Memory).await } )+
        }
        mod redis {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(super::Kind::Redis).await } )+
        }
    };
}

both_caches!(
    a_new_cache_is_cold_and_refuses_applies,
    ordered_applies_move_the_marker_over_what_they_applied,
    readers_never_see_a_half_built_generation,
    the_sync_builds_then_follows_a_postgres_store,
    a_rebuild_racing_suspensions_on_postgres_loses_nothing,
);
