//! The CA sync benchmark, on PostgreSQL with the real `ca-sim` (release
//! build) adding latency to every revocation request.
//!
//! 1. **Lag**: `hotline api` and one `hotline worker` as separate processes;
//!    suspensions sent open-loop at a steady rate; the lag of every event is
//!    read back from the outbox (`done_at - created_at`, both written by the
//!    service) once it has drained.
//! 2. **Drain rate**: a backlog of hold events written straight into the
//!    outbox, then drained by one worker and (on a fresh backlog and CA) by
//!    two. The ceiling is the CA itself: the same number of requests sent
//!    straight to ca-sim at the same total concurrency, with no database.
//!    With `--history N`, N delivered events are in the outbox first.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;
use tokio::process::Child;

use crate::common::{self, KEY, Target, free_port, fresh_database, psql, psql_value};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    /// The ca-sim binary (build it with `cargo build --release`).
    #[arg(long, default_value = "target/release/ca-sim")]
    ca_sim: String,
    /// Added CA latency per revocation request (ms).
    #[arg(long, default_value_t = 20)]
    ca_latency_ms: u64,
    /// Steady suspension rate for the lag measurement (per second).
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// How long the steady rate is held (s).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Outbox events in the drain-rate backlog.
    #[arg(long, default_value_t = 20_000)]
    backlog: usize,
    /// Delivered events already in the outbox when each drain starts, as a
    /// deployment's outbox holds after months: a claim must not read them.
    #[arg(long, default_value_t = 0)]
    history: usize,
    /// Events each worker sends at once (HOTLINE_WORKER_CONCURRENCY).
    #[arg(long, default_value_t = 16)]
    worker_concurrency: usize,
}

async fn start_ca(args: &Args) -> anyhow::Result<common::CaSim> {
    common::ca_sim(&args.ca_sim, &["--latency-ms", &args.ca_latency_ms.to_string()]).await
}

