//! The CA sync worker against the real ca-sim process and real databases:
//! every change reaches the CA once in effect, in order, through 503s, lost
//! answers, outages, poison events, crashes and a second worker; CRLs are
//! checked with openssl as well as by the worker; reconciliation repairs
//! drift and rejects a CRL that does not verify.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use hotline_ca::{CaStats, Faults, TrustedIssuer};
use hotline_store::Store;
use hotline_testkit::{Backend, CaSimServer, Registry, TestApp, both_backends};
use hotline_worker::{ReconcileError, TrustStore, Worker, WorkerMetrics, WorkerSettings};
use prometheus_client::registry::Registry as Prometheus;
use reqwest::StatusCode;
use sqlx::Row;

fn settings() -> WorkerSettings {
    hotline_testkit::quick_worker_settings()
}

fn worker_with(store: &Store, ca: &CaSimServer, settings: WorkerSettings) -> (Worker, Arc<WorkerMetrics>) {
    let metrics = Arc::new(WorkerMetrics::new(&mut Prometheus::default()));
    let worker = Worker::new(store.clone(), ca.client(), settings, metrics.clone(), TrustStore::default());
    (worker, metrics)
}

fn worker(store: &Store, ca: &CaSimServer) -> (Worker, Arc<WorkerMetrics>) {
    worker_with(store, ca, settings())
}

/// Drains until nothing is pending (or panics after `limit`).
async fn drain(worker: &Worker, store: &Store, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        worker.drain_once().await.unwrap();
        let summary = store.outbox_summary().await.unwrap();
        if summary.pending == 0 {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "outbox not drained in {limit:?}: {summary:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every outbox event: id → state.
async fn outbox(store: &Store) -> BTreeMap<String, String> {
    sqlx::query("SELECT event_id, state FROM outbox")
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<String, _>("event_id"), r.get::<String, _>("state")))
        .collect()
}

/// Each event applied exactly once at the CA, and nothing applied that is not an event.
fn assert_once_in_effect(stats: &CaStats, events: &BTreeMap<String, String>) {
    let applied: BTreeSet<&String> = stats.applied.keys().collect();
    let sent: BTreeSet<&String> = events.keys().collect();
    assert_eq!(applied, sent, "the CA applied exactly the outbox's events");
    let twice: Vec<_> = stats.applied.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "applied more than once: {twice:?}");
}

/// Serials (lowercase, canonical) of the registry's certificates of `issuer` with `status`.
async fn registry_serials(store: &Store, issuer: &str, status: &str) -> BTreeSet<String> {
    let serials: Vec<String> = sqlx::query_scalar("SELECT serial FROM certificates WHERE issuer = $1 AND status = $2")
        .bind(issuer)
        .bind(status)
        .fetch_all(store.pool())
        .await
        .unwrap();
    serials.iter().map(|s| hotline_ca::VerifiedCrl::canonical(s)).collect()
}

/// The CRL as openssl reads it: verified against the issuer certificate, and
/// its entries as serial → reason text.
fn openssl_crl(ca: &CaSimServer, issuer: &str, der: &[u8]) -> Result<BTreeMap<String, String>, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crl.der");
    std::fs::write(&path, der).unwrap();
    let verify = Command::new("openssl")
        .args(["crl", "-inform", "DER", "-noout", "-in"])
        .arg(&path)
        .arg("-CAfile")
        .arg(ca.issuer_pem_path(issuer))
        .output()
        .expect("openssl is installed by the README's test command");
    let said = String::from_utf8_lossy(&verify.stderr).to_string() + &String::from_utf8_lossy(&verify.stdout);
    if !verify.status.success() || !said.contains("verify OK") {
        return Err(said);
    }
    let text =
        Command::new("openssl").args(["crl", "-inform", "DER", "-noout", "-text", "-in"]).arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    let mut entries = BTreeMap::new();
    let mut serial = None;
    let mut lines = text.lines().map(str::trim).peekable();
    while let Some(line) = lines.next() {
        if let Some(s) = line.strip_prefix("Serial Number: ") {
            serial = Some(s.to_ascii_lowercase());
        } else if line.starts_with("X509v3 CRL Reason Code") {
            let reason = lines.next().unwrap_or_default().to_owned();
            entries.insert(serial.take().unwrap(), reason);
        }
    }
    Ok(entries)
}

