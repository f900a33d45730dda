//! The service through the loss of a database server, on a replicated
//! PostgreSQL of the test's own (etcd, three Patroni nodes in synchronous
//! mode, HAProxy in front: `hotline_testkit::PatroniCluster`, from the
//! deployment's own files), with the real binary: two `hotline api`
//! processes and a `hotline worker`, a Redis and a ca-sim, every one of them
//! reaching the database through HAProxy.
//!
//! - A crash of the primary (SIGKILL of its Patroni and postmaster) during a
//!   burst of suspensions from several operators: every acknowledged
//!   suspension is on the new primary exactly once, retries replay the first
//!   answer, nothing is answered 500 or hangs, validators are answered
//!   throughout and never told a held certificate is good, every outbox
//!   event reaches the CA once, the audit chain verifies, a console session
//!   carries over, no process of the service restarts, and the old primary
//!   rejoins as a replica holding everything.
//! - A planned switchover under a steady stream of suspensions: no request
//!   fails. The synchronous standby lost: another replica takes its place and
//!   acknowledged suspensions stay on two servers. A network cut between an
//!   instance and the database: bounded waits, `503` with `Retry-After`,
//!   validators answered with their true `as_of` up to the maximum
//!   staleness and then `503`, and recovery.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hotline_testkit::drill::{self, Answered, Call, Watched};
use hotline_testkit::{Deployment, PatroniCluster};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_hotline");

/// A deployment of two API instances and a worker on `cluster`, `holders` seeded.
async fn deploy(cluster: &PatroniCluster, holders: usize) -> Deployment {
    let settings = [("HOTLINE_DATABASE_SYNCHRONOUS_STANDBY", "true"), ("HOTLINE_WORKER_POLL_MS", "50")];
    let database = cluster.create_service_database().await;
    let mut deployment = Deployment::prepare(std::path::Path::new(BIN), &database, holders, &settings).await;
    for _ in 0..2 {
        deployment.start_api(&[]).await;
    }
    deployment.start_worker().await;
    // Durable on two servers, and the service says so (as its own role, which may read the replication state).
    let metrics = reqwest::get(format!("{}/metrics", deployment.bases()[0])).await.unwrap().text().await.unwrap();
    for line in ["hotline_db_synchronous_standbys 1", "hotline_db_synchronous_standby_required 1"] {
        assert!(metrics.lines().any(|l| l == line), "{line}: {metrics}");
    }
    deployment
}

/// The seeded holders with a smartphone, split into `held` (suspended before
/// the drill), `untouched` (must read good throughout) and the rest.
fn phone_holders(deployment: &Deployment, held: usize, untouched: usize) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    let phones: Vec<Value> = deployment
        .holders
        .iter()
        .filter(|h| h["smartphones"].as_array().is_some_and(|p| !p.is_empty()))
        .cloned()
        .collect();
    assert!(phones.len() > held + untouched, "seed more holders: {} have a smartphone", phones.len());
    let (first, rest) = phones.split_at(held);
    let (second, rest) = rest.split_at(untouched);
    (first.to_vec(), second.to_vec(), rest.to_vec())
}

fn calls(holders: &[Value], prefix: &str) -> Vec<Call> {
    holders.iter().enumerate().map(|(i, h)| drill::phone_call(h, format!("{prefix}-{i}"))).collect()
}

/// What validators watch: the held holders' certificates read suspended, the untouched ones good.
fn watched_certificates(held: &[Value], untouched: &[Value]) -> Vec<(String, String, &'static str)> {
    let mut certificates = Vec::new();
    for (holders, want) in [(held, "suspended"), (untouched, "good")] {
        for holder in holders {
            certificates.extend(drill::phone_certificates(holder).into_iter().map(|(i, s)| (i, s, want)));
        }
    }
    certificates
}

