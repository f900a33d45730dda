//! The suspension benchmark. Every request suspends a different holder's card
//! (or smartphone, at night in Tokyo), so each one is a full transaction:
//! idempotency claim, holder lookup, two certificate holds, the suspension,
//! two outbox events, the audit append and the saved answer.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::common::{self, KEY, Target, db_url, free_port, psql};
use serde_json::Value;
use tokio::process::Command;
use tokio::sync::Mutex;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    /// Holders to seed; by default enough for the requests at any hour (at
    /// night only smartphone holders, about a third, can be reported).
    #[arg(long)]
    holders: Option<usize>,
    /// Holders seeded first, around the reported ones and never reported
    /// themselves: the registry's size under the same requests (37 500 make
    /// about 100 000 certificates, 3 750 000 about 10 000 000).
    #[arg(long, default_value_t = 0)]
    background: usize,
    #[arg(long, default_value_t = 5_000)]
    requests: usize,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seconds pgbench runs for the ceiling.
    #[arg(long, default_value_t = 15)]
    pgbench_seconds: u32,
    /// What the measured process runs: `serve` (the API, the CA sync worker
    /// delivering every suspension to an in-process CA meanwhile, as the
    /// embedded default does), or `api` (the API alone, its outbox left for a
    /// worker elsewhere: the suspension's own path, like for like with pgbench).
    #[arg(long, default_value = "serve", value_parser = ["serve", "api"])]
    role: String,
}

async fn hotline(args: &Args, db: &str, cli: &[&str]) -> anyhow::Result<String> {
    common::hotline(&args.target.hotline, db, &[], cli).await
}

/// Holders with smartphones among those seeded: about a third; seeding four
/// per request leaves a margin at night, when only they can be reported.
const HOLDERS_PER_NIGHT_REQUEST: usize = 4;
const WARM_UP: usize = 200;

