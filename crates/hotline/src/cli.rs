//! The command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use hotline_core::Role;

/// Loss-and-theft suspension hotline for Individual Number Cards and their JPKI certificates.
///
/// Configuration: built-in defaults, then `hotline.toml` (or --config), then HOTLINE_* environment variables.
#[derive(Debug, Parser)]
#[command(name = "hotline", version)]
pub struct Cli {
    /// Configuration file (TOML); a missing default file is fine.
    #[arg(long, global = true, env = "HOTLINE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log line format (logs go to standard error).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Json, env = "HOTLINE_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API and run the CA sync worker. With no database configured: the embedded
    /// default (SQLite in the data directory, demo registry and tokens on first start); with
    /// no HOTLINE_CA_URL: the development CA (ca-sim) in the same process.
    Serve {
        /// Address to listen on (overrides HOTLINE_LISTEN; default 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Serve the API only (no CA sync worker), for deployments that run `hotline worker` apart.
    Api {
        /// Address to listen on (overrides HOTLINE_LISTEN; default 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Run the CA sync worker only: deliver the outbox to HOTLINE_CA_URL and reconcile CRLs.
    /// Serves /healthz, /readyz and /metrics on the listen address.
    Worker {
        /// Address for /healthz, /readyz and /metrics (overrides HOTLINE_LISTEN).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Manage the outbox of changes for the certificate authority.
    Outbox {
        #[command(subcommand)]
        command: OutboxCommand,
    },
    /// Apply database migrations.
    Migrate,
    /// Load a synthetic registry of holders with cards, smartphones and certificates.
    Seed {
        /// How many holders to add.
        #[arg(long)]
        holders: usize,
        /// Write the generated holders (numbers in clear) to this JSON file, to try the API with.
        #[arg(long)]
        samples: Option<PathBuf>,
    },
    /// Load the registry from the issuing side's export (JSON Lines; docs/REGISTRY_IMPORT.md).
    Registry {
        #[command(subcommand)]
        command: RegistryCommand,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Manage the revocation cache.
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
    /// Check the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; the secret is printed alone on the last line.
    Create {
        #[arg(long, value_parser = parse_role)]
        role: Role,
        #[arg(long)]
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Import a registry file: new holders in bulk, changes to known ones (a new card, a renewed
    /// or revoked certificate, a replaced smartphone) through the outbox and the audit log.
    /// Idempotent: the same file again changes nothing, and an import cut short completes when run
    /// again. Exits 0 when every record was applied, 2 when some were refused (each named by line).
    Import {
        /// The file: one holder per line (JSON Lines).
        file: PathBuf,
        /// On a bad record: `stop` there (the records before it are applied, none after), or
        /// `continue` with the rest of the file.
        #[arg(long, value_enum, default_value_t = OnError::Stop)]
        on_error: OnError,
        /// Records per transaction of the bulk path (per `COPY` with --first-load).
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        chunk: u32,
        /// Load an empty registry in one transaction (PostgreSQL): keys and indexes dropped and built
        /// once at the end, several times faster. Killed, it rolls back whole and starts over when
        /// run again; with `--on-error stop`, a bad record loads nothing. The registry is locked
        /// until it ends: run it before the service takes calls.
        #[arg(long)]
        first_load: bool,
    },
    /// Write a synthetic registry file in the import's format, to try the import or measure it.
    /// It holds Individual Numbers in clear (valid check digits, random): never real ones.
    Generate {
        /// How many holders.
        #[arg(long)]
        holders: u64,
        /// Where to write it.
        out: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnError {
    Stop,
    Continue,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Rebuild the cache from the store; readers keep the old one until the new one is complete.
    Rebuild,
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Put every dead-lettered event back in the queue (audited).
    RetryDead,
    /// Show the backlog and the most recent dead letters.
    Show,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chain: exit 0 with the count when intact, 2 naming the first bad record.
    Verify,
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse::<Role>().map_err(|e| e.to_string())
}
