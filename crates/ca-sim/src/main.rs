//! `ca-sim --listen ADDR --data DIR`: the development CA as its own process.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use hotline_ca::Faults;

/// A development certificate authority: idempotent revocations, signed CRLs, injected faults.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// Where the issuing CAs' keys and the journal live.
    #[arg(long, default_value = "ca-sim-data")]
    data: PathBuf,
    /// Added latency on each revocation request (ms).
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Share of revocation requests answered 503 (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Share of revocation requests never answered (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    timeout_rate: f64,
    /// Share of revocation requests applied whose answer is then lost (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    lost_response_rate: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("CA_SIM_LOG").unwrap_or_else(|_| "info".into()))
        .init();
    let args = Args::parse();
    let faults = Faults {
        latency_ms: args.latency_ms,
        error_rate: args.error_rate,
        timeout_rate: args.timeout_rate,
        lost_response_rate: args.lost_response_rate,
        bad_crl_signature: false,
    };
    let ca =
        ca_sim::CaSim::open(&args.data, faults).with_context(|| format!("could not open {}", args.data.display()))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("could not listen on {}", args.listen))?;
    // The one line on stdout: where to reach the CA (tests read it to learn the port).
    println!("listening on http://{}", listener.local_addr()?);
    ca.serve(listener).await.context("server failed")
}
