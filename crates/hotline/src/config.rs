//! Configuration: built-in defaults, then a TOML file, then `HOTLINE_*`
//! environment variables; validated at start-up with a clear message.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use std::time::Duration;

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use hotline_api::status_service::StatusSettings;
use hotline_cache::{MemoryCache, RedisCache, RedisSettings, RevocationCache};
use hotline_core::{PiiKey, RuleBook};
use hotline_store::{Backend, Store};
use hotline_worker::{Backoff, WorkerSettings};
use serde::{Deserialize, Serialize};

/// Where the embedded default keeps its database and key, relative to the working directory.
const DEFAULT_DATA_DIR: &str = "hotline-data";
const DEFAULT_CONFIG_FILE: &str = "hotline.toml";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// `postgres://…` or `sqlite:…`; absent means the embedded default.
    pub database_url: Option<String>,
    pub listen: SocketAddr,
    /// Serve `/metrics` and `/ops` on this address instead of beside the API.
    pub admin_listen: Option<SocketAddr>,
    /// Threads that serve the API, each with its own socket on the listen
    /// address; absent means one per core this process may use.
    pub http_threads: Option<usize>,
    /// Hex, at least 32 bytes. Required with PostgreSQL; generated in the data directory otherwise.
    pub pii_key: Option<String>,
    pub data_dir: PathBuf,
    /// A reception-rule file replacing the built-in rules.
    pub rules_file: Option<PathBuf>,
    /// `redis://…`: the shared revocation cache; absent means an in-process cache.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key (several deployments can share one Redis).
    pub redis_prefix: String,
    /// The cache answers validators only if it was confirmed complete this recently (ms).
    pub cache_freshness_ms: u64,
    /// How often each instance brings the cache up to the store (ms).
    pub cache_sync_interval_ms: u64,
    /// With Redis: keep an in-process near-cache in each instance as well.
    pub near_cache: bool,
    /// The certificate authority's base URL; absent means ca-sim runs in this process.
    pub ca_url: Option<String>,
    /// Bound on each call to the CA (ms).
    pub ca_timeout_ms: u64,
    /// A directory of `{issuer}.pem` issuer certificates to verify CRLs with;
    /// absent means each is pinned the first time it is fetched from the CA.
    pub ca_trust_dir: Option<PathBuf>,
    /// Outbox events leased per claim.
    pub worker_batch: i64,
    /// Outbox events sent to the CA at the same time.
    pub worker_concurrency: usize,
    /// Attempts before a failing event is dead-lettered.
    pub worker_max_attempts: i64,
    /// First retry waits up to this long (ms); each further retry doubles it, up to the cap.
    pub worker_backoff_base_ms: u64,
    pub worker_backoff_cap_ms: u64,
    /// How long the worker waits before looking again when nothing was due (ms).
    pub worker_poll_ms: u64,
    /// How long a worker's lease on the events it is sending lasts (ms).
    pub worker_lease_ms: u64,
    /// How often each issuer's CRL is reconciled with the registry (s).
    pub reconcile_interval_s: u64,
    /// An OTLP/HTTP collector (`http://collector:4318`) to export traces to;
    /// absent means the standard `OTEL_EXPORTER_OTLP_ENDPOINT`, or no export.
    pub otlp_endpoint: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: None,
            http_threads: None,
            pii_key: None,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            rules_file: None,
            redis_url: None,
            redis_prefix: "hl".into(),
            cache_freshness_ms: 2_000,
            cache_sync_interval_ms: 250,
            near_cache: true,
            ca_url: None,
            ca_timeout_ms: 5_000,
            ca_trust_dir: None,
            worker_batch: 64,
            worker_concurrency: 16,
            worker_max_attempts: 20,
            worker_backoff_base_ms: 500,
            worker_backoff_cap_ms: 300_000,
            worker_poll_ms: 100,
            worker_lease_ms: 60_000,
            reconcile_interval_s: 300,
            otlp_endpoint: None,
        }
    }
}

