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
use tokio::process::{Child, Command};

use crate::common::{
    KEY, Target, cards_accepted, free_port, fresh_database, has_phone, hotline, ms, percentile, redis_server, report,
    reported_certificates, token, wait_ready,
};
use crate::cpu::CpuTime;

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

struct Wrk {
    rps: f64,
    p50: String,
    p99: String,
}

async fn wrk(url: &str, script: Option<&str>, seconds: u32, connections: u32) -> anyhow::Result<Wrk> {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t2", &format!("-c{connections}"), &format!("-d{seconds}s"), "--latency"]);
    if let Some(s) = script {
        cmd.args(["-s", s]);
    }
    let out = cmd.arg(url).output().await.context("wrk is not installed (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if text.contains("Non-2xx") {
        bail!("wrk saw errors:\n{text}");
    }
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(str::to_owned)
    };
    Ok(Wrk {
        rps: field("Requests/sec:").and_then(|v| v.parse().ok()).context(format!("no rate in wrk output:\n{text}"))?,
        p50: field("50%").unwrap_or_default(),
        p99: field("99%").unwrap_or_default(),
    })
}

fn spawn(cmd: &mut Command) -> anyhow::Result<Child> {
    spawn_logging_to(cmd, Stdio::null())
}

fn spawn_logging_to(cmd: &mut Command, log: Stdio) -> anyhow::Result<Child> {
    Ok(cmd.stdout(Stdio::null()).stderr(log).kill_on_drop(true).spawn()?)
}

/// nginx serving a static 200; stopped when dropped.
struct Nginx {
    master: Child,
    conf: std::path::PathBuf,
    dir: std::path::PathBuf,
    port: u16,
}

impl Nginx {
    async fn start(dir: &std::path::Path) -> anyhow::Result<Self> {
        let port = free_port()?;
        // One worker per core, each on its own SO_REUSEPORT socket: nginx's fastest
        // setup, and the steadiest (with one shared socket, how connections split
        // between the workers changes from run to run).
        let conf = format!(
            "worker_processes 2; daemon off; pid {dir}/nginx.pid; error_log {dir}/error.log;
             events {{ worker_connections 1024; }}
             http {{ access_log off; keepalive_requests 10000000; client_body_temp_path {dir}; proxy_temp_path {dir}; fastcgi_temp_path {dir};
                     uwsgi_temp_path {dir}; scgi_temp_path {dir};
                     server {{ listen 127.0.0.1:{port} reuseport; location / {{ return 200 'ok'; }} }} }}",
            dir = dir.display()
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, conf)?;
        let master = spawn(Command::new("nginx").arg("-c").arg(&path).arg("-p").arg(dir))
            .context("nginx is not installed (apt-get install nginx-light)")?;
        Ok(Self { master, conf: path, dir: dir.to_owned(), port })
    }
}

impl Drop for Nginx {
    /// Killing the master would leave its workers running: ask it to stop
    /// them, and wait (briefly) until it has.
    fn drop(&mut self) {
        let _ = std::process::Command::new("nginx")
            .arg("-c")
            .arg(&self.conf)
            .arg("-p")
            .arg(&self.dir)
            .args(["-s", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        for _ in 0..100 {
            if !matches!(self.master.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.master.start_kill();
    }
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
    let mut server = Command::new(&args.target.hotline);
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
    eprintln!("open loop at {half:.0} req/s: the status endpoint, then nginx…");
    let status_run =
        open_loop(&format!("127.0.0.1:{port}"), &paths, &validator, half, &args, &[server_pid], "status").await?;
    let nginx_workers = nginx_server.master.id().map(crate::cpu::children).unwrap_or_default();
    let nginx_run =
        open_loop(&format!("127.0.0.1:{nginx_port}"), &paths, &validator, half, &args, &nginx_workers, "nginx").await?;

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

/// One line per request, in the order they were due: `due_ms,latency_us`.
fn write_timeline(path: &std::path::Path, samples: &[crate::rawhttp::Sample]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("could not create {}", path.display()))?,
    );
    writeln!(out, "due_ms,latency_us")?;
    for s in samples {
        writeln!(out, "{:.3},{}", s.due.as_secs_f64() * 1e3, s.latency.as_micros())?;
    }
    out.flush()?;
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// One open-loop run: latency percentiles, and CPU microseconds per request
/// (user, system) of the server and of this process, the client.
struct OpenLoopRun {
    p50: Duration,
    p99: Duration,
    answered: usize,
    server_cpu: (f64, f64),
    client_cpu: (f64, f64),
    /// Pages the server read back from disk during the run.
    server_major_faults: u64,
}

/// Open-loop load at `rate` on the client's own threads, against the server
/// whose processes are `server`; with `--timeline`, the samples go to `{name}.csv`.
async fn open_loop(
    addr: &str,
    paths: &[String],
    token: &str,
    rate: f64,
    args: &Args,
    server: &[u32],
    name: &str,
) -> anyhow::Result<OpenLoopRun> {
    let (addr, paths, token, seconds, lanes) =
        (addr.to_owned(), paths.to_vec(), token.to_owned(), args.seconds, args.lanes);
    let me = [std::process::id()];
    let (server_before, client_before) = (CpuTime::of(server)?, CpuTime::of(&me)?);
    let (samples, failed) =
        tokio::task::spawn_blocking(move || crate::rawhttp::open_loop(&addr, &paths, &token, rate, seconds, lanes))
            .await??;
    let (server_after, client_after) = (CpuTime::of(server)?, CpuTime::of(&me)?);
    if failed > 0 {
        bail!("{failed} requests failed during the open-loop run");
    }
    // The directory was made when the server started.
    if let Some(dir) = &args.timeline {
        write_timeline(&dir.join(format!("{name}.csv")), &samples)?;
    }
    let mut latencies: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
    latencies.sort();
    Ok(OpenLoopRun {
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        answered: latencies.len(),
        server_cpu: server_after.per_request_since(server_before, latencies.len()),
        client_cpu: client_after.per_request_since(client_before, latencies.len()),
        server_major_faults: server_after.major_faults - server_before.major_faults,
    })
}