async fn ca_sync_of(store: &Store, suspension_id: &str) -> (String, Option<String>) {
    let row = sqlx::query("SELECT ca_sync, ca_sync_at FROM suspensions WHERE id = $1")
        .bind(suspension_id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    (row.get("ca_sync"), row.get("ca_sync_at"))
}

async fn every_change_reaches_the_ca_once_and_the_crls_list_exactly_the_holds(backend: Backend) {
    let registry = Registry::new(backend, 100).await;
    let ca = CaSimServer::start();
    let mut suspensions = Vec::new();
    for i in 0..100 {
        suspensions.push(registry.suspend_card(i).await);
    }
    let (worker, metrics) = worker(&registry.store, &ca);
    drain(&worker, &registry.store, Duration::from_secs(60)).await;

    let events = outbox(&registry.store).await;
    assert_eq!(events.len(), 200, "two card certificates per holder");
    assert!(events.values().all(|s| s == "done"));
    assert_once_in_effect(&ca.control().stats().await.unwrap(), &events);
    assert_eq!(metrics.ca_requests.get_or_create(&[("outcome", "applied")]).get(), 200);
    for s in &suspensions {
        let (sync, at) = ca_sync_of(&registry.store, &s.id).await;
        assert_eq!(sync, "confirmed");
        assert!(at.is_some(), "confirmation time recorded");
    }
    for issuer in ["jpki-sign", "jpki-auth"] {
        let der = ca.client().crl(issuer).await.unwrap();
        let pem = ca.client().issuer_pem(issuer).await.unwrap();
        let crl = TrustedIssuer::from_pem(&pem).unwrap().verify(&der, chrono::Utc::now()).unwrap();
        let held = registry_serials(&registry.store, issuer, "suspended").await;
        assert_eq!(held.len(), 100);
        let listed: BTreeSet<String> = crl.entries.iter().map(|e| e.serial.clone()).collect();
        assert_eq!(listed, held, "{issuer}: the CRL lists exactly the held serials");
        assert!(crl.entries.iter().all(|e| e.is_hold()));
        let by_openssl = openssl_crl(&ca, issuer, &der).unwrap();
        assert_eq!(by_openssl.keys().cloned().collect::<BTreeSet<_>>(), held, "{issuer}: openssl agrees");
        assert!(by_openssl.values().all(|r| r == "Certificate Hold"), "{by_openssl:?}");
    }

    // A release: identification back to good (off the CRL), signature revoked for good.
    let released = registry.release(&suspensions[0].id).await;
    assert_eq!(ca_sync_of(&registry.store, &released.id).await.0, "pending");
    let first_crl = ca.client().crl("jpki-auth").await.unwrap();
    drain(&worker, &registry.store, Duration::from_secs(30)).await;
    assert_eq!(ca_sync_of(&registry.store, &released.id).await.0, "confirmed");
    let auth = released.certificates.iter().find(|c| c.issuer == "jpki-auth").unwrap();
    let sign = released.certificates.iter().find(|c| c.issuer == "jpki-sign").unwrap();
    let auth_crl = openssl_crl(&ca, "jpki-auth", &ca.client().crl("jpki-auth").await.unwrap()).unwrap();
    assert!(!auth_crl.contains_key(&hotline_ca::VerifiedCrl::canonical(&auth.serial)));
    assert_eq!(auth_crl.len(), 99);
    let sign_crl = openssl_crl(&ca, "jpki-sign", &ca.client().crl("jpki-sign").await.unwrap()).unwrap();
    assert_eq!(sign_crl[&hotline_ca::VerifiedCrl::canonical(&sign.serial)], "Superseded");
    // The CRL was re-signed with a higher number.
    let pem = ca.client().issuer_pem("jpki-auth").await.unwrap();
    let trusted = TrustedIssuer::from_pem(&pem).unwrap();
    let number = |der: &[u8]| trusted.verify(der, chrono::Utc::now()).unwrap().number.unwrap().parse::<u128>().unwrap();
    assert!(number(&ca.client().crl("jpki-auth").await.unwrap()) > number(&first_crl));
    assert_once_in_effect(&ca.control().stats().await.unwrap(), &outbox(&registry.store).await);
}

both_backends!(every_change_reaches_the_ca_once_and_the_crls_list_exactly_the_holds);

async fn a_ca_answering_503_for_a_while_gets_everything_once_when_healthy() {
    let registry = Registry::new(Backend::Postgres, 10).await;
    let ca = CaSimServer::start_with(&["--error-rate", "1"]);
    for i in 0..10 {
        registry.suspend_card(i).await;
    }
    let (worker, metrics) = worker(&registry.store, &ca);
    for _ in 0..5 {
        worker.drain_once().await.unwrap();
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    let summary = registry.store.outbox_summary().await.unwrap();
    assert_eq!((summary.pending, summary.dead), (20, 0), "nothing delivered, nothing given up");
    let failed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE attempts >= 2 AND last_error LIKE '%503%'")
        .fetch_one(registry.store.pool())
        .await
        .unwrap();
    assert_eq!(failed, 20, "every event was tried and retried");
    assert!(ca.control().stats().await.unwrap().applied.is_empty());

    ca.control().set_faults(&Faults::default()).await.unwrap();
    drain(&worker, &registry.store, Duration::from_secs(30)).await;
    let stats = ca.control().stats().await.unwrap();
    assert_once_in_effect(&stats, &outbox(&registry.store).await);
    assert!(stats.faulted >= 20);
    assert!(metrics.ca_requests.get_or_create(&[("outcome", "unavailable")]).get() >= 20);
}

async fn lost_responses_are_retried_and_applied_once() {
    let registry = Registry::new(Backend::Postgres, 20).await;
    let ca = CaSimServer::start_with(&["--lost-response-rate", "0.5"]);
    for i in 0..20 {
        registry.suspend_card(i).await;
    }
    let (worker, _) = worker(&registry.store, &ca);
    drain(&worker, &registry.store, Duration::from_secs(60)).await;
    let stats = ca.control().stats().await.unwrap();
    let events = outbox(&registry.store).await;
    assert_once_in_effect(&stats, &events);
    assert!(!stats.replays.is_empty(), "some answers were lost, so some events were sent again: {stats:?}");
    assert!(events.values().all(|s| s == "done"));
}

async fn a_ca_down_for_the_whole_outage_loses_nothing_and_drains_when_it_returns() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let mut ca = CaSimServer::start();
    ca.kill();
    let (worker, metrics) = worker(&app.store, &ca);
    let mut ids = Vec::new();
    for i in 0..5 {
        let (status, body) = app.suspend(&format!("k{i}"), &TestApp::report(app.card_holder(i), "card")).await;
        assert_eq!(status, StatusCode::CREATED, "suspensions do not wait for the CA");
        ids.push(body["id"].as_str().unwrap().to_owned());
        worker.drain_once().await.unwrap();
    }
    for _ in 0..5 {
        worker.drain_once().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let summary = app.store.outbox_summary().await.unwrap();
    assert_eq!((summary.pending, summary.dead), (10, 0), "the backlog holds every change");
    metrics.observe_outbox(&app.store).await;
    assert_eq!(metrics.outbox_pending.get(), 10);
    assert!(metrics.outbox_oldest_pending_age.get() > 0.0);
    for id in &ids {
        let (_, body) = app.get(&format!("/v1/suspensions/{id}"), &app.operator).await;
        assert_eq!(body["ca_sync"], "pending");
    }

    ca.restart();
    drain(&worker, &app.store, Duration::from_secs(30)).await;
    assert_once_in_effect(&ca.control().stats().await.unwrap(), &outbox(&app.store).await);
    for id in &ids {
        let (_, body) = app.get(&format!("/v1/suspensions/{id}"), &app.operator).await;
        assert_eq!(body["ca_sync"], "confirmed");
        assert!(body["ca_sync_at"].as_str().unwrap().ends_with("+09:00"), "{body}");
    }
    metrics.observe_outbox(&app.store).await;
    assert_eq!(metrics.outbox_pending.get(), 0);
}

async fn a_poison_event_is_dead_lettered_and_the_rest_keeps_flowing() {
    let registry = Registry::new(Backend::Postgres, 6).await;
    let ca = CaSimServer::start();
    // A release of a certificate the CA never held: refused for good.
    sqlx::query(
        "INSERT INTO outbox (event_id, certificate_id, issuer, serial, action, reason, created_at, next_attempt_at)
         SELECT 'poison-1', id, issuer, serial, 'release', 'remove_from_crl', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z'
           FROM certificates WHERE holder_id = (SELECT MAX(holder_id) FROM certificates) AND issuer = 'jpki-auth' AND medium = 'card'",
    )
    .execute(registry.store.pool())
    .await
    .unwrap();
    for i in 0..5 {
        registry.suspend_card(i).await;
    }
    let (worker, metrics) = worker(&registry.store, &ca);
    drain(&worker, &registry.store, Duration::from_secs(30)).await;

    let events = outbox(&registry.store).await;
    assert_eq!(events["poison-1"], "dead");
    assert_eq!(events.values().filter(|s| *s == "done").count(), 10, "the other events all went through");
    assert_eq!(metrics.dead_letters.get(), 1);
    let dead = registry.store.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].last_error.as_deref().unwrap().contains("not_on_hold"), "{dead:?}");
    registry.seal().await;
    let audited: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'outbox.dead_lettered' AND subject = 'poison-1'",
    )
    .fetch_one(registry.store.pool())
    .await
    .unwrap();
    assert_eq!(audited, 1, "a dead letter is audited");
    assert!(registry.store.verify_audit().await.unwrap().first_break.is_none());
}

