//! `hotline cache rebuild` at national scale: one registry, rebuilt into an
//! empty Redis at each number of certificates not good given (`--held
//! 1000000,5000000`), so the time per entry at the sizes compares in one run
//! (a rebuild that rescans per page grows faster than its entries); wall
//! time, the rebuilding process's peak memory, and Redis's memory per entry.
//! After each rebuild an API instance with a near-cache starts: the time
//! until it serves from its near-cache, its resident memory (the growth
//! between sizes over the entries added is the memory per entry, free of
//! the process's own footprint), and status latency at that size, in JSON
//! and in OCSP (POST with a nonce: looked up through the tiers and signed
//! for each request; the instance's responder is certified by a ca-sim).
//! Last, at the largest size, one instance and then `--instances` at once:
//! what a fleet filling its near-caches together costs the database.
//!
//! The certificates are marked not good with SQL rather than API calls: the
//! subject here is the rebuild, and the snapshot reads the certificates
//! table, not how the statuses got there.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::Command;

use crate::common::{KEY, Target, free_port, fresh_database, hotline, psql, psql_value, redis_server};
use crate::instances::{Fleet, Instance, Setting, start_at_once};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    /// 375 000 holders carry about 1 000 000 certificates.
    #[arg(long, default_value_t = 375_000)]
    holders: usize,
    /// Certificates not good at each rebuild, ascending.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    held: Vec<usize>,
    /// The ca-sim binary (the CA that certifies the instances' OCSP responders).
    #[arg(long, default_value = "target/release/ca-sim")]
    ca_sim: String,
    /// API instances started at once over the last size, after one alone: what a fleet's start costs the database.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    instances: u32,
}

/// The CA and its issuers, as the OCSP probe needs them.
struct Ca {
    sim: crate::common::CaSim,
    issuers: Vec<hotline_ocsp::KnownIssuer>,
}

async fn start_ca(args: &Args) -> anyhow::Result<Ca> {
    let sim = crate::common::ca_sim(&args.ca_sim, &[]).await?;
    let client = reqwest::Client::new();
    let mut issuers = Vec::new();
    for id in ["jpki-sign", "jpki-auth"] {
        issuers.push(crate::common::known_issuer(&client, &sim.url, id).await?);
    }
    Ok(Ca { sim, issuers })
}

async fn redis_used_memory(port: u16) -> anyhow::Result<u64> {
    let out = Command::new("redis-cli").args(["-p", &port.to_string(), "INFO", "memory"]).output().await?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:").and_then(|v| v.trim().parse().ok()))
        .context("no used_memory in INFO")
}

/// A field (kB) of a running process's /proc status: `VmHWM` (peak) or `VmRSS` (now).
fn proc_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim_start_matches(':').trim().trim_end_matches("kB").trim().parse().ok())
}

struct Rebuilt {
    held: usize,
    seconds: f64,
    peak_mb: f64,
    redis_bytes: f64,
    near: Near,
}

/// An API instance with a near-cache, started on the rebuilt registry.
struct Near {
    /// From start to serving from the near-cache.
    serving: f64,
    /// Resident bytes once the near-cache is filled.
    resident: f64,
    /// `GET /v1/status` latencies, sorted.
    latencies: Vec<Duration>,
    /// `POST /ocsp` latencies (a nonce each), sorted.
    ocsp: Vec<Duration>,
}

/// Requests of the status probe, from this many concurrent clients.
const PROBES: usize = 20_000;
const PROBE_CLIENTS: usize = 16;

