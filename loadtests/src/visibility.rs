//! Suspension → visible through another instance: two API instances share one
//! database and one Redis; each suspension goes to instance A, and instance B
//! is polled until it answers `suspended`. Latency counts from A's 201.

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::process::Child;

use crate::common::{
    KEY, Target, free_port, fresh_database, has_phone, hotline, ms, percentile, redis_server, suspend_phone, token,
    wait_ready,
};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    #[arg(long, default_value_t = 1_000)]
    suspensions: usize,
}

fn serve(bin: &str, db: &str, redis: &str, port: u16) -> anyhow::Result<Child> {
    Ok(crate::common::hotline_command(bin)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("HOTLINE_DATABASE_URL", db)
        .env("HOTLINE_PII_KEY", KEY)
        .env("HOTLINE_REDIS_URL", redis)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?)
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let db = fresh_database(&args.target.pg_url, "hotline_bench_visibility").await?;
    let redis_port = free_port()?;
    let _redis = redis_server(redis_port)?;
    let redis = format!("redis://127.0.0.1:{redis_port}");
    let samples = std::env::temp_dir().join("hotline-bench-visibility.json");
    hotline(&args.target.hotline, &db, &[], &["migrate"]).await?;
    let holders = (args.suspensions * 4).to_string();
    hotline(&args.target.hotline, &db, &[], &["seed", "--holders", &holders, "--samples", &samples.to_string_lossy()])
        .await?;
    let operator = token(&args.target.hotline, &db, "operator").await?;
    let validator = token(&args.target.hotline, &db, "validator").await?;
    let all: Value = serde_json::from_slice(&std::fs::read(&samples)?)?;
    let all = all["holders"].as_array().context("no holders")?.clone();
    // Smartphone reports are accepted at any hour, so the benchmark runs day or night.
    let phones: Vec<&Value> = all.iter().filter(|h| has_phone(h)).collect();
    if phones.len() < args.suspensions {
        bail!("only {} holders with smartphones", phones.len());
    }
    let (pa, pb) = (free_port()?, free_port()?);
    let _a = serve(&args.target.hotline, &db, &redis, pa)?;
    let _b = serve(&args.target.hotline, &db, &redis, pb)?;
    let client = reqwest::Client::new();
    let (a, b) = (format!("http://127.0.0.1:{pa}"), format!("http://127.0.0.1:{pb}"));
    wait_ready(&client, &format!("{a}/readyz")).await?;
    wait_ready(&client, &format!("{b}/readyz")).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut latencies = Vec::with_capacity(args.suspensions);
    for (i, h) in phones.iter().take(args.suspensions).enumerate() {
        let (answer, committed) = suspend_phone(&client, &a, &operator, &format!("v{i}"), h).await?;
        let cert = &answer["certificates"][0];
        let url = format!(
            "{b}/v1/status/{}/{}",
            cert["issuer"].as_str().unwrap_or(""),
            cert["serial"].as_str().unwrap_or("")
        );
        loop {
            let seen: Value = client.get(&url).bearer_auth(&validator).send().await?.json().await?;
            if seen["status"] == "suspended" {
                latencies.push(committed.elapsed());
                break;
            }
            if committed.elapsed() > Duration::from_secs(10) {
                bail!("suspension {i} not visible through B after 10 s");
            }
        }
    }
    latencies.sort();
    let metrics = client.get(format!("{b}/metrics")).send().await?.text().await?;
    let sources: Vec<&str> = metrics.lines().filter(|l| l.starts_with("hotline_status_answers_total{")).collect();
    println!("Suspension through instance A → visible through instance B, {} suspensions, sequential", latencies.len());
    println!("| p50 | p90 | p99 | max |");
    println!("|---|---|---|---|");
    println!(
        "| {} | {} | {} | {} |",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.9)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default())
    );
    println!("B's answers by source: {sources:?}");
    Ok(())
}