fn spawn_hotline(args: &Args, db: &str, ca: &str, cli: &[&str]) -> anyhow::Result<Child> {
    Ok(common::hotline_command(&args.target.hotline)
        .args(cli)
        .env("HOTLINE_DATABASE_URL", db)
        .env("HOTLINE_PII_KEY", KEY)
        .env("HOTLINE_CA_URL", ca)
        .env("HOTLINE_WORKER_CONCURRENCY", args.worker_concurrency.to_string())
        .env("HOTLINE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?)
}

async fn pending(db: &str) -> anyhow::Result<i64> {
    Ok(psql_value(db, "SELECT COUNT(*) FROM outbox WHERE state = 'pending'").await?.parse()?)
}

async fn wait_drained(db: &str, limit: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    while pending(db).await? > 0 {
        anyhow::ensure!(started.elapsed() < limit, "the outbox did not drain within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(started.elapsed())
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    lag(&args).await?;
    drain_rates(&args).await?;
    crash_recovery(&args).await
}

async fn lag(args: &Args) -> anyhow::Result<()> {
    let total = (args.rate * args.seconds) as usize;
    let db = fresh_database(&args.target.pg_url, "hotline_bench_ca").await?;
    common::hotline(&args.target.hotline, &db, &[], &["migrate"]).await?;
    let samples_path = std::env::temp_dir().join("hotline-bench-ca-samples.json");
    // About a third of synthetic holders have a smartphone.
    let holders_needed = total * 3 + 300;
    eprintln!("seeding {holders_needed} holders…");
    common::hotline(
        &args.target.hotline,
        &db,
        &[],
        &["seed", "--holders", &holders_needed.to_string(), "--samples", &samples_path.to_string_lossy()],
    )
    .await?;
    let token = common::token(&args.target.hotline, &db, "operator").await?;
    let samples: Value = serde_json::from_slice(&std::fs::read(&samples_path)?)?;
    let holders = samples["holders"].as_array().context("no holders")?.clone();

    let ca = start_ca(args).await?;
    let port = free_port()?;
    let _api = spawn_hotline(args, &db, &ca.url, &["api", "--listen", &format!("127.0.0.1:{port}")])?;
    let _worker = spawn_hotline(args, &db, &ca.url, &["worker", "--listen", "127.0.0.1:0"])?;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    common::wait_ready(&client, &format!("{base}/readyz")).await?;

    // Smartphone reports are accepted at any hour, so the benchmark runs day or night.
    let bodies: Vec<Value> =
        holders.iter().filter(|h| common::has_phone(h)).map(|h| common::report(h, true)).take(total).collect();
    anyhow::ensure!(bodies.len() == total, "only {} smartphone holders for {total} requests", bodies.len());
    eprintln!("{} suspensions/s for {} s, CA latency {} ms…", args.rate, args.seconds, args.ca_latency_ms);
    let token = Arc::new(token);
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / args.rate));
    let mut sent = Vec::with_capacity(total);
    let started = Instant::now();
    for (i, body) in bodies.into_iter().enumerate() {
        ticker.tick().await;
        let (client, base, token) = (client.clone(), base.clone(), token.clone());
        sent.push(tokio::spawn(async move {
            client
                .post(format!("{base}/v1/suspensions"))
                .bearer_auth(token.as_str())
                .header("Idempotency-Key", format!("lag-{i}"))
                .json(&body)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }));
    }
    let mut created = 0;
    for s in sent {
        created += usize::from(s.await? == 201);
    }
    let offered = started.elapsed();
    wait_drained(&db, Duration::from_secs(120)).await?;
    let lags = psql_value(
        &db,
        "SELECT string_agg((EXTRACT(EPOCH FROM (done_at::timestamptz - created_at::timestamptz)) * 1000000)::bigint::text, ',')
           FROM outbox WHERE state = 'done'",
    )
    .await?;
    let mut lags: Vec<Duration> =
        lags.split(',').filter_map(|v| v.parse::<u64>().ok()).map(Duration::from_micros).collect();
    lags.sort();
    println!(
        "CA sync lag, commit → CA confirmation: {created}/{total} suspensions (201) at {:.0}/s, {} events, CA latency {} ms, one worker",
        created as f64 / offered.as_secs_f64(),
        lags.len(),
        args.ca_latency_ms
    );
    println!("| metric | value |");
    println!("|---|---|");
    common::print_latency_rows(&lags);
    drop(ca);
    psql(&args.target.pg_url, "DROP DATABASE IF EXISTS hotline_bench_ca WITH (FORCE)").await
}

async fn drain_rates(args: &Args) -> anyhow::Result<()> {
    let db = fresh_database(&args.target.pg_url, "hotline_bench_drain").await?;
    common::hotline(&args.target.hotline, &db, &[], &["migrate"]).await?;
    let holders = args.backlog / 2 + 100;
    eprintln!("seeding {holders} holders…");
    common::hotline(&args.target.hotline, &db, &[], &["seed", "--holders", &holders.to_string()]).await?;
    println!(
        "Outbox drain rate, {} hold events behind {} delivered ones, CA latency {} ms, {} events in flight per worker",
        args.backlog, args.history, args.ca_latency_ms, args.worker_concurrency
    );
    println!("| workers | events/s | CA ceiling, same total concurrency (events/s) | ratio |");
    println!("|---|---|---|---|");
    for workers in [1usize, 2] {
        psql(&db, "TRUNCATE outbox").await?;
        if args.history > 0 {
            eprintln!("writing {} delivered events…", args.history);
            psql(&db, &history(args.history)).await?;
            psql(&db, "VACUUM ANALYZE outbox").await?;
        }
        let backlog = format!(
            "INSERT INTO outbox (event_id, certificate_id, issuer, serial, action, reason, created_at, next_attempt_at)
             SELECT gen_random_uuid()::text, id, issuer, serial, 'hold', 'certificate_hold',
                    to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
                    to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')
               FROM certificates ORDER BY id LIMIT {}",
            args.backlog
        );
        psql(&db, &backlog).await?;
        let events: usize = pending(&db).await?.try_into()?;
        let ca = start_ca(args).await?;
        let started = Instant::now();
        let mut children = Vec::new();
        for _ in 0..workers {
            children.push(spawn_hotline(args, &db, &ca.url, &["worker", "--listen", "127.0.0.1:0"])?);
        }
        wait_drained(&db, Duration::from_secs(600)).await?;
        let rate = events as f64 / started.elapsed().as_secs_f64();
        for mut c in children {
            c.kill().await.ok();
        }
        let ceiling = ca_ceiling(&ca.url, events.min(5_000), workers * args.worker_concurrency).await?;
        println!("| {workers} | {rate:.0} | {ceiling:.0} | {:.2} |", rate / ceiling);
        let mut ca = ca;
        ca.child.kill().await.ok();
    }
    psql(&args.target.pg_url, "DROP DATABASE IF EXISTS hotline_bench_drain WITH (FORCE)").await
}

/// `n` delivered events spread over the registry's certificates, delivered
/// a day or more before the backlog was written.
fn history(n: usize) -> String {
    format!(
        "INSERT INTO outbox (event_id, certificate_id, issuer, serial, action, reason, created_at, next_attempt_at, state, done_at)
         SELECT 'history-' || g || '-' || c.id, c.id, c.issuer, c.serial, 'hold', 'certificate_hold', t, t, 'done', t
           FROM (SELECT to_char((now() - interval '1 day') AT TIME ZONE 'UTC' - g * interval '1 ms',
                                'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS t, g
                   FROM generate_series(1, {n}) g) h
           JOIN certificates c ON c.id = 1 + h.g % (SELECT MAX(id) FROM certificates)"
    )
}

/// A worker killed with SIGKILL part way through a backlog, and a new one
/// started at once: how long until every event is confirmed after the
/// restart (the dead worker's leases must run out first), and whether the
/// CA applied each event exactly once.
async fn crash_recovery(args: &Args) -> anyhow::Result<()> {
    let db = fresh_database(&args.target.pg_url, "hotline_bench_recovery").await?;
    common::hotline(&args.target.hotline, &db, &[], &["migrate"]).await?;
    let events = 2_000usize;
    common::hotline(&args.target.hotline, &db, &[], &["seed", "--holders", &(events / 2 + 100).to_string()]).await?;
    let backlog = format!(
        "INSERT INTO outbox (event_id, certificate_id, issuer, serial, action, reason, created_at, next_attempt_at)
         SELECT gen_random_uuid()::text, id, issuer, serial, 'hold', 'certificate_hold',
                to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
                to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')
           FROM certificates ORDER BY id LIMIT {events}"
    );
    psql(&db, &backlog).await?;
    let ca = start_ca(args).await?;
    let mut first = spawn_hotline(args, &db, &ca.url, &["worker", "--listen", "127.0.0.1:0"])?;
    while pending(&db).await? as usize > events * 3 / 4 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().await?;
    let held: i64 = psql_value(&db, "SELECT COUNT(*) FROM outbox WHERE state = 'pending' AND leased_by IS NOT NULL")
        .await?
        .parse()?;
    let left = pending(&db).await?;
    let _second = spawn_hotline(args, &db, &ca.url, &["worker", "--listen", "127.0.0.1:0"])?;
    let recovered = wait_drained(&db, Duration::from_secs(600)).await?;
    let stats: Value = reqwest::Client::new().get(format!("{}/v1/stats", ca.url)).send().await?.json().await?;
    let applied = stats["applied"].as_object().context("no stats")?;
    let once = applied.len() == events && applied.values().all(|n| n == 1);
    println!(
        "Worker killed (SIGKILL) with {left} of {events} events pending, {held} of them leased to it; CA latency {} ms; \
         default lease ({} ms, renewed every third):",
        args.ca_latency_ms, 5_000
    );
    println!(
        "every event confirmed {:.1} s after the restart; each applied exactly once at the CA: {once}",
        recovered.as_secs_f64()
    );
    drop(ca);
    psql(&args.target.pg_url, "DROP DATABASE IF EXISTS hotline_bench_recovery WITH (FORCE)").await
}

/// Revocations per second ca-sim takes straight from a client at `concurrency`, no database involved.
async fn ca_ceiling(url: &str, requests: usize, concurrency: usize) -> anyhow::Result<f64> {
    let client = hotline_ca::CaClient::new(url, Duration::from_secs(5))?;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, next) = (client.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= requests {
                    break;
                }
                let request = hotline_ca::RevocationRequest {
                    event_id: format!("ceiling-{i}"),
                    issuer: "jpki-auth".into(),
                    serial: format!("{:016x}", 0x7f00_0000_0000_0000_u64 + i as u64),
                    action: hotline_core::CaAction::Hold,
                    reason: hotline_core::RevocationReason::CertificateHold,
                };
                let _ = client.send(&request).await;
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    Ok(requests as f64 / started.elapsed().as_secs_f64())
}
