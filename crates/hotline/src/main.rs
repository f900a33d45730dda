//! `hotline`: the one binary. It parses the command line and configuration,
//! sets up logging and traces, and runs the assembled application (the
//! library's `app`) or a one-shot command; it holds no domain logic.

mod cache;
mod registry;
mod registry_reading;
mod seed;
mod telemetry;

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use hotline::app::{Application, Assembly, Parts, shutdown_signal};
use hotline::cli::{AuditCommand, CacheCommand, Cli, Command, OutboxCommand, RegistryCommand, TokenCommand};
use hotline::config;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The telemetry guard is kept until the runtime has stopped: dropping it flushes the last spans.
    let (config, _telemetry) = match configure(&cli) {
        Ok(ready) => ready,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(cli, config));
    // In-flight tasks (the worker's, the samplers) stop here, before the last spans are flushed.
    drop(runtime);
    match outcome {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "fatal");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Configuration first, since it says where traces go; then logging and traces.
fn configure(cli: &Cli) -> anyhow::Result<(config::Config, telemetry::Telemetry)> {
    let config = config::Config::load(cli.config.as_deref(), &hotline::command_line_variables())?;
    let export = telemetry::TraceExport::from_settings(config.otlp_endpoint.as_deref());
    let telemetry = telemetry::init(cli.log_format, &config.log, &export)?;
    Ok((config, telemetry))
}

/// Seals what a one-shot command recorded, if no serving process holds the
/// sealer's lease (one that does seals it within moments); a failure is only
/// said: the records are committed and the next sealer chains them.
async fn seal_left_behind(store: &hotline_store::Store, config: &config::Config) {
    let sealer = hotline_store::Sealer::new(store.clone(), config.sealer_lease_ms.millis());
    if let Err(e) = sealer.seal_all().await {
        tracing::warn!(error = e.report(), "could not seal the audit records just written; a running service will");
    }
    let _ = sealer.release().await;
}

/// Builds the application for `parts`, listening where `--listen` says, and serves until SIGTERM or Ctrl-C.
async fn serve(mut config: config::Config, listen: Option<SocketAddr>, parts: Parts) -> anyhow::Result<ExitCode> {
    if let Some(listen) = listen {
        config.listen = listen;
    }
    let application = Application::build(&config, Assembly::of(parts)).await?;
    application.run_until_stopped(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

async fn run(cli: Cli, config: config::Config) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve { listen } => serve(config, listen, Parts::ApiAndWorker).await,
        Command::Api { listen } => serve(config, listen, Parts::Api).await,
        Command::Worker { listen } => serve(config, listen, Parts::Worker).await,
        Command::Outbox { command } => {
            let store = config.open_store().await?;
            store.migrate().await?;
            match command {
                OutboxCommand::RetryDead => {
                    let n = store.retry_dead_letters("operator-cli", chrono::Utc::now()).await?;
                    println!("re-queued {n} dead-lettered events");
                    seal_left_behind(&store, &config).await;
                }
                OutboxCommand::Show => {
                    let summary = store.outbox_summary().await?;
                    let oldest = summary.oldest_pending.map_or_else(|| "-".to_owned(), |t| t.to_rfc3339());
                    println!("pending: {}  dead: {}  oldest pending since: {oldest}", summary.pending, summary.dead);
                    for d in store.dead_letters(20).await? {
                        println!(
                            "dead {} {} {} {} after {} attempts: {}",
                            d.event_id,
                            d.action,
                            d.issuer,
                            d.serial,
                            d.attempts,
                            d.last_error.unwrap_or_default()
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            let store = config.open_store().await?;
            let applied = store.migrate().await?;
            println!("migrations applied: {applied}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Seed { holders, samples } => {
            seed::run(&config, holders, samples.as_deref()).await?;
            seal_left_behind(&config.open_store().await?, &config).await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Registry { command: RegistryCommand::Import { file, on_error, chunk, first_load } } => {
            let code = registry::import(&config, &file, on_error, chunk as usize, first_load).await?;
            seal_left_behind(&config.open_store().await?, &config).await;
            Ok(code)
        }
        Command::Registry { command: RegistryCommand::Generate { holders, out } } => registry::generate(holders, &out),
        Command::Token { command: TokenCommand::Create { role, name } } => {
            let store = config.open_store().await?;
            store.migrate().await?;
            let (record, secret) = store.create_token(role, &name).await?;
            println!("created {} token {:?} (id {}); it is shown once:", record.role, record.name, record.id);
            println!("{secret}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Cache { command: CacheCommand::Rebuild } => cache::rebuild(&config).await.map(|()| ExitCode::SUCCESS),
        Command::Audit { command: AuditCommand::Verify } => {
            let store = config.open_store().await?;
            let report = store.verify_audit().await?;
            match report.first_break {
                None => {
                    println!("audit chain intact: {} records", report.records);
                    if let Some(oldest) = report.oldest_unsealed {
                        let age = (chrono::Utc::now() - oldest).num_milliseconds().max(0) as f64 / 1000.0;
                        println!("{} more records wait to be sealed, the oldest for {age:.1} s", report.unsealed);
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Some(b) => {
                    println!(
                        "audit chain BROKEN at record {}: {} ({} records verified before it)",
                        b.seq, b.problem, report.records
                    );
                    Ok(ExitCode::from(2))
                }
            }
        }
    }
}
