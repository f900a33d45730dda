//! The failover drill as a benchmark: a replicated PostgreSQL of its own
//! (etcd, three Patroni nodes in synchronous mode, HAProxy: the test kit's
//! `PatroniCluster`, from the deployment's files), two `hotline api`
//! processes and a worker of the release binary through HAProxy, operators
//! suspending smartphones at a steady rate and validators asking all the
//! while. Each round kills the primary (SIGKILL of its Patroni and
//! postmaster) and reports the time to a new primary, the time to the first
//! suspension acknowledged after the kill, the share of validator queries
//! answered from a second before the kill to six seconds after the new
//! primary, and what was acknowledged and lost; the killed node then rejoins.
//! Then switchovers under the same stream, without retries: every failed
//! request counts.
//!
//! `cluster` starts the same cluster and prints its URL, for the other
//! benchmarks to measure on it (`suspend --pg-url …`: the service and
//! pgbench through the same HAProxy).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hotline_testkit::drill::{self, Answered, Call, Watched};
use hotline_testkit::{Deployment, PatroniCluster};
use serde_json::Value;

#[derive(clap::Args)]
pub struct Args {
    /// The hotline binary to measure (build it with `cargo build --release`).
    #[arg(long, default_value = "target/release/hotline")]
    hotline: String,
    /// Crash failovers, each followed by the killed node's rejoining.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Planned switchovers after them.
    #[arg(long, default_value_t = 2)]
    switchovers: usize,
    /// Operators suspending at once.
    #[arg(long, default_value_t = 8)]
    operators: usize,
    /// Suspensions per second, all operators together: a steady stream through each round.
    #[arg(long, default_value_t = 50)]
    rate: u32,
}

/// Calls each round may take: a round lasts about 20 s.
const CALLS_PER_ROUND: usize = 1_200;

