//! `hotline cache rebuild` at national scale: a registry of about 1 000 000
//! certificates of which 100 000 are held, rebuilt into an empty Redis; wall
//! time, the rebuilding process's peak memory, and Redis's memory for it.
//!
//! The held certificates are marked with one SQL statement rather than 50 000
//! API calls: the subject here is the rebuild, and the snapshot reads the
//! certificates table, not how the statuses got there.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::Command;

use crate::common::{KEY, Target, free_port, fresh_database, hotline, psql, redis_server};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    /// 375 000 holders carry about 1 000 000 certificates.
    #[arg(long, default_value_t = 375_000)]
    holders: usize,
    #[arg(long, default_value_t = 100_000)]
    held: usize,
}

async fn redis_used_memory(port: u16) -> anyhow::Result<u64> {
    let out = Command::new("redis-cli").args(["-p", &port.to_string(), "INFO", "memory"]).output().await?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:").and_then(|v| v.trim().parse().ok()))
        .context("no used_memory in INFO")
}

/// The peak resident set (VmHWM, kB) of a running process.
fn peak_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let db = fresh_database(&args.target.pg_url, "hotline_bench_rebuild").await?;
    hotline(&args.target.hotline, &db, &[], &["migrate"]).await?;
    eprintln!("seeding {} holders…", args.holders);
    let seeded = Instant::now();
    hotline(&args.target.hotline, &db, &[], &["seed", "--holders", &args.holders.to_string()]).await?;
    let seed_time = seeded.elapsed();
    psql(
        &db,
        &format!(
            "UPDATE certificates SET status = 'suspended', reason = 'certificate_hold'
              WHERE id IN (SELECT id FROM certificates ORDER BY random() LIMIT {})",
            args.held
        ),
    )
    .await?;
    let count = Command::new("psql")
        .args(["-At", "-d", &db, "-c", "SELECT count(*), count(*) FILTER (WHERE status <> 'good') FROM certificates"])
        .output()
        .await?;
    let counts = String::from_utf8_lossy(&count.stdout).trim().to_owned();

    let port = free_port()?;
    let _redis = redis_server(port)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = redis_used_memory(port).await?;
    let started = Instant::now();
    let mut child = crate::common::hotline_command(&args.target.hotline)
        .args(["cache", "rebuild"])
        .env("HOTLINE_DATABASE_URL", &db)
        .env("HOTLINE_PII_KEY", KEY)
        .env("HOTLINE_REDIS_URL", format!("redis://127.0.0.1:{port}"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let pid = child.id().context("no pid")?;
    let mut peak = 0;
    let status = loop {
        if let Some(kb) = peak_kb(pid) {
            peak = peak.max(kb);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let elapsed = started.elapsed();
    if !status.success() {
        bail!("hotline cache rebuild failed");
    }
    let after = redis_used_memory(port).await?;
    psql(&args.target.pg_url, "DROP DATABASE IF EXISTS hotline_bench_rebuild WITH (FORCE)").await?;
    println!(
        "hotline cache rebuild: certificates (all, not good) = {counts}; seeding took {:.0} s",
        seed_time.as_secs_f64()
    );
    println!("| wall time | peak RSS of the rebuilding process | Redis memory for the cache | per held entry |");
    println!("|---|---|---|---|");
    println!(
        "| {:.2} s | {:.1} MB | {:.1} MB | {:.0} bytes |",
        elapsed.as_secs_f64(),
        peak as f64 / 1024.0,
        (after - before) as f64 / 1e6,
        (after - before) as f64 / args.held as f64
    );
    Ok(())
}
