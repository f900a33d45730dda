//! The OCSP benchmark. It builds the status benchmark's deployment (its own
//! Redis, about 100 000 certificates of which 10 000 held) with ca-sim as the
//! CA, so each API instance has its responder certified, and measures in one
//! run on this machine:
//! - `GET /ocsp/{request}` without a nonce (answered from the signed-response
//!   cache once warm) next to nginx serving a static 200, in alternating wrk
//!   rounds with the same requests; then both open loop at half the OCSP
//!   maximum, latency counted from each request's scheduled send time;
//! - `POST /ocsp` with a nonce (signed for each request): responses/s, p99,
//!   and how many were `tryLater` because the signers were saturated;
//! - the CPU cost of one signature with the responder's key (P-256), in this
//!   process;
//! - suspension through instance A → the first `revoked` OCSP answer through
//!   instance B, over many suspensions.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use hotline_ocsp::{Known, KnownIssuer};
use serde_json::Value;
use tokio::process::Child;

use crate::common::{
    KEY, Target, free_port, fresh_database, has_phone, hotline, hotline_command, known_issuer, ms, print_latency_rows,
    redis_server, report, suspend_phone, token, wait_ready,
};
use crate::harness::{Nginx, OpenLoop, median, open_loop, wrk};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    /// The ca-sim binary (the CA that certifies the responders).
    #[arg(long, default_value = "target/release/ca-sim")]
    ca_sim: String,
    /// Holders to seed: 37 500 holders carry about 100 000 certificates.
    #[arg(long, default_value_t = 37_500)]
    holders: usize,
    /// Smartphone reports to make (two certificates each), accepted at any hour.
    #[arg(long, default_value_t = 5_000)]
    held: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    #[arg(long, default_value_t = 64)]
    connections: u32,
    /// Keep-alive connections of the open-loop client.
    #[arg(long, default_value_t = 64)]
    lanes: usize,
    /// Suspensions whose first revoked OCSP answer through the other instance is timed.
    #[arg(long, default_value_t = 1_000)]
    suspensions: usize,
}

