//! `ca-sim --listen ADDR --data DIR`: the development CA as its own process.

use anyhow::Context;
use ca_sim::cli::Args;
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("CA_SIM_LOG").unwrap_or_else(|_| "info".into()))
        .init();
    let args = Args::parse();
    let faults = args.faults();
    let ca =
        ca_sim::CaSim::open(&args.data, faults).with_context(|| format!("could not open {}", args.data.display()))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("could not listen on {}", args.listen))?;
    // The one line on stdout: where to reach the CA (tests read it to learn the port).
    println!("listening on http://{}", listener.local_addr()?);
    ca.serve(listener).await.context("server failed")
}