impl Config {
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let toml = match file {
            Some(path) => {
                if !path.exists() {
                    bail!("configuration file {} does not exist", path.display());
                }
                Toml::file(path)
            }
            None => Toml::file(DEFAULT_CONFIG_FILE),
        };
        Figment::from(Serialized::defaults(Config::default()))
            .merge(toml)
            .merge(Env::prefixed("HOTLINE_").only(&[
                "database_url",
                "listen",
                "admin_listen",
                "http_threads",
                "pii_key",
                "data_dir",
                "rules_file",
                "redis_url",
                "redis_prefix",
                "cache_freshness_ms",
                "cache_sync_interval_ms",
                "near_cache",
                "ca_url",
                "ca_timeout_ms",
                "ca_trust_dir",
                "worker_batch",
                "worker_concurrency",
                "worker_max_attempts",
                "worker_backoff_base_ms",
                "worker_backoff_cap_ms",
                "worker_poll_ms",
                "worker_lease_ms",
                "reconcile_interval_s",
                "otlp_endpoint",
            ]))
            .extract()
            .context("invalid configuration")
    }

    /// How many threads serve the API (at least one).
    pub fn http_threads(&self) -> usize {
        self.http_threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from)).max(1)
    }

    /// True when no database is configured: SQLite in the data directory, demo data on first start.
    pub fn is_embedded(&self) -> bool {
        self.database_url.is_none()
    }

    pub fn database_url(&self) -> anyhow::Result<String> {
        match &self.database_url {
            Some(url) => Ok(url.clone()),
            None => {
                std::fs::create_dir_all(&self.data_dir)
                    .with_context(|| format!("could not create the data directory {}", self.data_dir.display()))?;
                Ok(format!("sqlite://{}", self.data_dir.join("hotline.db").display()))
            }
        }
    }

    pub async fn open_store(&self) -> anyhow::Result<Store> {
        Store::connect(&self.database_url()?).await
    }

    /// The PII key: configured, or (for SQLite only) generated once and kept in the data directory.
    pub fn pii_key(&self, backend: Backend) -> anyhow::Result<PiiKey> {
        if let Some(hex) = &self.pii_key {
            return PiiKey::from_hex(hex).context("HOTLINE_PII_KEY is invalid");
        }
        if backend == Backend::Postgres {
            bail!("HOTLINE_PII_KEY is required with PostgreSQL (64 or more hex digits; e.g. `openssl rand -hex 32`)");
        }
        let path = self.data_dir.join("pii.key");
        if !path.exists() {
            std::fs::create_dir_all(&self.data_dir)?;
            let key: [u8; 32] = rand::random();
            write_secret(&path, &hex::encode(key))?;
            tracing::info!(path = %path.display(), "generated a PII key for the embedded database");
        }
        let hex = std::fs::read_to_string(&path).with_context(|| format!("could not read {}", path.display()))?;
        PiiKey::from_hex(&hex).with_context(|| format!("{} does not hold a valid key", path.display()))
    }

    /// The revocation cache: Redis when configured, in-process otherwise.
    pub fn cache(&self) -> anyhow::Result<RevocationCache> {
        match &self.redis_url {
            None => Ok(RevocationCache::Memory(MemoryCache::new())),
            Some(url) => Ok(RevocationCache::Redis(RedisCache::new(RedisSettings {
                url: url.clone(),
                prefix: self.redis_prefix.clone(),
                timeout: Duration::from_millis(250),
            })?)),
        }
    }

    pub fn status_settings(&self) -> StatusSettings {
        StatusSettings { freshness_bound: Duration::from_millis(self.cache_freshness_ms), ..StatusSettings::default() }
    }

    pub fn worker_settings(&self) -> WorkerSettings {
        WorkerSettings {
            batch: self.worker_batch.max(1),
            concurrency: self.worker_concurrency.max(1),
            lease: Duration::from_millis(self.worker_lease_ms),
            poll: Duration::from_millis(self.worker_poll_ms),
            max_attempts: self.worker_max_attempts.max(1),
            backoff: Backoff {
                base: Duration::from_millis(self.worker_backoff_base_ms),
                cap: Duration::from_millis(self.worker_backoff_cap_ms),
            },
            reconcile_interval: Duration::from_secs(self.reconcile_interval_s.max(1)),
        }
    }

    /// The reception rules: the configured file, or the built-in rules.
    pub fn rules(&self) -> anyhow::Result<RuleBook> {
        match &self.rules_file {
            None => RuleBook::builtin().context("the built-in rules are invalid"),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("could not read rule file {}", path.display()))?;
                RuleBook::from_toml(&text).with_context(|| format!("rule file {} refused", path.display()))
            }
        }
    }
}

/// Writes a secret readable by its owner only.
fn write_secret(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("could not create {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    Ok(())
}