async fn events_failing_until_the_limit_are_dead_lettered_then_requeued() {
    let registry = Registry::new(Backend::Postgres, 2).await;
    let ca = CaSimServer::start_with(&["--error-rate", "1"]);
    let suspension = registry.suspend_card(0).await;
    let limited = WorkerSettings { max_attempts: 3, ..settings() };
    let (worker, metrics) = worker_with(&registry.store, &ca, limited);
    drain(&worker, &registry.store, Duration::from_secs(30)).await;
    let attempts: Vec<i64> = sqlx::query_scalar("SELECT attempts FROM outbox WHERE state = 'dead'")
        .fetch_all(registry.store.pool())
        .await
        .unwrap();
    assert_eq!(attempts, vec![3, 3], "both events dead after exactly the limit");
    assert_eq!(metrics.dead_letters.get(), 2);
    let (sync, at) = ca_sync_of(&registry.store, &suspension.id).await;
    assert_eq!((sync.as_str(), at.is_some()), ("failed", true));

    ca.control().set_faults(&Faults::default()).await.unwrap();
    assert_eq!(registry.store.retry_dead_letters("test", chrono::Utc::now()).await.unwrap(), 2);
    drain(&worker, &registry.store, Duration::from_secs(30)).await;
    assert_eq!(ca_sync_of(&registry.store, &suspension.id).await.0, "confirmed");
    assert_once_in_effect(&ca.control().stats().await.unwrap(), &outbox(&registry.store).await);
}