/// One crash failover as measured.
struct Round {
    to_new_primary: Duration,
    to_first_write: Duration,
    watched: Watched,
    acknowledged: usize,
    outages: u32,
    longest: Duration,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut cluster = PatroniCluster::start().await;
    let database = cluster.create_service_database().await;
    let settings = [("HOTLINE_DATABASE_SYNCHRONOUS_STANDBY", "true")];
    let rounds = args.rounds + args.switchovers;
    // About a third of the seeded holders have a smartphone.
    let holders = 3 * CALLS_PER_ROUND * rounds + 100;
    let mut deployment = Deployment::prepare(Path::new(&args.hotline), &database, holders, &settings).await;
    for _ in 0..2 {
        deployment.start_api(&[]).await;
    }
    deployment.start_worker().await;
    let mut phones = deployment
        .holders
        .iter()
        .filter(|h| h["smartphones"].as_array().is_some_and(|p| !p.is_empty()))
        .cloned()
        .collect::<Vec<Value>>()
        .into_iter();
    let watched: Vec<Value> = phones.by_ref().take(20).collect();
    let certificates: Vec<(String, String, &'static str)> =
        watched.iter().flat_map(drill::phone_certificates).map(|(i, s)| (i, s, "good")).collect();
    let pace = Duration::from_secs_f64(args.operators as f64 / f64::from(args.rate.max(1)));
    let stream = |retry| drill::Operators { clients: args.operators, retry, pace: Some(pace) };
    let mut acknowledged = 0;
    let mut measured = Vec::new();
    for round in 1..=args.rounds {
        let calls = round_calls(&mut phones, &format!("r{round}"));
        let result = crash_round(&mut cluster, &deployment, calls, certificates.clone(), stream(true)).await;
        acknowledged += result.acknowledged;
        let stored = stored_suspensions(&cluster, &deployment).await;
        print_round(round, &result, acknowledged, stored);
        measured.push(result);
    }
    print_summary(&measured);
    for switchover in 1..=args.switchovers {
        let calls = round_calls(&mut phones, &format!("s{switchover}"));
        let (answered, failed) = switchover_round(&cluster, &deployment, calls, stream(false)).await;
        println!("switchover {switchover}: {answered} suspensions sent during it, {failed} failed");
    }
    Ok(())
}

/// The next round's calls: smartphone suspensions of holders not reported yet, keyed `{prefix}-{n}`.
fn round_calls(phones: &mut impl Iterator<Item = Value>, prefix: &str) -> Vec<Call> {
    phones.take(CALLS_PER_ROUND).enumerate().map(|(i, h)| drill::phone_call(&h, format!("{prefix}-{i}"))).collect()
}

async fn stored_suspensions(cluster: &PatroniCluster, deployment: &Deployment) -> i64 {
    let url = cluster.url_of(deployment.database());
    Deployment::scalar(&url, "SELECT COUNT(*) FROM suspensions").await.unwrap_or(-1)
}

/// A steady stream, the primary killed two seconds in, stopped three seconds after writes are back.
async fn crash_round(
    cluster: &mut PatroniCluster,
    deployment: &Deployment,
    calls: Vec<Call>,
    certificates: Vec<(String, String, &'static str)>,
    how: drill::Operators,
) -> Round {
    let (leader, _) = cluster.wait_healthy(Duration::from_secs(60)).await;
    let (stop_operators, stop_validators) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let begun = Instant::now();
    let operators = {
        let (bases, token, stop) = (deployment.bases(), deployment.operator.clone(), stop_operators.clone());
        tokio::spawn(async move { drill::operators_until(&bases, &token, calls, how, stop).await })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let validators = {
        let (bases, token, stop) = (deployment.bases(), deployment.validator.clone(), stop_validators.clone());
        tokio::spawn(drill::validators(bases, token, certificates, stop))
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let killed_at = begun.elapsed();
    cluster.kill(&leader);
    let to_new_primary = until_a_new_leader(cluster, &leader).await;
    // Writes are back when a suspension is acknowledged after the kill; the
    // operators' answers say when, once they stop, so stop them a while after the new primary.
    tokio::time::sleep(Duration::from_secs(6)).await;
    stop_validators.store(true, Ordering::Relaxed);
    stop_operators.store(true, Ordering::Relaxed);
    let answered: Vec<Answered> = operators.await.unwrap_or_default();
    let watched = validators.await.unwrap_or_default();
    // Writes are back with the first suspension acknowledged for an attempt sent after the kill:
    // only the new primary can have committed it.
    let first_after = answered.iter().filter(|a| a.last_sent_at > killed_at).filter_map(|a| a.acknowledged_at).min();
    cluster.start_node(&leader);
    Round {
        to_new_primary,
        to_first_write: first_after.map_or(Duration::MAX, |t| t - killed_at),
        watched,
        acknowledged: answered.iter().filter(|a| a.status == 201).count(),
        outages: answered.iter().map(|a| a.outages).sum(),
        longest: answered.iter().map(|a| a.longest).max().unwrap_or_default(),
    }
}

/// From the kill until another member holds the leader key.
async fn until_a_new_leader(cluster: &PatroniCluster, old: &str) -> Duration {
    let began = Instant::now();
    loop {
        if cluster.with_role("leader").await.is_some_and(|l| l != old) {
            return began.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `patronictl switchover` under a steady stream without retries: how many were sent during it and how many failed.
async fn switchover_round(
    cluster: &PatroniCluster,
    deployment: &Deployment,
    calls: Vec<Call>,
    how: drill::Operators,
) -> (usize, usize) {
    let (leader, sync) = cluster.wait_healthy(Duration::from_secs(120)).await;
    let stop = Arc::new(AtomicBool::new(false));
    let operators = {
        let (bases, token, stop) = (deployment.bases(), deployment.operator.clone(), stop.clone());
        tokio::spawn(async move { drill::operators_until(&bases, &token, calls, how, stop).await })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let out = cluster.switchover(&leader, &sync).await;
    if !out.status.success() {
        eprintln!("patronictl switchover: {}", String::from_utf8_lossy(&out.stderr));
    }
    cluster.wait_healthy(Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let answered = operators.await.unwrap_or_default();
    (answered.len(), answered.iter().filter(|a| a.status != 201).count())
}

fn print_round(round: usize, r: &Round, acknowledged: usize, stored: i64) {
    let w = &r.watched;
    let share = w.answered as f64 / (w.answered + w.unanswered).max(1) as f64;
    println!(
        "round {round}: new primary {:.1} s, first suspension {:.1} s after the kill; validators {:.2} % answered ({} of {}, oldest as_of {:.1} s, false {}); {} acknowledged this round, {} attempts met an outage, longest attempt {:.1} s; acknowledged so far {acknowledged}, stored {stored}",
        r.to_new_primary.as_secs_f64(),
        r.to_first_write.as_secs_f64(),
        share * 100.0,
        w.answered,
        w.answered + w.unanswered,
        w.oldest_as_of_age.as_secs_f64(),
        w.false_answers.len(),
        r.acknowledged,
        r.outages,
        r.longest.as_secs_f64(),
    );
}

fn print_summary(rounds: &[Round]) {
    let worst = |f: &dyn Fn(&Round) -> f64| rounds.iter().map(f).fold(0.0, f64::max);
    let answered: u64 = rounds.iter().map(|r| r.watched.answered).sum();
    let asked: u64 = rounds.iter().map(|r| r.watched.answered + r.watched.unanswered).sum();
    println!(
        "over {} crash failovers: new primary within {:.1} s, writes back within {:.1} s of the kill (worst); validators {:.2} % answered in all",
        rounds.len(),
        worst(&|r| r.to_new_primary.as_secs_f64()),
        worst(&|r| r.to_first_write.as_secs_f64()),
        answered as f64 * 100.0 / asked.max(1) as f64,
    );
}

/// `cluster`: the same cluster, its URL printed, until interrupted.
pub async fn cluster() -> anyhow::Result<()> {
    let cluster = PatroniCluster::start().await;
    println!("{}", cluster.url());
    eprintln!("a Patroni cluster behind HAProxy; Ctrl-C stops it");
    tokio::signal::ctrl_c().await?;
    drop(cluster);
    Ok(())
}
