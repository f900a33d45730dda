//! Load generators for the hotline, reporting latency percentiles next to a
//! ceiling measured in the same run on the same machine.
//!
//! `suspend`: builds a PostgreSQL-backed deployment from scratch (database,
//! migrations, synthetic registry, operator token), starts the real release
//! binary, sends `POST /v1/suspensions` for distinct holders at a fixed
//! concurrency, and measures pgbench's TPC-B-like write transactions at the
//! same concurrency as the ceiling.

mod suspend;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "hotline-loadtests")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Suspension latency at a fixed concurrency, against pgbench.
    Suspend(suspend::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Suspend(args) => suspend::run(args).await,
    }
}