async fn a_certificates_changes_reach_the_ca_in_order() {
    let registry = Registry::new(Backend::Postgres, 4).await;
    let ca = CaSimServer::start();
    // Hold, release, hold again: three events per certificate, all due at once.
    let first = registry.suspend_card(0).await;
    registry.release(&first.id).await;
    let (worker, _) = worker(&registry.store, &ca);
    // Claims alone never hand out a later event while an earlier one is pending.
    let claimed = registry
        .store
        .claim_outbox("probe", chrono::Utc::now(), chrono::Utc::now() + chrono::Duration::seconds(1), 100)
        .await
        .unwrap();
    let actions: Vec<&str> = claimed.events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, vec!["hold", "hold"], "only the first event of each certificate");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    drain(&worker, &registry.store, Duration::from_secs(30)).await;
    // Had the release gone first, the CA would have refused it (not on hold) and it would be dead.
    let summary = registry.store.outbox_summary().await.unwrap();
    assert_eq!(summary.dead, 0);
    let auth = first.certificates.iter().find(|c| c.issuer == "jpki-auth").unwrap();
    let der = ca.client().crl("jpki-auth").await.unwrap();
    assert!(
        !openssl_crl(&ca, "jpki-auth", &der).unwrap().contains_key(&hotline_ca::VerifiedCrl::canonical(&auth.serial))
    );
}

