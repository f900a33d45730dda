//! Load generators for the hotline, reporting latency percentiles next to a
//! ceiling measured in the same run on the same machine.
//!
//! `suspend`: builds a PostgreSQL-backed deployment from scratch (database,
//! migrations, synthetic registry, operator token), starts the real release
//! binary, sends `POST /v1/suspensions` for distinct holders at a fixed
//! concurrency, and measures pgbench's TPC-B-like write transactions at the
//! same concurrency as the ceiling.
//!
//! `status`: the same deployment with Redis, a registry of about 100 000
//! certificates with 10 000 held, and the validator status endpoint measured
//! with wrk next to nginx serving a static 200 and `redis-benchmark -t get`.
//!
//! `ocsp`: the OCSP responder's GET (from the signed-response cache) next to
//! nginx, POST with a nonce (signed per request), a signature's cost, and the
//! time from a suspension to the first revoked OCSP answer elsewhere.
//!
//! `import`: `hotline registry import` of a generated first load, and of the
//! same file again, next to a bare `COPY` of the same certificate rows and
//! `pg_restore` of the database the first load made.
//!
//! `rebuild`: `hotline cache rebuild` at two sizes of one registry (the ratio
//! shows whether it is linear), an API instance's near-cache filled, and ten
//! instances filling theirs at once against one alone.
//!
//! `failover`: crash failovers of a replicated PostgreSQL (Patroni, etcd,
//! HAProxy) under a steady stream of suspensions and validator queries: the
//! time to a new primary and to the first write, the validators answered,
//! nothing acknowledged lost; switchovers without a failed request.
//! `cluster` starts that cluster for the other benchmarks to run on.
//!
//! `ca-sync`: commit-to-CA lag at a steady suspension rate with added CA
//! latency, and the outbox drain rate with one and two workers next to what
//! the CA takes straight from a client.

mod ca_sync;
mod common;
mod cpu;
mod failover;
mod harness;
mod import;
mod instances;
mod ocsp;
mod rawhttp;
mod rebuild;
mod status;
mod suspend;
mod visibility;

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
    /// Validator status throughput and latency, against nginx and redis-benchmark.
    Status(status::Args),
    /// Suspension through one instance → visible through another.
    Visibility(visibility::Args),
    /// `hotline cache rebuild` time and memory for about a million certificates.
    Rebuild(rebuild::Args),
    /// `hotline registry import` of a first load and of the same file again, against a bare `COPY`.
    Import(import::Args),
    /// CA sync lag at a steady rate, and the outbox drain rate with one and two workers.
    CaSync(ca_sync::Args),
    /// OCSP GET and POST throughput and latency against nginx, a signature's cost, and visibility.
    Ocsp(ocsp::Args),
    /// Crash failovers and switchovers of a Patroni cluster under suspensions and validator queries.
    Failover(failover::Args),
    /// A Patroni cluster behind HAProxy, its URL printed, until Ctrl-C.
    Cluster,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Suspend(args) => suspend::run(args).await,
        Command::Status(args) => status::run(args).await,
        Command::Visibility(args) => visibility::run(args).await,
        Command::Rebuild(args) => rebuild::run(args).await,
        Command::CaSync(args) => ca_sync::run(args).await,
        Command::Import(args) => import::run(args).await,
        Command::Ocsp(args) => ocsp::run(args).await,
        Command::Failover(args) => failover::run(args).await,
        Command::Cluster => failover::cluster().await,
    }
}
