//! The validator status benchmark. It builds a deployment with its own Redis
//! and an API instance (`hotline api`, as validators reach it; the CA sync
//! worker runs in a process of its own), about 100 000 certificates of which
//! 10 000 are held (suspended through the API: cards by day, smartphones at
//! night in Tokyo), then measures in one run on the same machine:
//! - in alternating rounds, with the same wrk settings and the same requests
//!   (the same Lua script, paths and Authorization header): nginx answering a
//!   static 200 (the HTTP ceiling) and `GET /v1/status/{issuer}/{serial}`
//!   over a mix of held and good serials; the ratio is taken per round, so a
//!   machine that speeds up or slows down between rounds moves both;
//! - `redis-benchmark -t get` (the Redis ceiling);
//! - the status endpoint at half its measured maximum rate, open loop, with
//!   latency counted from each request's scheduled send time, and nginx at the
//!   same rate with the same client and requests.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::process::Command;

use crate::common::{
    KEY, Target, cards_accepted, free_port, fresh_database, has_phone, hotline, ms, redis_server, report,
    reported_certificates, token, wait_ready,
};
use crate::harness::{Nginx, OpenLoop, median, open_loop, spawn_logging_to, wrk};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    /// Holders to seed: 37 500 holders carry about 100 000 certificates.
    #[arg(long, default_value_t = 37_500)]
    holders: usize,
    /// Reports to make (two certificates each): cards by day, smartphones at
    /// night in Tokyo, when the line accepts nothing else.
    #[arg(long, default_value_t = 5_000)]
    held: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// Alternating rounds of nginx and the status endpoint.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Keep-alive connections of the open-loop client.
    #[arg(long, default_value_t = 64)]
    lanes: usize,
    #[arg(long, default_value_t = 64)]
    connections: u32,
    /// Extra environment for the hotline server, as NAME=VALUE (repeatable).
    #[arg(long = "server-env")]
    server_env: Vec<String>,
    /// Writes each open-loop request as `due_ms,latency_us` to
    /// `status.csv` and `nginx.csv` in this directory, to see when the tail
    /// happens, not only how long it is, and the server's log to `server.log`.
    #[arg(long)]
    timeline: Option<std::path::PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let db = fresh_database(&args.target.pg_url, "hotline_bench_status").await?;
    let dir = std::env::temp_dir().join(format!("hotline-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let redis_port = free_port()?;
    let _redis = redis_server(redis_port)?;
    let redis_url = format!("redis://127.0.0.1:{redis_port}");
    let samples = dir.join("samples.json");
    hotline(&args.target.hotline, &db, &[], &["migrate"]).await?;
    eprintln!("seeding {} holders…", args.holders);
    hotline(
        &args.target.hotline,
        &db,
        &[],
        &["seed", "--holders", &args.holders.to_string(), "--samples", &samples.to_string_lossy()],
    )
    .await?;
    let operator = token(&args.target.hotline, &db, "operator").await?;
    let validator = token(&args.target.hotline, &db, "validator").await?;
    let holders: Value = serde_json::from_slice(&std::fs::read(&samples)?)?;
    let holders = holders["holders"].as_array().context("no holders")?.clone();
    let certificates: usize = holders
        .iter()
        .map(|h| {
            h["card"]["certificates"].as_array().map_or(0, Vec::len)
                + h["smartphones"]
                    .as_array()
                    .map_or(0, |p| p.iter().map(|p| p["certificates"].as_array().map_or(0, Vec::len)).sum())
        })
        .sum();

    let port = free_port()?;
    let mut server = crate::common::hotline_command(&args.target.hotline);
    server
        .args(["api", "--listen", &format!("127.0.0.1:{port}")])
        .env("HOTLINE_DATABASE_URL", &db)
        .env("HOTLINE_PII_KEY", KEY)
        .env("HOTLINE_REDIS_URL", &redis_url);
    for kv in &args.server_env {
        let (k, v) = kv.split_once('=').context("--server-env takes NAME=VALUE")?;
        server.env(k, v);
    }
    // With --timeline the server's log goes beside the timelines, to line up what it said with when.
    let log = match &args.timeline {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
            Stdio::from(std::fs::File::create(dir.join("server.log"))?)
        }
        None => Stdio::null(),
    };
    let server = spawn_logging_to(&mut server, log)?;
    let server_pid = server.id().context("the server exited at once")?;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    wait_ready(&client, &format!("{base}/readyz")).await?;

    // Cards by day; by night in Tokyo the line accepts only smartphones, so then smartphones.
    let phones = !cards_accepted(&client, &base, &operator).await?;
    let reported: Vec<&Value> = holders.iter().filter(|h| !phones || has_phone(h)).take(args.held).collect();
    eprintln!("suspending {} {} through the API…", reported.len(), if phones { "smartphones" } else { "cards" });
    let bodies: Vec<Value> = reported.iter().map(|h| report(h, phones)).collect();
    let (_, statuses) = crate::suspend::send_all(&client, &base, &operator, &bodies, 8).await?;
    if statuses.keys().any(|s| *s != 201) {
        bail!("suspensions failed: {statuses:?}");
    }
    // Held serials interleaved with as many good ones: by day the first
    // holders' cards are held, so the good ones are later holders' cards; by
    // night every card is good.
    let held: Vec<&Value> = reported.iter().flat_map(|h| reported_certificates(h, phones)).collect();
    let good_from = if phones { 0 } else { reported.len() };
    let good = holders[good_from..].iter().flat_map(|h| reported_certificates(h, false));
    let paths: Vec<String> = held
        .iter()
        .copied()
        .zip(good)
        .flat_map(|(h, g)| [h, g])
        .map(|c| format!("/v1/status/{}/{}", c["issuer"].as_str().unwrap_or(""), c["serial"].as_str().unwrap_or("")))
        .collect();
    let lua = dir.join("status.lua");
    let table: Vec<String> = paths.iter().map(|p| format!("{p:?}")).collect();
    std::fs::write(
        &lua,
        format!(
            "local paths = {{{}}}\nwrk.headers[\"Authorization\"] = \"Bearer {validator}\"\nlocal i = 0\nrequest = function()\n  i = i + 1\n  return wrk.format(\"GET\", paths[(i % #paths) + 1])\nend\n",
            table.join(",")
        ),
    )?;
    let lua = lua.to_string_lossy().into_owned();
    // Let the cache settle, then warm up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    wrk(&base, Some(&lua), 3, args.connections).await?;

    let nginx_server = Nginx::start(&dir).await?;
    let nginx_port = nginx_server.port;
    let nginx_base = format!("http://127.0.0.1:{nginx_port}");
    wait_ready(&client, &format!("{nginx_base}/")).await?;
    let mut rounds = Vec::new();
    for round in 1..=args.rounds {
        eprintln!("round {round} of {}: nginx, then the status endpoint…", args.rounds);
        let nginx = wrk(&nginx_base, Some(&lua), args.seconds, args.connections).await?;
        let status = wrk(&base, Some(&lua), args.seconds, args.connections).await?;
        rounds.push((nginx, status));
    }
    eprintln!("redis-benchmark…");
    let rb = Command::new("redis-benchmark")
        .args(["-p", &redis_port.to_string(), "-t", "get", "-n", "300000", "-c", "50", "-q"])
        .output()
        .await?;
    // The quiet output still redraws progress with carriage returns; the summary is the last segment.
    let rb = String::from_utf8_lossy(&rb.stdout).into_owned();
    let redis_rps: f64 = rb
        .split(['\r', '\n'])
        .find(|seg| seg.contains("requests per second"))
        .and_then(|seg| seg.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let status_max = median(rounds.iter().map(|(_, s)| s.rps).collect());
    let nginx_median = median(rounds.iter().map(|(n, _)| n.rps).collect());
    let ratio = median(rounds.iter().map(|(n, s)| s.rps / n.rps).collect());
    let half = status_max / 2.0;
    let settings = OpenLoop { seconds: args.seconds, lanes: args.lanes, timeline: args.timeline.clone() };
    eprintln!("open loop at {half:.0} req/s: the status endpoint, then nginx…");
    let status_run =
        open_loop(&format!("127.0.0.1:{port}"), &paths, &validator, half, &settings, &[server_pid], "status").await?;
    let nginx_workers = nginx_server.master.id().map(crate::cpu::children).unwrap_or_default();
    let nginx_run =
        open_loop(&format!("127.0.0.1:{nginx_port}"), &paths, &validator, half, &settings, &nginx_workers, "nginx")
            .await?;

    let metrics = client.get(format!("{base}/metrics")).send().await?.text().await?;
    let sources: Vec<&str> = metrics.lines().filter(|l| l.starts_with("hotline_status_answers_total{")).collect();
    println!(
        "Validator status, {certificates} certificates ({} held), wrk -t2 -c{} -d{}s, the same requests to both",
        held.len(),
        args.connections,
        args.seconds
    );
    println!("| round | nginx req/s | status req/s | ratio | status p50 / p99 (wrk) | nginx p50 / p99 (wrk) |");
    println!("|---|---|---|---|---|---|");
    for (i, (nginx, status)) in rounds.iter().enumerate() {
        println!(
            "| {} | {:.0} | {:.0} | {:.2} | {} / {} | {} / {} |",
            i + 1,
            nginx.rps,
            status.rps,
            status.rps / nginx.rps,
            status.p50,
            status.p99,
            nginx.p50,
            nginx.p99
        );
    }
    println!("| median | {nginx_median:.0} | {status_max:.0} | {ratio:.2} | | |");
    println!("redis-benchmark -t get -c 50: {redis_rps:.0} req/s ({:.2} of nginx)", redis_rps / nginx_median);
    println!(
        "open loop at half the status maximum ({half:.0} req/s, {} connections, {} requests each), \
         latency p50 / p99 and CPU per request (user + system):",
        args.lanes, status_run.answered
    );
    for (name, run) in [("status", &status_run), ("nginx", &nginx_run)] {
        let (su, ss) = run.server_cpu;
        let (cu, cs) = run.client_cpu;
        println!(
            "  {name}: {} / {}; server {:.1} µs ({su:.1} + {ss:.1}), client {:.1} µs ({cu:.1} + {cs:.1}); \
             server major page faults: {}",
            ms(run.p50),
            ms(run.p99),
            su + ss,
            cu + cs,
            run.server_major_faults
        );
    }
    println!("answers by source: {sources:?}");
    drop(nginx_server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