async fn rebuild(args: &Args, db: &str, port: u16, held: usize, token: &str, ca: &Ca) -> anyhow::Result<Rebuilt> {
    let flushed = Command::new("redis-cli").args(["-p", &port.to_string(), "FLUSHALL"]).output().await?;
    if !flushed.status.success() {
        bail!("redis-cli FLUSHALL failed");
    }
    let before = redis_used_memory(port).await?;
    let started = Instant::now();
    let mut child = crate::common::hotline_command(&args.target.hotline)
        .args(["cache", "rebuild"])
        .env("HOTLINE_DATABASE_URL", db)
        .env("HOTLINE_PII_KEY", KEY)
        .env("HOTLINE_REDIS_URL", format!("redis://127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = child.id().context("no pid")?;
    let mut peak = 0;
    let status = loop {
        if let Some(kb) = proc_kb(pid, "VmHWM") {
            peak = peak.max(kb);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!("hotline cache rebuild failed");
    }
    let after = redis_used_memory(port).await?;
    let near = near_cache(args, db, port, token, ca).await?;
    Ok(Rebuilt { held, seconds, peak_mb: peak as f64 / 1024.0, redis_bytes: (after - before) as f64, near })
}

/// Half the probe's certificates are not good (found in the near-cache), half good (absent from it).
async fn probe_pairs(db: &str) -> anyhow::Result<Vec<(String, String)>> {
    let sql = "(SELECT issuer, serial FROM certificates WHERE status <> 'good' ORDER BY random() LIMIT 500)
               UNION ALL (SELECT issuer, serial FROM certificates WHERE status = 'good' ORDER BY random() LIMIT 500)";
    let rows = psql_value(db, sql).await?;
    Ok(rows.lines().filter_map(|l| l.split_once('|')).map(|(i, s)| (i.to_owned(), s.to_owned())).collect())
}

/// OCSP requests for the same pairs, each with a nonce of its own, so each is looked up and signed.
fn ocsp_bodies(ca: &Ca, pairs: &[(String, String)]) -> anyhow::Result<Vec<Vec<u8>>> {
    pairs
        .iter()
        .enumerate()
        .map(|(n, (issuer, serial))| {
            let known =
                ca.issuers.iter().find(|i| i.id.as_str() == issuer).context("an issuer the CA does not serve")?;
            let nonce = (n as u64 + 1).to_be_bytes();
            Ok(known.request(&hex::decode(serial)?, Some(&nonce))?)
        })
        .collect()
}

/// Times `PROBES` requests sent from `PROBE_CLIENTS` clients at once;
/// `ask(client, n)` sends the n-th and fails on an answer that is not right.
async fn timed<F, Fut>(ask: F) -> anyhow::Result<Vec<Duration>>
where
    F: Fn(reqwest::Client, usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let client = reqwest::Client::new();
    let mut clients = Vec::new();
    for c in 0..PROBE_CLIENTS {
        let (client, ask) = (client.clone(), ask.clone());
        clients.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(PROBES / PROBE_CLIENTS);
            for i in 0..PROBES / PROBE_CLIENTS {
                let started = Instant::now();
                ask(client.clone(), c * 7919 + i).await?;
                latencies.push(started.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Vec::with_capacity(PROBES);
    for c in clients {
        all.extend(c.await??);
    }
    all.sort();
    Ok(all)
}

/// One OCSP POST; its answer, if it is a single good or revoked status.
async fn ask_ocsp(client: &reqwest::Client, base: &str, token: &str, body: &[u8]) -> anyhow::Result<bool> {
    let der = client
        .post(format!("{base}/ocsp"))
        .bearer_auth(token)
        .header("content-type", "application/ocsp-request")
        .body(body.to_vec())
        .send()
        .await?
        .bytes()
        .await?;
    Ok(hotline_ocsp::read_statuses(&der).is_some_and(|s| s.len() == 1))
}

/// POSTs each OCSP request; every answer must be good or revoked.
async fn probe_ocsp(base: &str, token: &str, bodies: &[Vec<u8>]) -> anyhow::Result<Vec<Duration>> {
    // The responder is certified just after start: wait until it answers for real.
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if ask_ocsp(&client, base, token, &bodies[0]).await? {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (base, token, bodies) = (base.to_owned(), token.to_owned(), std::sync::Arc::new(bodies.to_vec()));
    timed(move |client, n| {
        let (base, token, bodies) = (base.clone(), token.clone(), bodies.clone());
        async move {
            if !ask_ocsp(&client, &base, &token, &bodies[n % bodies.len()]).await? {
                bail!("an OCSP answer that is neither good nor revoked");
            }
            Ok(())
        }
    })
    .await
}

/// GETs each status path; every answer must be a success.
async fn probe(base: &str, token: &str, paths: &[String]) -> anyhow::Result<Vec<Duration>> {
    let (base, token, paths) = (base.to_owned(), token.to_owned(), std::sync::Arc::new(paths.to_vec()));
    timed(move |client, n| {
        let (base, token, paths) = (base.clone(), token.clone(), paths.clone());
        async move {
            let path = &paths[n % paths.len()];
            let answer = client.get(format!("{base}{path}")).bearer_auth(&token).send().await?;
            if !answer.status().is_success() {
                bail!("{path}: {}", answer.status());
            }
            answer.bytes().await?;
            Ok(())
        }
    })
    .await
}

fn setting<'a>(args: &'a Args, db: &'a str, port: u16, ca: &'a Ca) -> Setting<'a> {
    Setting { hotline: &args.target.hotline, db, redis_port: port, ca_url: &ca.sim.url }
}

/// Starts `hotline api` with a near-cache over the rebuilt Redis, waits until it serves from it, and probes it.
async fn near_cache(args: &Args, db: &str, port: u16, token: &str, ca: &Ca) -> anyhow::Result<Near> {
    let mut instance = Instance::launch(&setting(args, db, port, ca), Instant::now())?;
    let serving = instance.serving().await?;
    let resident = (proc_kb(instance.pid()?, "VmRSS").unwrap_or(0) * 1024) as f64;
    let base = format!("http://{}", instance.listen);
    let pairs = probe_pairs(db).await?;
    let paths: Vec<String> = pairs.iter().map(|(i, s)| format!("/v1/status/{i}/{s}")).collect();
    let latencies = probe(&base, token, &paths).await?;
    let ocsp = probe_ocsp(&base, token, &ocsp_bodies(ca, &pairs)?).await?;
    instance.child.kill().await?;
    Ok(Near { serving, resident, latencies, ocsp })
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let db = fresh_database(&args.target.pg_url, "hotline_bench_rebuild").await?;
    hotline(&args.target.hotline, &db, &[], &["migrate"]).await?;
    eprintln!("seeding {} holders…", args.holders);
    let seeded = Instant::now();
    hotline(&args.target.hotline, &db, &[], &["seed", "--holders", &args.holders.to_string()]).await?;
    let seed_time = seeded.elapsed();
    let all = psql_value(&db, "SELECT count(*) FROM certificates").await?;
    let token = crate::common::token(&args.target.hotline, &db, "validator").await?;
    let port = free_port()?;
    let _redis = redis_server(port)?;
    let ca = start_ca(&args).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut results = Vec::new();
    let mut marked = 0;
    for &held in &args.held {
        if held > marked {
            eprintln!("marking {held} certificates not good…");
            psql(
                &db,
                &format!(
                    "UPDATE certificates SET status = 'suspended', reason = 'certificate_hold'
                      WHERE id IN (SELECT id FROM certificates WHERE status = 'good' ORDER BY random() LIMIT {})",
                    held - marked
                ),
            )
            .await?;
            psql(&db, "VACUUM ANALYZE certificates").await?;
            marked = held;
        }
        eprintln!("rebuilding {held}…");
        results.push(rebuild(&args, &db, port, held, &token, &ca).await?);
    }
    let mut fleets = Vec::new();
    for n in [1, args.instances as usize] {
        eprintln!("starting {n} instances at once…");
        fleets.push(start_at_once(&setting(&args, &db, port, &ca), n).await?);
    }
    psql(&args.target.pg_url, "DROP DATABASE IF EXISTS hotline_bench_rebuild WITH (FORCE)").await?;

    println!(
        "hotline cache rebuild: {all} certificates; seeding {} holders took {:.0} s",
        args.holders,
        seed_time.as_secs_f64()
    );
    println!(
        "| not good | wall time | per million entries | peak RSS of the rebuilding process | Redis memory | per entry |"
    );
    println!("|---|---|---|---|---|---|");
    for r in &results {
        println!(
            "| {} | {:.2} s | {:.2} s | {:.1} MB | {:.1} MB | {:.0} bytes |",
            r.held,
            r.seconds,
            r.seconds * 1e6 / r.held as f64,
            r.peak_mb,
            r.redis_bytes / 1e6,
            r.redis_bytes / r.held as f64
        );
    }
    if let (Some(first), Some(last)) = (results.first(), results.last()) {
        let per = |r: &Rebuilt| r.seconds / r.held as f64;
        println!("time per entry at {} over at {}: {:.2}", last.held, first.held, per(last) / per(first));
    }
    println!();
    println!(
        "| not good | an API instance serving from its near-cache after | resident | status p50 | p99 | max | OCSP p50 | p99 | max |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let ms = |l: &[Duration], p: f64| crate::common::ms(crate::common::percentile(l, p));
    for r in &results {
        let (l, o) = (&r.near.latencies, &r.near.ocsp);
        println!(
            "| {} | {:.1} s | {:.0} MB | {} | {} | {} | {} | {} | {} |",
            r.held,
            r.near.serving,
            r.near.resident / 1e6,
            ms(l, 0.50),
            ms(l, 0.99),
            ms(l, 1.0),
            ms(o, 0.50),
            ms(o, 0.99),
            ms(o, 1.0),
        );
    }
    if let (Some(first), Some(last)) = (results.first(), results.last()) {
        let p99 = |l: &[Duration]| crate::common::percentile(l, 0.99).as_secs_f64();
        println!(
            "p99 at {} over at {}: status {:.2}, OCSP {:.2}",
            last.held,
            first.held,
            p99(&last.near.latencies) / p99(&first.near.latencies),
            p99(&last.near.ocsp) / p99(&first.near.ocsp)
        );
    }
    if let (Some(first), Some(last)) = (results.first(), results.last()) {
        let grew = last.near.resident - first.near.resident;
        println!(
            "near-cache memory per entry (resident growth from {} to {} entries over the entries added): {:.0} bytes",
            first.held,
            last.held,
            grew / (last.held - first.held).max(1) as f64
        );
    }
    println!(
        "(probes: {PROBES} GET /v1/status and {PROBES} POST /ocsp with a nonce, from {PROBE_CLIENTS} clients, half not good, half good)"
    );
    println!();
    print_fleets(results.last().map_or(0, |r| r.held), &fleets);
    Ok(())
}

/// One instance's start against a fleet's, over the same entries.
fn print_fleets(held: usize, fleets: &[Fleet]) {
    println!("API instances started at once over {held} not-good entries, each until it serves from its near-cache:");
    println!(
        "| instances | serving after: first | median | last | busy CPU (all cores) | the instances' | the rest (the database) | blocks from its buffers | from the OS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for f in fleets {
        let at = |p: f64| f.serving[((f.serving.len() - 1) as f64 * p).round() as usize];
        println!(
            "| {} | {:.1} s | {:.1} s | {:.1} s | {:.1} s | {:.1} s | {:.1} s | {:.0} | {:.0} |",
            f.instances,
            at(0.0),
            at(0.5),
            at(1.0),
            f.busy,
            f.instances_cpu,
            f.busy - f.instances_cpu,
            f.blocks_hit,
            f.blocks_read
        );
    }
    if let [one, many] = fleets {
        let per = |f: &Fleet| (f.busy - f.instances_cpu) / f.instances as f64;
        println!(
            "the database's CPU time per instance, {} at once over one alone: {:.2}; blocks per instance: {:.2}",
            many.instances,
            per(many) / per(one),
            ((many.blocks_hit + many.blocks_read) / many.instances as f64) / (one.blocks_hit + one.blocks_read)
        );
    }
}