/// Suspends `holders` before the drill, and waits until every instance reads them suspended.
async fn hold_beforehand(deployment: &Deployment, holders: &[Value]) {
    let answered =
        drill::operators(&deployment.bases(), &deployment.operator, calls(holders, "before"), 2, false).await;
    assert!(answered.iter().all(|a| a.status == 201), "{answered:?}");
    let client = reqwest::Client::new();
    let (issuer, serial) = drill::phone_certificates(&holders[0]).remove(0);
    for base in deployment.bases() {
        for _ in 0..100 {
            let url = format!("{base}/v1/status/{issuer}/{serial}");
            let body: Value =
                client.get(url).bearer_auth(&deployment.validator).send().await.unwrap().json().await.unwrap();
            if body["status"] == "suspended" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Starts validators on every instance; stop them with the flag, then await the watch.
fn watch(
    deployment: &Deployment,
    certificates: Vec<(String, String, &'static str)>,
) -> (Arc<AtomicBool>, tokio::task::JoinHandle<Watched>) {
    let stop = Arc::new(AtomicBool::new(false));
    let task =
        tokio::spawn(drill::validators(deployment.bases(), deployment.validator.clone(), certificates, stop.clone()));
    (stop, task)
}

/// The test database on `cluster`'s primary, or on one node directly.
fn database_url(cluster: &PatroniCluster, deployment: &Deployment, node: Option<&str>) -> String {
    match node {
        Some(node) => cluster.node_url(node, deployment.database()),
        None => cluster.url_of(deployment.database()),
    }
}

/// Every acknowledged call is a suspension on the primary, once, and its
/// key sent again (twice) replays its first answer.
async fn acknowledged_once(cluster: &PatroniCluster, deployment: &Deployment, answered: &[Answered], before: usize) {
    let url = database_url(cluster, deployment, None);
    let stored = Deployment::scalar(&url, "SELECT COUNT(*) FROM suspensions").await.unwrap();
    let distinct = Deployment::scalar(&url, "SELECT COUNT(DISTINCT reference) FROM suspensions").await.unwrap();
    let acknowledged = (answered.iter().filter(|a| a.status == 201).count() + before) as i64;
    assert_eq!((stored, distinct), (acknowledged, acknowledged), "each acknowledged suspension stored once");
    let again: Vec<Call> = answered.iter().flat_map(|a| [a.call.clone(), a.call.clone()]).collect();
    let resent = drill::operators(&deployment.bases(), &deployment.operator, again, 8, false).await;
    for replay in &resent {
        let first = answered.iter().find(|a| a.call.key == replay.call.key).unwrap();
        assert_eq!(
            (replay.status, &replay.body["reference"]),
            (201, &first.body["reference"]),
            "a retry replays the first answer"
        );
    }
}

/// Waits (up to 60 s) until the worker delivered every outbox event; then
/// the CA applied each exactly once, and nothing else.
async fn every_event_reached_the_ca_once(cluster: &PatroniCluster, deployment: &Deployment) {
    let url = database_url(cluster, deployment, None);
    for _ in 0..600 {
        if Deployment::scalar(&url, "SELECT COUNT(*) FROM outbox WHERE state <> 'done'").await == Some(0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let events = Deployment::scalar(&url, "SELECT COUNT(*) FROM outbox WHERE state = 'done'").await.unwrap();
    let stats = deployment.ca.control().stats().await.unwrap();
    let twice: Vec<_> = stats.applied.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "applied more than once: {twice:?}");
    assert_eq!(stats.applied.len() as i64, events, "the CA applied exactly the outbox's events, all delivered");
}

/// The service's processes are the ones started: none exited or was restarted.
fn nothing_restarted(deployment: &mut Deployment) {
    for process in deployment.apis.iter_mut().chain(deployment.worker.as_mut()) {
        assert!(process.still_running(), "{} exited", process.base);
    }
}

/// A console session opened on the first instance; its cookie.
async fn open_console_session(deployment: &Deployment) -> String {
    let base = &deployment.bases()[0];
    let answer = reqwest::Client::new()
        .post(format!("{base}/console/session"))
        .header("X-Hotline-Console", "1")
        .json(&serde_json::json!({"token": deployment.operator}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let set = answer.headers()["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}

/// Who the console session of `cookie` is, asked on the second instance.
async fn console_session(deployment: &Deployment, cookie: &str) -> Value {
    let base = &deployment.bases()[1];
    let answer = reqwest::Client::new().get(format!("{base}/console/session")).header("cookie", cookie).send().await;
    answer.unwrap().json().await.unwrap()
}

async fn crash_failover() {
    let mut cluster = PatroniCluster::start().await;
    let mut deployment = deploy(&cluster, 1_400).await;
    let (held, untouched, burst) = phone_holders(&deployment, 10, 10);
    let burst = &burst[..400];
    hold_beforehand(&deployment, &held).await;
    let cookie = open_console_session(&deployment).await;
    let (stop, validators) = watch(&deployment, watched_certificates(&held, &untouched));
    let operators = {
        let (bases, token, calls) = (deployment.bases(), deployment.operator.clone(), calls(burst, "burst"));
        tokio::spawn(async move { drill::operators(&bases, &token, calls, 8, true).await })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let old_primary = cluster.with_role("leader").await.unwrap();
    let killed_at = Instant::now();
    cluster.kill(&old_primary);
    let answered = operators.await.unwrap();
    let (new_primary, _) = cluster.wait_healthy(Duration::from_secs(60)).await;
    stop.store(true, Ordering::Relaxed);
    let watched = validators.await.unwrap();
    eprintln!("failover {old_primary} -> {new_primary}; validators {watched:?}");

    assert_ne!(new_primary, old_primary);
    let killed = killed_at.elapsed();
    let (before, after) =
        answered.iter().filter_map(|a| a.acknowledged_at).partition::<Vec<_>, _>(|t| *t < Duration::from_secs(1));
    assert!(!before.is_empty() && !after.is_empty(), "the primary was killed mid-burst ({killed:?} ago)");
    assert!(answered.iter().all(|a| a.status == 201), "every call acknowledged, retried with its key");
    assert!(answered.iter().any(|a| a.outages > 0), "the burst met the failover");
    let errors: Vec<&String> = answered.iter().flat_map(|a| &a.errors).collect();
    assert!(errors.is_empty(), "no 500 or other error, only outages: {errors:?}");
    assert!(answered.iter().all(|a| a.longest < drill::ATTEMPT_TIMEOUT), "no attempt hung past the deadline");
    acknowledged_once(&cluster, &deployment, &answered, held.len()).await;
    assert!(watched.false_answers.is_empty(), "{:?}", watched.false_answers);
    assert_eq!(watched.from_the_future, 0, "no answer claims to be fresher than the cache's confirmation");
    assert_eq!(watched.unanswered, 0, "validators answered throughout: {watched:?}");
    every_event_reached_the_ca_once(&cluster, &deployment).await;
    deployment.run(&["audit", "verify"]).await;
    assert_eq!(console_session(&deployment, &cookie).await["signed_in"], true, "the console session carried over");
    nothing_restarted(&mut deployment);

    // The old primary comes back: it rejoins as a replica, rewound, and holds everything.
    cluster.start_node(&old_primary);
    let all = (answered.len() + held.len()) as i64;
    let on_old = database_url(&cluster, &deployment, Some(&old_primary));
    for _ in 0..600 {
        let rejoined =
            cluster.members().await.iter().any(|m| {
                m.name == old_primary && m.role != "leader" && (m.state == "running" || m.state == "streaming")
            });
        if rejoined && Deployment::scalar(&on_old, "SELECT COUNT(*) FROM suspensions").await == Some(all) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{old_primary} never rejoined with every suspension: {:?}\n{}", cluster.members().await, cluster.logs());
}

/// A steady stream of suspensions (no retries: any answer but 201 is a
/// failure) while `fault` runs, starting a second in; the stream must
/// outlast the fault, so acknowledgements come before it and after it.
async fn under_a_steady_stream<F: std::future::Future<Output = ()>>(
    deployment: &Deployment,
    holders: &[Value],
    prefix: &str,
    fault: F,
) -> Vec<Answered> {
    let operators = {
        let (bases, token, calls) = (deployment.bases(), deployment.operator.clone(), calls(holders, prefix));
        tokio::spawn(async move { drill::operators(&bases, &token, calls, 4, false).await })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let began = Instant::now();
    fault.await;
    let lasted = began.elapsed();
    let answered = operators.await.unwrap();
    let failed: Vec<String> = answered
        .iter()
        .filter(|a| a.status != 201)
        .map(|a| format!("{}: {} {}", a.call.key, a.status, a.body))
        .collect();
    assert!(failed.is_empty(), "{prefix}: no request fails: {failed:?}");
    let last = answered.iter().filter_map(|a| a.acknowledged_at).max().unwrap();
    assert!(
        last > Duration::from_secs(1) + lasted,
        "{prefix}: the stream outlasted the fault ({lasted:?}); last answer at {last:?}"
    );
    answered
}

/// A switchover to the synchronous standby under a steady stream: no request fails.
async fn switchover_under_a_stream(
    cluster: &PatroniCluster,
    deployment: &Deployment,
    holders: &[Value],
) -> Vec<Answered> {
    let (leader, sync) = cluster.wait_healthy(Duration::from_secs(30)).await;
    let answered = under_a_steady_stream(deployment, holders, "switchover", async {
        let out = cluster.switchover(&leader, &sync).await;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        cluster.wait_healthy(Duration::from_secs(60)).await;
    })
    .await;
    assert_eq!(cluster.with_role("leader").await.as_deref(), Some(sync.as_str()), "the standby took over");
    answered
}

/// The synchronous standby killed under a steady stream: no request fails,
/// the remaining replica becomes synchronous, and every acknowledged
/// suspension is on it as well as on the primary. Then the lost node rejoins.
async fn synchronous_standby_lost_under_a_stream(
    cluster: &mut PatroniCluster,
    deployment: &Deployment,
    holders: &[Value],
    stored_before: i64,
) {
    let (leader, lost) = cluster.wait_healthy(Duration::from_secs(30)).await;
    let answered = {
        let cluster = &mut *cluster;
        let lost = lost.clone();
        under_a_steady_stream(deployment, holders, "standby-lost", async move {
            cluster.kill(&lost);
        })
        .await
    };
    let (leader_after, sync_after) = cluster.wait_healthy(Duration::from_secs(60)).await;
    assert_eq!(leader_after, leader, "losing a standby moves no primary");
    assert_ne!(sync_after, lost, "another replica took the synchronous standby's place");
    let acknowledged = stored_before + answered.len() as i64;
    let on_standby = database_url(cluster, deployment, Some(&sync_after));
    let mut seen = None;
    for _ in 0..100 {
        seen = Deployment::scalar(&on_standby, "SELECT COUNT(*) FROM suspensions").await;
        if seen == Some(acknowledged) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen, Some(acknowledged), "every acknowledged suspension is on the new synchronous standby too");
    cluster.start_node(&lost);
    cluster.wait_healthy(Duration::from_secs(60)).await;
}

/// One more API instance, reaching the database through a proxy of its own
/// that is cut: its writes are answered 503 with Retry-After within the
/// write deadline, validators are answered as of the last confirmation up to
/// the maximum staleness and then 503, and once mended it recovers.
async fn a_network_cut_between_an_instance_and_the_database(
    cluster: &PatroniCluster,
    deployment: &mut Deployment,
    held: &Value,
    caller: &Value,
) {
    let proxy = hotline_testkit::TcpProxy::start(format!("127.0.0.1:{}", cluster.port).parse().unwrap()).await;
    let url = deployment.direct_url.replace(&format!("127.0.0.1:{}", cluster.port), &proxy.addr.to_string());
    // Its own cache prefix: the shared cache under the deployment's prefix is kept fresh by the
    // instances that still reach the database, and would rightly answer as fresh.
    let settings = [
        ("HOTLINE_DATABASE_URL", url.as_str()),
        ("HOTLINE_REDIS_PREFIX", "cut"),
        ("HOTLINE_CACHE_MAX_STALENESS_MS", "4000"),
        ("HOTLINE_WRITE_DEADLINE_MS", "2000"),
    ];
    let i = deployment.start_api(&settings).await;
    let base = deployment.apis[i].base.clone();
    let (issuer, serial) = drill::phone_certificates(held).remove(0);
    let client = reqwest::Client::builder().timeout(drill::ATTEMPT_TIMEOUT).build().unwrap();
    let status = || client.get(format!("{base}/v1/status/{issuer}/{serial}")).bearer_auth(&deployment.validator).send();
    let as_of = |body: &Value| chrono::DateTime::parse_from_rfc3339(body["as_of"].as_str().unwrap()).unwrap().to_utc();
    // Warm: answered from its caches, not from the database.
    for _ in 0..100 {
        assert_eq!(status().await.unwrap().json::<Value>().await.unwrap()["status"], "suspended");
        let metrics = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
        if metrics.contains(r#"source="near_cache",status="suspended""#) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cut_at = chrono::Utc::now();
    proxy.cut();
    let call = drill::phone_call(caller, "cut-1".into());
    let suspend = || {
        client
            .post(format!("{base}/v1/suspensions"))
            .bearer_auth(&deployment.operator)
            .header("Idempotency-Key", "cut-1")
            .json(&call.body)
            .send()
    };
    let refused = suspend().await.expect("answered within the write deadline, not hung");
    assert_eq!((refused.status().as_u16(), refused.headers().get("retry-after").is_some()), (503, true));
    let stale: Value = status().await.unwrap().json().await.unwrap();
    assert_eq!(stale["status"], "suspended", "{stale}");
    assert!(as_of(&stale) <= cut_at, "answered as of the last confirmation, never later: {stale}");
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    let gone = status().await.unwrap();
    assert_eq!(gone.status().as_u16(), 503, "past the maximum staleness");
    proxy.mend();
    let mut recovered = 0;
    for _ in 0..100 {
        recovered = suspend().await.map(|r| r.status().as_u16()).unwrap_or(0);
        if recovered == 201 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(recovered, 201, "the same key suspends once the network is back");
    let fresh: Value = status().await.unwrap().json().await.unwrap();
    assert!(as_of(&fresh) > cut_at, "fresh again: {fresh}");
}

async fn planned_and_partial_failures() {
    let mut cluster = PatroniCluster::start().await;
    let mut deployment = deploy(&cluster, 2_400).await;
    let (held, _, rest) = phone_holders(&deployment, 2, 0);
    hold_beforehand(&deployment, &held).await;
    let (switching, rest) = rest.split_at(300);
    let (losing, rest) = rest.split_at(300);
    let switched = switchover_under_a_stream(&cluster, &deployment, switching).await;
    acknowledged_once(&cluster, &deployment, &switched, held.len()).await;
    let stored = (held.len() + switched.len()) as i64;
    synchronous_standby_lost_under_a_stream(&mut cluster, &deployment, losing, stored).await;
    a_network_cut_between_an_instance_and_the_database(&cluster, &mut deployment, &held[0], &rest[0]).await;
    every_event_reached_the_ca_once(&cluster, &deployment).await;
    deployment.run(&["audit", "verify"]).await;
    nothing_restarted(&mut deployment);
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_primary_that_crashes_under_a_burst_loses_nothing_acknowledged_and_rejoins() {
        super::crash_failover().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_switchover_a_lost_synchronous_standby_and_a_network_cut_fail_no_request() {
        super::planned_and_partial_failures().await;
    }
}
