//! Pieces every benchmark needs: a scratch database, the hotline binary run as
//! a command or a server, a free port, percentiles.

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::process::Command;

/// Where a benchmark finds the binary to measure and the database to build on.
#[derive(clap::Args)]
pub struct Target {
    /// The hotline binary to measure (build it with `cargo build --release`).
    #[arg(long, default_value = "target/release/hotline")]
    pub hotline: String,
    /// A PostgreSQL URL whose role may create databases.
    #[arg(long, env = "HOTLINE_TEST_PG_URL", default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub pg_url: String,
}

/// The PII key of benchmark deployments (synthetic data only).
pub const KEY: &str = "4c0ad1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2";

pub fn db_url(admin: &str, name: &str) -> anyhow::Result<String> {
    let i = admin.rfind('/').context("the PostgreSQL URL must name a database")?;
    Ok(format!("{}/{name}", &admin[..i]))
}

pub async fn psql(url: &str, sql: &str) -> anyhow::Result<()> {
    let status = Command::new("psql").args(["-q", "-d", url, "-c", sql]).status().await?;
    if !status.success() {
        bail!("psql failed: {sql}");
    }
    Ok(())
}

/// The text psql prints for `sql`'s result (unaligned, tuples only), trimmed.
pub async fn psql_value(db: &str, sql: &str) -> anyhow::Result<String> {
    let out = Command::new("psql").args(["-qAt", "-d", db, "-c", sql]).output().await?;
    anyhow::ensure!(out.status.success(), "psql failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Drops and creates a scratch database; returns its URL.
pub async fn fresh_database(admin: &str, name: &str) -> anyhow::Result<String> {
    psql(admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
    psql(admin, &format!("CREATE DATABASE {name}")).await?;
    db_url(admin, name)
}

/// The hotline binary as a command, without the test command's own
/// `HOTLINE_TEST_*` variables, which the binary would refuse as unknown.
pub fn hotline_command(bin: &str) -> Command {
    let mut cmd = Command::new(bin);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("HOTLINE_TEST_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// Runs a hotline command against `db`; returns its standard output.
pub async fn hotline(bin: &str, db: &str, env: &[(&str, &str)], cli: &[&str]) -> anyhow::Result<String> {
    let out = hotline_command(bin)
        .args(cli)
        .env("HOTLINE_DATABASE_URL", db)
        .env("HOTLINE_PII_KEY", KEY)
        .envs(env.iter().copied())
        .output()
        .await
        .with_context(|| format!("could not run {bin}"))?;
    if !out.status.success() {
        bail!("hotline {cli:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub async fn token(bin: &str, db: &str, role: &str) -> anyhow::Result<String> {
    let out = hotline(bin, db, &[], &["token", "create", "--role", role, "--name", &format!("bench-{role}")]).await?;
    Ok(out.lines().last().context("no token printed")?.to_owned())
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until `url` answers 2xx.
pub async fn wait_ready(client: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    for _ in 0..200 {
        if client.get(url).send().await.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{url} never became ready")
}

/// Whether a sample holder (from `hotline seed --samples`) has a smartphone.
pub fn has_phone(holder: &Value) -> bool {
    holder["smartphones"].as_array().is_some_and(|p| !p.is_empty())
}

/// The suspension request reporting a sample holder's card, or its first smartphone.
pub fn report(holder: &Value, phone: bool) -> Value {
    let mut body = json!({"call_id": "bench", "language": "ja", "cause": "loss",
        "item": if phone { "smartphone" } else { "card" },
        "holder": {"individual_number": holder["individual_number"], "date_of_birth": holder["date_of_birth"]}});
    if phone {
        body["device_id"] = holder["smartphones"][0]["device_id"].clone();
    }
    body
}

/// The certificates a report of `report`'s kind covers.
pub fn reported_certificates(holder: &Value, phone: bool) -> &[Value] {
    let certificates = if phone { &holder["smartphones"][0]["certificates"] } else { &holder["card"]["certificates"] };
    certificates.as_array().map_or(&[], Vec::as_slice)
}

/// Whether the server accepts card reports now, as it decides itself
/// (`GET /v1/rules/now`): at night in Tokyo it accepts only smartphones.
pub async fn cards_accepted(client: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<bool> {
    let now: Value = client.get(format!("{base}/v1/rules/now")).bearer_auth(token).send().await?.json().await?;
    let items = now["accepted_items"].as_array().with_context(|| format!("no accepted_items in {now}"))?;
    Ok(items.iter().any(|i| i == "card"))
}

/// Suspends `holder`'s smartphone (accepted at any hour) through `base`
/// under `key`; returns the answer and the instant the 201 arrived.
pub async fn suspend_phone(
    client: &reqwest::Client,
    base: &str,
    operator: &str,
    key: &str,
    holder: &Value,
) -> anyhow::Result<(Value, std::time::Instant)> {
    let resp = client
        .post(format!("{base}/v1/suspensions"))
        .bearer_auth(operator)
        .header("Idempotency-Key", key)
        .json(&report(holder, true))
        .send()
        .await?;
    anyhow::ensure!(resp.status() == 201, "suspension {key} answered {}", resp.status());
    let committed = std::time::Instant::now();
    Ok((resp.json().await?, committed))
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

/// The p50 / p90 / p99 / max rows of a markdown table, from sorted latencies.
pub fn print_latency_rows(sorted: &[Duration]) {
    println!("| p50 | {} |", ms(percentile(sorted, 0.50)));
    println!("| p90 | {} |", ms(percentile(sorted, 0.90)));
    println!("| p99 | {} |", ms(percentile(sorted, 0.99)));
    println!("| max | {} |", ms(sorted.last().copied().unwrap_or_default()));
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Redis's settings as the revocation cache needs them (`deploy/redis/cache.conf`).
const REDIS_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/redis/cache.conf");

/// A private `redis-server` on `port`, with the cache's settings; killed when dropped.
pub fn redis_server(port: u16) -> std::io::Result<tokio::process::Child> {
    tokio::process::Command::new("redis-server")
        .arg(REDIS_CONFIG)
        .args(["--port", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
}

/// A ca-sim on a free loopback port with a data directory of its own, answering.
pub struct CaSim {
    pub child: tokio::process::Child,
    pub url: String,
    _data: tempfile::TempDir,
}

/// Starts the ca-sim binary `bin` with `flags` (faults, latency) and waits until it answers.
pub async fn ca_sim(bin: &str, flags: &[&str]) -> anyhow::Result<CaSim> {
    let port = free_port()?;
    let data = tempfile::tempdir()?;
    let child = Command::new(bin)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(flags)
        .arg("--data")
        .arg(data.path())
        .env("CA_SIM_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("could not start {bin}"))?;
    let url = format!("http://127.0.0.1:{port}");
    wait_ready(&reqwest::Client::new(), &format!("{url}/health")).await?;
    Ok(CaSim { child, url, _data: data })
}

/// An issuer as the CA publishes it (its `ca.pem`), for building OCSP requests.
pub async fn known_issuer(client: &reqwest::Client, ca: &str, id: &str) -> anyhow::Result<hotline_ocsp::KnownIssuer> {
    let pem = client.get(format!("{ca}/v1/issuers/{id}/ca.pem")).send().await?.text().await?;
    let der = hotline_ocsp::pem_contents(pem.as_bytes()).context("the CA's ca.pem is not PEM")?;
    Ok(hotline_ocsp::KnownIssuer::from_der(hotline_core::IssuerId::parse(id)?, der)?)
}