fn api(args: &Args, db: &str, redis: &str, ca: &str, port: u16) -> anyhow::Result<Child> {
    Ok(hotline_command(&args.target.hotline)
        .args(["api", "--listen", &format!("127.0.0.1:{port}")])
        .env("HOTLINE_DATABASE_URL", db)
        .env("HOTLINE_PII_KEY", KEY)
        .env("HOTLINE_REDIS_URL", redis)
        .env("HOTLINE_CA_URL", ca)
        .env("HOTLINE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?)
}

/// A certificate from the sample file: its issuer and serial bytes.
fn serial(c: &Value) -> anyhow::Result<(String, Vec<u8>)> {
    let issuer = c["issuer"].as_str().context("no issuer")?.to_owned();
    Ok((issuer, hex::decode(c["serial"].as_str().context("no serial")?)?))
}

/// wrk's Lua for POSTs of the given bodies in turn (binary, written as decimal escapes).
fn post_script(bodies: &[Vec<u8>], token: &str) -> String {
    let table: Vec<String> = bodies
        .iter()
        .map(|b| format!("\"{}\"", b.iter().map(|byte| format!("\\{byte:03}")).collect::<String>()))
        .collect();
    format!(
        "local bodies = {{{}}}\nwrk.method = \"POST\"\nwrk.headers[\"Authorization\"] = \"Bearer {token}\"\n\
         wrk.headers[\"Content-Type\"] = \"application/ocsp-request\"\nlocal i = 0\nrequest = function()\n  i = i + 1\n  \
         return wrk.format(\"POST\", \"/ocsp\", nil, bodies[(i % #bodies) + 1])\nend\n",
        table.join(",")
    )
}

/// The OCSP responses an instance counted, by response status.
async fn responses(client: &reqwest::Client, base: &str) -> anyhow::Result<Vec<String>> {
    let metrics = client.get(format!("{base}/metrics")).send().await?.text().await?;
    // The series that counted something (the hot ones exist from the start, at 0).
    let counted = |l: &&str| l.starts_with("hotline_ocsp_responses_total{") && !l.ends_with(" 0");
    Ok(metrics.lines().filter(counted).map(str::to_owned).collect())
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let db = fresh_database(&args.target.pg_url, "hotline_bench_ocsp").await?;
    let dir = std::env::temp_dir().join(format!("hotline-bench-ocsp-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let redis_port = free_port()?;
    let _redis = redis_server(redis_port)?;
    let redis = format!("redis://127.0.0.1:{redis_port}");
    let ca_sim = crate::common::ca_sim(&args.ca_sim, &[]).await?;
    let ca = ca_sim.url.clone();
    let client = reqwest::Client::new();

    let samples = dir.join("samples.json");
    hotline(&args.target.hotline, &db, &[], &["migrate"]).await?;
    eprintln!("seeding {} holders…", args.holders);
    let seed = ["seed", "--holders", &args.holders.to_string(), "--samples", &samples.to_string_lossy()];
    hotline(&args.target.hotline, &db, &[], &seed).await?;
    let operator = token(&args.target.hotline, &db, "operator").await?;
    let validator = token(&args.target.hotline, &db, "validator").await?;
    let holders: Value = serde_json::from_slice(&std::fs::read(&samples)?)?;
    let holders = holders["holders"].as_array().context("no holders")?.clone();

    let (pa, pb) = (free_port()?, free_port()?);
    let _a = api(&args, &db, &redis, &ca, pa)?;
    let server_b = api(&args, &db, &redis, &ca, pb)?;
    let server_b_pid = server_b.id().context("instance B exited at once")?;
    let (a, b) = (format!("http://127.0.0.1:{pa}"), format!("http://127.0.0.1:{pb}"));
    wait_ready(&client, &format!("{a}/readyz")).await?;
    wait_ready(&client, &format!("{b}/readyz")).await?;

    // Held: the first holders' smartphones (accepted at any hour); the rest stay good.
    let phones: Vec<&Value> = holders.iter().filter(|h| has_phone(h)).collect();
    let (held, later) = phones.split_at(args.held.min(phones.len().saturating_sub(args.suspensions)));
    eprintln!("suspending {} smartphones through the API…", held.len());
    let bodies: Vec<Value> = held.iter().map(|h| report(h, true)).collect();
    let (_, statuses) = crate::suspend::send_all(&client, &a, &operator, &bodies, 8).await?;
    if statuses.keys().any(|s| *s != 201) {
        bail!("suspensions failed: {statuses:?}");
    }
    let issuers = [known_issuer(&client, &ca, "jpki-sign").await?, known_issuer(&client, &ca, "jpki-auth").await?];
    let of = |name: &str| issuers.iter().find(|i| i.id.as_str() == name);
    // Every certificate of the held phones and of as many good cards, alternating.
    let held_certs =
        held.iter().flat_map(|h| h["smartphones"][0]["certificates"].as_array().cloned().unwrap_or_default());
    let good_certs = holders.iter().flat_map(|h| h["card"]["certificates"].as_array().cloned().unwrap_or_default());
    let mut gets = Vec::new();
    let mut posts = Vec::new();
    for (i, c) in held_certs.zip(good_certs).flat_map(|(h, g)| [h, g]).enumerate() {
        let (name, serial) = serial(&c)?;
        let issuer = of(&name).context("an issuer the CA does not serve")?;
        let get = issuer.request(&serial, None)?;
        gets.push(format!("/ocsp/{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(get)));
        if i < 2_000 {
            posts.push(issuer.request(&serial, Some(&(i as u64).to_be_bytes()))?);
        }
    }
    let get_lua = dir.join("ocsp-get.lua");
    let table: Vec<String> = gets.iter().map(|p| format!("{p:?}")).collect();
    std::fs::write(
        &get_lua,
        format!(
            "local paths = {{{}}}\nwrk.headers[\"Authorization\"] = \"Bearer {validator}\"\nlocal i = 0\nrequest = function()\n  i = i + 1\n  return wrk.format(\"GET\", paths[(i % #paths) + 1])\nend\n",
            table.join(",")
        ),
    )?;
    let get_lua = get_lua.to_string_lossy().into_owned();
    let post_lua = dir.join("ocsp-post.lua");
    std::fs::write(&post_lua, post_script(&posts, &validator))?;
    let post_lua = post_lua.to_string_lossy().into_owned();

    // Warm the signed-response cache (every GET signed once), then measure.
    tokio::time::sleep(Duration::from_secs(2)).await;
    eprintln!("warming the signed-response cache with {} requests…", gets.len());
    wrk(&b, Some(&get_lua), 8, args.connections).await?;
    let nginx = Nginx::start(&dir).await?;
    let nginx_base = format!("http://127.0.0.1:{}", nginx.port);
    wait_ready(&client, &format!("{nginx_base}/")).await?;
    let mut rounds = Vec::new();
    for round in 1..=args.rounds {
        eprintln!("round {round} of {}: nginx, then OCSP GET…", args.rounds);
        let n = wrk(&nginx_base, Some(&get_lua), args.seconds, args.connections).await?;
        let o = wrk(&b, Some(&get_lua), args.seconds, args.connections).await?;
        rounds.push((n, o));
    }
    let get_max = median(rounds.iter().map(|(_, o)| o.rps).collect());
    let ratio = median(rounds.iter().map(|(n, o)| o.rps / n.rps).collect());
    let half = get_max / 2.0;
    let settings = OpenLoop { seconds: args.seconds, lanes: args.lanes, timeline: None };
    eprintln!("open loop at {half:.0} req/s: OCSP GET, then nginx…");
    let get_run =
        open_loop(&format!("127.0.0.1:{pb}"), &gets, &validator, half, &settings, &[server_b_pid], "ocsp").await?;
    let nginx_workers = nginx.master.id().map(crate::cpu::children).unwrap_or_default();
    let nginx_run =
        open_loop(&format!("127.0.0.1:{}", nginx.port), &gets, &validator, half, &settings, &nginx_workers, "nginx")
            .await?;
    let after_gets = responses(&client, &b).await?;

    eprintln!("OCSP POST with a nonce…");
    let post = wrk(&b, Some(&post_lua), args.seconds, args.connections).await?;
    let after_posts = responses(&client, &b).await?;

    eprintln!("one signature's CPU cost…");
    let signature_us = signature_cost(&client, &ca, &issuers[1]).await?;

    eprintln!("suspension through A → the first revoked OCSP answer through B…");
    let mut latencies = Vec::with_capacity(args.suspensions);
    for (i, h) in later.iter().take(args.suspensions).enumerate() {
        let (answer, committed) = suspend_phone(&client, &a, &operator, &format!("v{i}"), h).await?;
        let (name, serial) = serial(&answer["certificates"][0])?;
        let request = of(&name).context("an issuer the CA does not serve")?.request(&serial, None)?;
        let url = format!("{b}/ocsp/{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(request));
        loop {
            let der = client.get(&url).bearer_auth(&validator).send().await?.bytes().await?;
            if matches!(hotline_ocsp::read_statuses(&der).as_deref(), Some([Known::Revoked { .. }])) {
                latencies.push(committed.elapsed());
                break;
            }
            if committed.elapsed() > Duration::from_secs(10) {
                bail!("suspension {i} not revoked in OCSP through B after 10 s");
            }
        }
    }
    latencies.sort();

    println!(
        "OCSP, {} certificates ({} held), GET without a nonce over {} different requests; wrk -t2 -c{} -d{}s",
        holders.len() * 2 + phones.len() * 2,
        held.len() * 2,
        gets.len(),
        args.connections,
        args.seconds
    );
    println!("| round | nginx req/s | OCSP GET req/s | ratio | OCSP p50 / p99 (wrk) | nginx p50 / p99 (wrk) |");
    println!("|---|---|---|---|---|---|");
    for (i, (n, o)) in rounds.iter().enumerate() {
        println!(
            "| {} | {:.0} | {:.0} | {:.2} | {} / {} | {} / {} |",
            i + 1,
            n.rps,
            o.rps,
            o.rps / n.rps,
            o.p50,
            o.p99,
            n.p50,
            n.p99
        );
    }
    println!("| median | | {get_max:.0} | {ratio:.2} | | |");
    println!(
        "open loop at half the OCSP GET maximum ({half:.0} req/s, {} connections), p50 / p99, CPU per request:",
        args.lanes
    );
    for (name, run) in [("OCSP GET", &get_run), ("nginx", &nginx_run)] {
        let (su, ss) = run.server_cpu;
        println!("  {name}: {} / {}; server {:.1} µs", ms(run.p50), ms(run.p99), su + ss);
    }
    println!(
        "OCSP POST with a nonce (signed per request), {} different bodies: {:.0} responses/s, p50 / p99 {} / {}",
        posts.len(),
        post.rps,
        post.p50,
        post.p99
    );
    println!("one P-256 signature of a response, in this process: {signature_us:.1} µs");
    println!(
        "suspension through A → first revoked OCSP answer through B, {} suspensions, sequential:",
        latencies.len()
    );
    println!("| percentile | latency |");
    println!("|---|---|");
    print_latency_rows(&latencies);
    println!("B's OCSP responses after the GET runs: {after_gets:?}");
    println!("B's OCSP responses after the POST run: {after_posts:?}");
    drop(nginx);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Microseconds per signed response, with a responder certified by the CA for a fresh P-256 key.
async fn signature_cost(client: &reqwest::Client, ca: &str, issuer: &KnownIssuer) -> anyhow::Result<f64> {
    let (key, public) = hotline_ocsp::generate_key().map_err(|_| anyhow::anyhow!("could not make a key"))?;
    let body = serde_json::json!({"public_key": base64::engine::general_purpose::STANDARD.encode(&public)});
    let answer: Value =
        client.post(format!("{ca}/v1/issuers/{}/ocsp-responder", issuer.id)).json(&body).send().await?.json().await?;
    let pem = answer["certificate_pem"].as_str().context("no certificate")?;
    let cert = hotline_ocsp::pem_contents(pem.as_bytes()).context("not PEM")?;
    let now = chrono::Utc::now();
    let responder = hotline_ocsp::Responder::new(issuer, &cert, &key, now)?;
    let query = hotline_ocsp::parse(&issuer.request(&[1, 2, 3], None)?)?;
    let n = 2_000;
    let started = Instant::now();
    for _ in 0..n {
        hotline_ocsp::sign(&responder, &[(&query.asked[0], Known::Good)], now, now, None, now)?;
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / f64::from(n))
}