pub async fn run(args: Args) -> anyhow::Result<()> {
    let seeded = args.holders.unwrap_or((args.requests + WARM_UP) * HOLDERS_PER_NIGHT_REQUEST);
    let db = db_url(&args.target.pg_url, "hotline_bench")?;
    psql(&args.target.pg_url, "DROP DATABASE IF EXISTS hotline_bench WITH (FORCE)").await?;
    psql(&args.target.pg_url, "CREATE DATABASE hotline_bench").await?;
    let samples_path = std::env::temp_dir().join("hotline-bench-samples.json");
    let samples_arg = samples_path.to_string_lossy().into_owned();
    hotline(&args, &db, &["migrate"]).await?;
    if args.background > 0 {
        eprintln!("seeding {} background holders…", args.background);
        hotline(&args, &db, &["seed", "--holders", &args.background.to_string()]).await?;
    }
    eprintln!("seeding {seeded} holders…");
    hotline(&args, &db, &["seed", "--holders", &seeded.to_string(), "--samples", &samples_arg]).await?;
    let token_out = hotline(&args, &db, &["token", "create", "--role", "operator", "--name", "bench"]).await?;
    let token = token_out.lines().last().context("no token printed")?.to_owned();
    let samples: Value = serde_json::from_slice(&std::fs::read(&samples_path)?)?;
    let holders = samples["holders"].as_array().context("no holders in the sample file")?.clone();
    if holders.len() < args.requests + WARM_UP {
        bail!("need at least {} holders for {} distinct requests plus warm-up", args.requests + WARM_UP, args.requests);
    }

    let port = free_port()?;
    let mut server = crate::common::hotline_command(&args.target.hotline)
        .args([args.role.as_str(), "--listen", &format!("127.0.0.1:{port}")])
        .env("HOTLINE_DATABASE_URL", &db)
        .env("HOTLINE_PII_KEY", KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build()?;
    for _ in 0..100 {
        if client.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // At night in Tokyo only smartphones are accepted: then every request is a smartphone report.
    let night = !common::cards_accepted(&client, &base, &token).await?;
    let pool: Vec<Value> =
        holders.iter().filter(|h| !night || common::has_phone(h)).map(|h| common::report(h, night)).collect();
    if pool.len() < args.requests + WARM_UP {
        bail!(
            "{} holders can be reported now ({}), {} are needed: seed about {} (--holders, or leave it out)",
            pool.len(),
            if night { "night in Tokyo: smartphone holders only" } else { "day" },
            args.requests + WARM_UP,
            (args.requests + WARM_UP) * HOLDERS_PER_NIGHT_REQUEST
        );
    }
    let (warmup, measured) = pool.split_at(WARM_UP);
    let measured = &measured[..args.requests];
    send_all(&client, &base, &token, warmup, args.concurrency).await?;
    let started = Instant::now();
    let (mut latencies, statuses) = send_all(&client, &base, &token, measured, args.concurrency).await?;
    let elapsed = started.elapsed();
    server.kill().await.ok();
    latencies.sort();

    eprintln!("pgbench ceiling: {} clients for {} s…", args.concurrency, args.pgbench_seconds);
    psql(&args.target.pg_url, "DROP DATABASE IF EXISTS hotline_pgbench WITH (FORCE)").await?;
    psql(&args.target.pg_url, "CREATE DATABASE hotline_pgbench").await?;
    let pgbench_db = db_url(&args.target.pg_url, "hotline_pgbench")?;
    let init = Command::new("pgbench").args(["-q", "-i", "-s", "10", &pgbench_db]).output().await?;
    anyhow::ensure!(init.status.success(), "pgbench -i failed: {}", String::from_utf8_lossy(&init.stderr));
    let c = args.concurrency.to_string();
    let t = args.pgbench_seconds.to_string();
    let bench = Command::new("pgbench").args(["-c", &c, "-j", "2", "-T", &t, "-n", &pgbench_db]).output().await?;
    let report = String::from_utf8_lossy(&bench.stdout).into_owned();
    let pg_tps = report
        .lines()
        .find(|l| l.starts_with("tps"))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    let pg_latency = report
        .lines()
        .find(|l| l.starts_with("latency average"))
        .map(|l| l.trim_start_matches("latency average = ").to_owned())
        .unwrap_or_default();
    psql(&args.target.pg_url, "DROP DATABASE IF EXISTS hotline_pgbench WITH (FORCE)").await?;
    psql(&args.target.pg_url, "DROP DATABASE IF EXISTS hotline_bench WITH (FORCE)").await?;

    let rate = measured.len() as f64 / elapsed.as_secs_f64();
    println!(
        "POST /v1/suspensions on PostgreSQL (hotline {}), {} requests, concurrency {}, items: {}, registry of {} holders",
        args.role,
        measured.len(),
        args.concurrency,
        if night { "smartphone" } else { "card" },
        args.background + seeded
    );
    println!("statuses: {statuses:?}");
    println!("| metric | value |");
    println!("|---|---|");
    println!("| suspensions/s | {rate:.0} |");
    common::print_latency_rows(&latencies);
    println!("| pgbench TPC-B tps, same concurrency (ceiling) | {pg_tps:.0} (latency average {pg_latency}) |");
    if pg_tps > 0.0 {
        println!("| ratio suspensions/s : pgbench tps | {:.2} |", rate / pg_tps);
    }
    Ok(())
}

pub(crate) async fn send_all(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    bodies: &[Value],
    concurrency: usize,
) -> anyhow::Result<(Vec<Duration>, std::collections::BTreeMap<u16, usize>)> {
    let queue = Arc::new(Mutex::new(bodies.iter().cloned().enumerate().collect::<Vec<_>>()));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (queue, client, base, token) = (queue.clone(), client.clone(), base.to_owned(), token.to_owned());
        workers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                let Some((i, body)) = queue.lock().await.pop() else { break };
                let start = Instant::now();
                let status = client
                    .post(format!("{base}/v1/suspensions"))
                    .bearer_auth(&token)
                    .header("Idempotency-Key", format!("bench-{i}-{}", uuid::Uuid::new_v4()))
                    .json(&body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0);
                seen.push((start.elapsed(), status));
            }
            seen
        }));
    }
    let mut latencies = Vec::with_capacity(bodies.len());
    let mut statuses = std::collections::BTreeMap::new();
    for w in workers {
        for (d, s) in w.await? {
            latencies.push(d);
            *statuses.entry(s).or_insert(0) += 1;
        }
    }
    Ok((latencies, statuses))
}