async fn two_workers_on_one_database_send_each_event_once() {
    let registry = Registry::new(Backend::Postgres, 150).await;
    let ca = CaSimServer::start_with(&["--latency-ms", "5"]);
    for i in 0..150 {
        registry.suspend_card(i).await;
    }
    // Each worker has its own pool, as two processes would.
    let one_settings = WorkerSettings { batch: 8, ..settings() };
    let (one, one_metrics) = worker_with(&registry.db.store().await, &ca, one_settings.clone());
    let (two, two_metrics) = worker_with(&registry.db.store().await, &ca, one_settings);
    let stop = Arc::new(tokio::sync::Notify::new());
    let run = |w: Worker| {
        let stop = stop.clone();
        tokio::spawn(w.run(async move { stop.notified().await }))
    };
    let (a, b) = (run(one), run(two));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while registry.store.outbox_summary().await.unwrap().pending > 0 {
        assert!(tokio::time::Instant::now() < deadline, "not drained");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.notify_waiters();
    a.await.unwrap();
    b.await.unwrap();
    let stats = ca.control().stats().await.unwrap();
    assert_once_in_effect(&stats, &outbox(&registry.store).await);
    assert!(stats.replays.is_empty(), "no event was claimed by both workers: {:?}", stats.replays);
    let sent = |m: &WorkerMetrics| m.ca_requests.get_or_create(&[("outcome", "applied")]).get();
    assert_eq!(sent(&one_metrics) + sent(&two_metrics), 300);
    assert!(sent(&one_metrics) > 0 && sent(&two_metrics) > 0, "both workers took a share");
}

async fn a_worker_killed_mid_batch_loses_nothing_and_applies_nothing_twice() {
    let registry = Registry::new(Backend::Postgres, 60).await;
    let ca = CaSimServer::start_with(&["--latency-ms", "40"]);
    for i in 0..60 {
        registry.suspend_card(i).await;
    }
    let spawn = || {
        // A clean environment: the binary refuses HOTLINE_* variables it does not read, such as the tests' own.
        Command::new(hotline_testkit::workspace_binary("hotline"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .args(["worker", "--listen", "127.0.0.1:0"])
            .env("HOTLINE_DATABASE_URL", &registry.db.url)
            .env("HOTLINE_CA_URL", ca.url())
            .env("HOTLINE_WORKER_BATCH", "16")
            .env("HOTLINE_WORKER_CONCURRENCY", "16")
            .env("HOTLINE_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut first = spawn();
    // Wait until it is part way through, then kill it without warning.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let applied = ca.control().stats().await.unwrap().applied.len();
        if applied >= 20 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the worker made no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let summary = registry.store.outbox_summary().await.unwrap();
    assert!(summary.pending > 0, "killed before it finished: {summary:?}");
    let leased: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE state = 'pending' AND leased_by IS NOT NULL")
            .fetch_one(registry.store.pool())
            .await
            .unwrap();
    assert!(leased > 0, "it died holding leases");

    let mut second = spawn();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while registry.store.outbox_summary().await.unwrap().pending > 0 {
        assert!(tokio::time::Instant::now() < deadline, "the restarted worker did not drain the outbox");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    second.kill().unwrap();
    second.wait().unwrap();
    let events = outbox(&registry.store).await;
    assert_eq!(events.len(), 120);
    assert!(events.values().all(|s| s == "done"));
    assert_once_in_effect(&ca.control().stats().await.unwrap(), &events);
}

async fn a_live_workers_leases_outlast_a_slow_ca_and_no_event_is_sent_twice() {
    let registry = Registry::new(Backend::Postgres, 4).await;
    // Every CA call takes longer than a lease: only renewal keeps the events A's.
    let ca = CaSimServer::start_with(&["--latency-ms", "1600"]);
    for i in 0..4 {
        registry.suspend_card(i).await;
    }
    let settings = WorkerSettings { lease: Duration::from_millis(1000), ..settings() };
    // A patient client, so that no call times out and is retried even on a busy machine.
    let patient = |settings: WorkerSettings| {
        let client = hotline_ca::CaClient::new(&ca.url(), Duration::from_secs(30)).unwrap();
        let metrics = Arc::new(WorkerMetrics::new(&mut Prometheus::default()));
        Worker::new(registry.store.clone(), client, settings, metrics, TrustStore::default())
    };
    let (a, b) = (patient(settings.clone()), patient(settings));
    let sending = tokio::spawn(async move { a.drain_once().await.unwrap() });
    // Wait until A holds the batch, then keep B looking while A waits on the CA.
    loop {
        let leased: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE leased_by IS NOT NULL")
            .fetch_one(registry.store.pool())
            .await
            .unwrap();
        if leased == 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    while !sending.is_finished() {
        assert_eq!(b.drain_once().await.unwrap(), 0, "A renews its leases: B takes none of its events");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sending.await.unwrap(), 8);
    assert_eq!(registry.store.outbox_summary().await.unwrap().pending, 0);
    let stats = ca.control().stats().await.unwrap();
    assert_eq!(stats.applied.len(), 8);
    assert!(stats.replays.is_empty(), "no event was sent a second time: {:?}", stats.replays);
}

/// A lease renewal that meets a row someone else has locked neither waits for
/// it nor holds up the rest of the batch. (It once did both: the renewal ran
/// where the batch's deliveries were polled and waited on a settling
/// transaction's row lock, while that transaction waited to be polled to
/// commit, and the worker stopped for good.)
async fn a_renewal_meeting_a_locked_row_does_not_stall_the_batch() {
    let registry = Registry::new(Backend::Postgres, 2).await;
    // Every CA call outlasts a third of the lease: a renewal comes due while the batch is out.
    let ca = CaSimServer::start_with(&["--latency-ms", "600"]);
    let free = registry.suspend_card(0).await;
    let held_up = registry.suspend_card(1).await;
    let (worker, _) =
        worker_with(&registry.store, &ca, WorkerSettings { lease: Duration::from_millis(900), ..settings() });
    let sending = tokio::spawn(async move { worker.drain_once().await.unwrap() });
    loop {
        let leased: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE leased_by IS NOT NULL")
            .fetch_one(registry.store.pool())
            .await
            .unwrap();
        if leased == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Another session locks one suspension's events while the batch is at the CA.
    let mut lock = registry.store.pool().begin().await.unwrap();
    let locked = sqlx::query("SELECT seq FROM outbox WHERE suspension_id = $1 FOR UPDATE")
        .bind(&held_up.id)
        .fetch_all(&mut *lock)
        .await
        .unwrap();
    assert_eq!(locked.len(), 2);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while ca_sync_of(&registry.store, &free.id).await.0 != "confirmed" {
        assert!(tokio::time::Instant::now() < deadline, "the unlocked suspension's events were not settled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!sending.is_finished(), "the locked events cannot have been settled yet");
    lock.rollback().await.unwrap();
    assert_eq!(sending.await.unwrap(), 4);
    assert_eq!(ca_sync_of(&registry.store, &held_up.id).await.0, "confirmed");
    let stats = ca.control().stats().await.unwrap();
    assert_eq!(stats.applied.len(), 4);
    assert!(stats.replays.is_empty(), "no event was sent a second time: {:?}", stats.replays);
}

async fn reconciliation_repairs_drift_reports_strangers_and_rejects_a_bad_signature() {
    let registry = Registry::new(Backend::Postgres, 3).await;
    let ca = CaSimServer::start();
    let suspensions = [registry.suspend_card(0).await, registry.suspend_card(1).await];
    let (worker, metrics) = worker(&registry.store, &ca);
    drain(&worker, &registry.store, Duration::from_secs(30)).await;
    past_the_second().await;
    let clean = worker.reconcile("jpki-auth").await.unwrap();
    assert_eq!((clean.crl_entries, clean.missing.len(), clean.unexplained.len()), (2, 0, 0), "{clean:?}");

    // Behind the worker's back the CA loses an entry.
    let lost = suspensions[0].certificates.iter().find(|c| c.issuer == "jpki-auth").unwrap().serial.clone();
    ca.control().forget("jpki-auth", &lost).await.unwrap();
    let found = worker.reconcile("jpki-auth").await.unwrap();
    assert_eq!(found.missing, vec![lost.clone()]);
    assert_eq!(found.resent.len(), 1);
    drain(&worker, &registry.store, Duration::from_secs(30)).await;
    let der = ca.client().crl("jpki-auth").await.unwrap();
    assert_eq!(
        openssl_crl(&ca, "jpki-auth", &der).unwrap()[&hotline_ca::VerifiedCrl::canonical(&lost)],
        "Certificate Hold"
    );
    let again = worker.reconcile("jpki-auth").await.unwrap();
    assert!(again.missing.is_empty() && again.unexplained.is_empty(), "{again:?}");
    assert_eq!(
        metrics.reconcile_drift.get_or_create(&[("issuer", "jpki-auth".into()), ("kind", "missing".into())]).get(),
        1
    );

    // An entry the registry cannot explain is reported, not removed.
    let stranger = hotline_ca::RevocationRequest {
        event_id: "not-from-the-registry".into(),
        issuer: "jpki-auth".into(),
        serial: "7f00000000000001".into(),
        action: hotline_core::CaAction::Hold,
        reason: hotline_core::RevocationReason::CertificateHold,
    };
    ca.client().send(&stranger).await.unwrap();
    let strange = worker.reconcile("jpki-auth").await.unwrap();
    assert_eq!(strange.unexplained, vec!["7f00000000000001".to_owned()]);
    assert!(strange.resent.is_empty());

    // A CRL whose signature does not verify is rejected, by the worker and by openssl.
    ca.control().set_faults(&Faults { bad_crl_signature: true, ..Faults::default() }).await.unwrap();
    let rejected = worker.reconcile("jpki-auth").await;
    assert!(matches!(rejected, Err(ReconcileError::Rejected(hotline_ca::CrlError::BadSignature(_)))), "{rejected:?}");
    assert!(openssl_crl(&ca, "jpki-auth", &ca.client().crl("jpki-auth").await.unwrap()).is_err());
    let outcome =
        |o: &str| metrics.reconcile_runs.get_or_create(&[("issuer", "jpki-auth".into()), ("outcome", o.into())]).get();
    assert_eq!(outcome("crl_rejected"), 1);
    assert_eq!(outcome("ok"), 4);
    let resent: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox").fetch_one(registry.store.pool()).await.unwrap();
    assert_eq!(resent, 5, "a rejected CRL changed nothing");
}

/// A CRL's thisUpdate is in whole seconds, so an event delivered within the
/// second a CRL was issued may or may not be on it, and reconciliation leaves
/// it to the next CRL. Tests that expect a CRL to show every delivery wait
/// until the deliveries are in a second of their own.
async fn past_the_second() {
    let into = chrono::Utc::now().timestamp_subsec_millis();
    tokio::time::sleep(Duration::from_millis(u64::from(1_050 - into.min(1_000)))).await;
}

/// A real CA publishes its CRL on a schedule: what was delivered after the
/// CRL was issued is not on it yet, and is neither drift nor sent again.
async fn a_crl_issued_before_a_delivery_counts_nothing_delivered_since_as_drift() {
    let registry = Registry::new(Backend::Postgres, 3).await;
    let ca = CaSimServer::start();
    registry.suspend_card(0).await;
    let (worker, metrics) = worker(&registry.store, &ca);
    drain(&worker, &registry.store, Duration::from_secs(30)).await;
    let published = worker.reconcile("jpki-auth").await.unwrap();
    assert_eq!((published.crl_entries, published.missing.len()), (1, 0), "{published:?}");

    // The CA keeps the CRL it published; a suspension is delivered after it.
    ca.control().set_faults(&Faults { scheduled_crl: true, ..Faults::default() }).await.unwrap();
    let later = registry.suspend_card(1).await;
    drain(&worker, &registry.store, Duration::from_secs(30)).await;
    let before_the_next = worker.reconcile("jpki-auth").await.unwrap();
    assert_eq!(before_the_next.crl_number, published.crl_number, "the same CRL: {before_the_next:?}");
    assert!(
        before_the_next.missing.is_empty() && before_the_next.resent.is_empty(),
        "delivered after the CRL was issued, so not expected on it: {before_the_next:?}"
    );
    let drift = |kind: &str| {
        metrics.reconcile_drift.get_or_create(&[("issuer", "jpki-auth".into()), ("kind", kind.into())]).get()
    };
    assert_eq!(drift("missing"), 0);

    // The next CRL lists it, and agrees.
    ca.control().set_faults(&Faults::default()).await.unwrap();
    let next = worker.reconcile("jpki-auth").await.unwrap();
    assert_eq!((next.crl_entries, next.missing.len(), next.unexplained.len()), (2, 0, 0), "{next:?}");
    let serial = later.certificates.iter().find(|c| c.issuer == "jpki-auth").unwrap().serial.clone();
    let der = ca.client().crl("jpki-auth").await.unwrap();
    assert_eq!(
        openssl_crl(&ca, "jpki-auth", &der).unwrap()[&hotline_ca::VerifiedCrl::canonical(&serial)],
        "Certificate Hold"
    );
    let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox").fetch_one(registry.store.pool()).await.unwrap();
    assert_eq!(events, 4, "two card suspensions, two events each, none sent again");
}

hotline_testkit::postgres_only!(
    a_crl_issued_before_a_delivery_counts_nothing_delivered_since_as_drift,
    a_ca_answering_503_for_a_while_gets_everything_once_when_healthy,
    lost_responses_are_retried_and_applied_once,
    a_ca_down_for_the_whole_outage_loses_nothing_and_drains_when_it_returns,
    a_poison_event_is_dead_lettered_and_the_rest_keeps_flowing,
    events_failing_until_the_limit_are_dead_lettered_then_requeued,
    a_certificates_changes_reach_the_ca_in_order,
    two_workers_on_one_database_send_each_event_once,
    a_worker_killed_mid_batch_loses_nothing_and_applies_nothing_twice,
    a_live_workers_leases_outlast_a_slow_ca_and_no_event_is_sent_twice,
    a_renewal_meeting_a_locked_row_does_not_stall_the_batch,
    reconciliation_repairs_drift_reports_strangers_and_rejects_a_bad_signature,
);
