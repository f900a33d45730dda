//! Configuration: built-in defaults, then a TOML file, then `HOTLINE_*`
//! environment variables, read strictly at start-up. A key the file does not
//! know, a `HOTLINE_*` variable the service does not read, or a value out of
//! its range is refused with the setting's name, the value and what is
//! allowed (a mistyped key must never leave the fail-closed bound at its
//! default unnoticed). The list of settings is [`Config`]'s fields: the
//! environment's allow-list, the README's table check and the deployment
//! tests all derive it from there ([`settings`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use hotline_api::ocsp::OcspSettings;
use hotline_api::status_service::StatusSettings;
use hotline_api::{ConsoleSettings, Timeouts};
use hotline_cache::{MemoryCache, RedisCache, RedisSettings, RevocationCache};
use hotline_core::{PiiKey, RuleBook};
use hotline_store::{Backend, Store};
use hotline_worker::{Backoff, WorkerSettings};
use serde::{Deserialize, Serialize};

pub use crate::bounded::Bounded;
use crate::env_text::EnvText;

/// Where the embedded default keeps its database and key, relative to the working directory.
const DEFAULT_DATA_DIR: &str = "hotline-data";
const DEFAULT_CONFIG_FILE: &str = "hotline.toml";
/// The prefix of every environment variable the service reads.
pub const ENV_PREFIX: &str = "HOTLINE_";
/// Logs: informative, without the database driver's and HTTP library's chatter.
const DEFAULT_LOG: &str = "info,sqlx=warn,hyper=warn";

/// Every setting. Each field is a key in `hotline.toml` and a `HOTLINE_<KEY>`
/// variable; the README's configuration table lists each one (a test holds it to this list).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `postgres://…` or `sqlite:…`; absent means the embedded default.
    pub database_url: Option<String>,
    pub listen: SocketAddr,
    /// Serve `/metrics` and `/ops` on this address instead of beside the API.
    pub admin_listen: Option<SocketAddr>,
    /// Threads that serve the API; absent means one per core this process may use.
    pub http_threads: Option<Bounded<1, 1024>>,
    /// How long a client may take to send a request's head; then the connection is closed (ms).
    pub http_header_timeout_ms: Bounded<100, 600_000>,
    /// How long a client may take to send a request's body; then `408` (ms).
    pub http_body_timeout_ms: Bounded<100, 600_000>,
    /// How long `/readyz` waits for the database before answering `503` (ms).
    pub ready_timeout_ms: Bounded<10, 60_000>,
    /// How long a suspension or release keeps trying through a database outage
    /// (every attempt with its Idempotency-Key) before it is answered `503` (ms);
    /// below the 10-second request deadline.
    pub write_deadline_ms: Bounded<100, 9_000>,
    /// The database must have a synchronous standby (a replicated deployment):
    /// `hotline_db_synchronous_standby_required` is 1, so the alert fires when none streams.
    pub database_synchronous_standby: bool,
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
    pub cache_freshness_ms: Bounded<100, 60_000>,
    /// While the database cannot be reached, the caches go on answering with
    /// their last confirmed state (its true, older `as_of`) if it is at most
    /// this old (ms); past it, 503 / `tryLater`. At least the freshness bound,
    /// at most the OCSP validity (an answer must not be expired when signed).
    pub cache_max_staleness_ms: Bounded<100, 86_400_000>,
    /// How often each instance brings the cache up to the store (ms).
    pub cache_sync_interval_ms: Bounded<10, 600_000>,
    /// With Redis: keep an in-process near-cache in each instance as well.
    pub near_cache: bool,
    /// The certificate authority's base URL; absent means ca-sim runs in this process.
    pub ca_url: Option<String>,
    /// Bound on each call to the CA (ms).
    pub ca_timeout_ms: Bounded<100, 600_000>,
    /// A directory of `{issuer}.pem` issuer certificates to verify CRLs with;
    /// absent means each is pinned the first time it is fetched from the CA.
    pub ca_trust_dir: Option<PathBuf>,
    /// Outbox events leased per claim.
    pub worker_batch: Bounded<1, 10_000>,
    /// Outbox events sent to the CA at the same time.
    pub worker_concurrency: Bounded<1, 1_024>,
    /// Attempts before a failing event is dead-lettered.
    pub worker_max_attempts: Bounded<1, 1_000>,
    /// First retry waits up to this long (ms); each further retry doubles it, up to the cap.
    pub worker_backoff_base_ms: Bounded<1, 3_600_000>,
    pub worker_backoff_cap_ms: Bounded<1, 86_400_000>,
    /// How long the worker waits before looking again when nothing was due (ms).
    pub worker_poll_ms: Bounded<1, 60_000>,
    /// How long the sealer's lease lasts (ms): one process at a time chains the
    /// audit log and orders the change stream; another takes over within it
    /// when that process dies.
    pub sealer_lease_ms: Bounded<1_000, 3_600_000>,
    /// How long a worker's lease on the events it is sending lasts (ms); a
    /// live worker renews it every third of that, so a dead worker's events
    /// are taken over within about one lease.
    pub worker_lease_ms: Bounded<1_000, 3_600_000>,
    /// How often each issuer's CRL is reconciled with the registry (s).
    pub reconcile_interval_s: Bounded<1, 86_400>,
    /// An OTLP/HTTP collector (`http://collector:4318`) to export traces to;
    /// absent means the standard `OTEL_EXPORTER_OTLP_ENDPOINT`, or no export.
    pub otlp_endpoint: Option<String>,
    /// Log filter (`info`, `debug`, `hotline_api=debug`, …).
    pub log: String,
    /// How long an OCSP answer is valid (`nextUpdate` − `thisUpdate`, s): a
    /// validator that keeps answers sees a suspension at the latest this late.
    pub ocsp_validity_s: Bounded<10, 86_400>,
    /// A kept OCSP answer is signed again once this share of its validity has
    /// passed (%), each answer a little later by a jitter of its own.
    pub ocsp_resign_percent: Bounded<10, 90>,
    /// Answer OCSP clients without a validator token.
    pub ocsp_anonymous: bool,
    /// A directory of `{issuer}.pem` + `{issuer}.key` delegated responder
    /// certificates and keys; absent means each instance has one certified by the CA.
    pub ocsp_responder_dir: Option<PathBuf>,
    /// The most memory the signed OCSP answers kept may take (MiB).
    pub ocsp_cache_mb: Bounded<1, 65_536>,
    /// Threads that sign OCSP answers; absent means one per core.
    pub ocsp_signer_threads: Option<Bounded<1, 256>>,
    /// A console session ends after this long without use (s); desks are shared.
    pub console_idle_timeout_s: Bounded<60, 86_400>,
    /// Mark the console's session cookie `Secure`: set it when a TLS proxy is in front.
    pub console_secure_cookie: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: None,
            http_threads: None,
            http_header_timeout_ms: Bounded::of(10_000),
            http_body_timeout_ms: Bounded::of(5_000),
            ready_timeout_ms: Bounded::of(500),
            write_deadline_ms: Bounded::of(8_000),
            database_synchronous_standby: false,
            pii_key: None,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            rules_file: None,
            redis_url: None,
            redis_prefix: "hl".into(),
            cache_freshness_ms: Bounded::of(2_000),
            cache_max_staleness_ms: Bounded::of(60_000),
            cache_sync_interval_ms: Bounded::of(250),
            near_cache: true,
            ca_url: None,
            ca_timeout_ms: Bounded::of(5_000),
            ca_trust_dir: None,
            worker_batch: Bounded::of(64),
            worker_concurrency: Bounded::of(16),
            worker_max_attempts: Bounded::of(20),
            worker_backoff_base_ms: Bounded::of(500),
            worker_backoff_cap_ms: Bounded::of(300_000),
            worker_poll_ms: Bounded::of(100),
            worker_lease_ms: Bounded::of(5_000),
            sealer_lease_ms: Bounded::of(5_000),
            reconcile_interval_s: Bounded::of(300),
            otlp_endpoint: None,
            log: DEFAULT_LOG.into(),
            ocsp_validity_s: Bounded::of(60),
            ocsp_resign_percent: Bounded::of(50),
            ocsp_anonymous: false,
            ocsp_responder_dir: None,
            ocsp_cache_mb: Bounded::of(128),
            ocsp_signer_threads: None,
            console_idle_timeout_s: Bounded::of(900),
            console_secure_cookie: false,
        }
    }
}

/// Every setting's key, as [`Config`] names it (`cache_freshness_ms`).
pub fn settings() -> Vec<String> {
    match serde_json::to_value(Config::default()) {
        Ok(serde_json::Value::Object(fields)) => fields.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// The environment variable of a setting (`HOTLINE_CACHE_FRESHNESS_MS`).
pub fn variable(setting: &str) -> String {
    format!("{ENV_PREFIX}{}", setting.to_ascii_uppercase())
}

/// The known name closest to `unknown`, if one is close enough to be a likely typo.
fn nearest<'a>(unknown: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (strsim::damerau_levenshtein(&unknown.to_ascii_lowercase(), &k.to_ascii_lowercase()), k))
        .filter(|(distance, k)| *distance <= 3.max(k.len() / 4))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k)
}

fn suggestion(nearest: Option<&str>) -> String {
    nearest.map(|n| format!("; did you mean {n}?")).unwrap_or_default()
}

impl Config {
    /// Reads the configuration: defaults, the file, then the process's `HOTLINE_*`
    /// variables. `also_read` names the variables read elsewhere (the command line's).
    pub fn load(file: Option<&Path>, also_read: &[String]) -> anyhow::Result<Self> {
        refuse_unknown_variables(std::env::vars_os().filter_map(|(k, _)| k.into_string().ok()), also_read)?;
        // Only the file named, or the default one in the working directory: never one found in a parent directory.
        let file = match file {
            Some(path) if !path.exists() => bail!("configuration file {} does not exist", path.display()),
            Some(path) => Some(path),
            None => Some(Path::new(DEFAULT_CONFIG_FILE)).filter(|p| p.exists()),
        };
        let names = settings();
        let keys: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            figment = figment.merge(Toml::file_exact(path));
        }
        let config: Config =
            figment.merge(EnvText(Env::prefixed(ENV_PREFIX).only(&keys))).extract().map_err(|e| explain(e, &keys))?;
        config.validate()?;
        Ok(config)
    }

    /// What no single setting's range can say: how settings relate, and the values that are text.
    fn validate(&self) -> anyhow::Result<()> {
        if let Some(url) = &self.database_url
            && Backend::from_url(url).is_none()
        {
            bail!("setting database_url (HOTLINE_DATABASE_URL) must start with postgres:// or sqlite:");
        }
        if let Some(hex) = &self.pii_key
            && PiiKey::from_hex(hex).is_err()
        {
            // The value is a secret: never repeated.
            bail!("setting pii_key (HOTLINE_PII_KEY) must be 64 or more hex digits (e.g. `openssl rand -hex 32`)");
        }
        if let Some(url) = &self.redis_url
            && !["redis://", "rediss://", "redis+unix://", "unix://"].iter().any(|s| url.starts_with(s))
        {
            bail!("setting redis_url (HOTLINE_REDIS_URL) = {url:?} must start with redis://, rediss:// or unix://");
        }
        let prefix_ok = !self.redis_prefix.is_empty()
            && self.redis_prefix.len() <= 64
            && self.redis_prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !prefix_ok {
            bail!(
                "setting redis_prefix (HOTLINE_REDIS_PREFIX) = {:?} must be 1 to 64 characters of A-Z, a-z, 0-9, '-', '_' and '.'",
                self.redis_prefix
            );
        }
        for (setting, url) in [("ca_url", &self.ca_url), ("otlp_endpoint", &self.otlp_endpoint)] {
            if let Some(url) = url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                bail!("setting {setting} ({}) = {url:?} must start with http:// or https://", variable(setting));
            }
        }
        let staleness = self.cache_max_staleness_ms.get();
        if staleness < self.cache_freshness_ms.get() || staleness > self.ocsp_validity_s.get() * 1000 {
            bail!(
                "setting cache_max_staleness_ms (HOTLINE_CACHE_MAX_STALENESS_MS) = {staleness} must be at least cache_freshness_ms = {} and at most the OCSP validity, ocsp_validity_s = {} s: an answer older than that would be expired when it is given",
                self.cache_freshness_ms,
                self.ocsp_validity_s
            );
        }
        if self.worker_backoff_cap_ms.get() < self.worker_backoff_base_ms.get() {
            bail!(
                "setting worker_backoff_cap_ms (HOTLINE_WORKER_BACKOFF_CAP_MS) = {} is below worker_backoff_base_ms = {}: the cap must be at least the first wait",
                self.worker_backoff_cap_ms,
                self.worker_backoff_base_ms
            );
        }
        Ok(())
    }

    /// Settings that work but defeat their purpose, said once at start-up.
    pub fn warn_about_mismatches(&self) {
        if self.cache_freshness_ms.get() <= self.cache_sync_interval_ms.get() {
            tracing::warn!(
                cache_freshness_ms = self.cache_freshness_ms.get(),
                cache_sync_interval_ms = self.cache_sync_interval_ms.get(),
                "the cache is synced less often than its freshness bound: validators will often be answered by the database"
            );
        }
    }

    /// How many threads serve the API.
    pub fn http_threads(&self) -> usize {
        self.http_threads.map_or_else(|| std::thread::available_parallelism().map_or(1, usize::from), Bounded::count)
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

    /// The store for a one-shot command: no bound on a statement.
    pub async fn open_store(&self) -> anyhow::Result<Store> {
        Ok(Store::connect(&self.database_url()?).await?)
    }

    /// The store for a serving process (API, worker): every statement bounded.
    pub async fn open_store_to_serve(&self) -> anyhow::Result<Store> {
        Ok(Store::connect_to_serve(&self.database_url()?).await?)
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
                timeout: std::time::Duration::from_millis(250),
            })?)),
        }
    }

    pub fn status_settings(&self) -> StatusSettings {
        StatusSettings {
            freshness_bound: self.cache_freshness_ms.millis(),
            max_staleness: self.cache_max_staleness_ms.millis(),
            ..StatusSettings::default()
        }
    }

    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            header_read: self.http_header_timeout_ms.millis(),
            body_read: self.http_body_timeout_ms.millis(),
            ready_probe: self.ready_timeout_ms.millis(),
            write_deadline: self.write_deadline_ms.millis(),
        }
    }

    pub fn ocsp_settings(&self) -> OcspSettings {
        let validity = chrono::Duration::seconds(self.ocsp_validity_s.signed());
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        OcspSettings {
            validity,
            resign_after: validity * i32::try_from(self.ocsp_resign_percent.get()).unwrap_or(50) / 100,
            anonymous: self.ocsp_anonymous,
            cache_bytes: self.ocsp_cache_mb.get() << 20,
            signer_threads: self.ocsp_signer_threads.map_or(cores, Bounded::count),
            ..OcspSettings::default()
        }
    }

    pub fn console_settings(&self) -> ConsoleSettings {
        ConsoleSettings {
            idle_timeout: std::time::Duration::from_secs(self.console_idle_timeout_s.get()),
            secure_cookie: self.console_secure_cookie,
        }
    }

    pub fn worker_settings(&self) -> WorkerSettings {
        WorkerSettings {
            batch: self.worker_batch.signed(),
            concurrency: self.worker_concurrency.count(),
            lease: self.worker_lease_ms.millis(),
            poll: self.worker_poll_ms.millis(),
            max_attempts: self.worker_max_attempts.signed(),
            backoff: Backoff { base: self.worker_backoff_base_ms.millis(), cap: self.worker_backoff_cap_ms.millis() },
            reconcile_interval: self.reconcile_interval_s.seconds(),
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

/// Refuses a `HOTLINE_*` variable that no setting and no command-line option
/// reads, naming the nearest one that exists.
pub fn refuse_unknown_variables(present: impl IntoIterator<Item = String>, also_read: &[String]) -> anyhow::Result<()> {
    let mut known: Vec<String> = settings().iter().map(|s| variable(s)).collect();
    known.extend(also_read.iter().cloned());
    let unknown: Vec<String> =
        present.into_iter().filter(|v| v.starts_with(ENV_PREFIX) && !known.contains(v)).collect();
    if let Some(first) = unknown.first() {
        let near = nearest(first, known.iter().map(String::as_str));
        bail!(
            "unknown environment variable {first}{}{}",
            suggestion(near),
            if unknown.len() > 1 {
                format!(" (and {} more: {})", unknown.len() - 1, unknown[1..].join(", "))
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

/// Turns figment's error into one that names the setting, where it was set and what is allowed.
fn explain(error: figment::Error, keys: &[&str]) -> anyhow::Error {
    let lines: Vec<String> = error
        .into_iter()
        .map(|e| {
            let from = match e.metadata.as_ref() {
                Some(m) if m.name.contains("environment") => e.path.last().map(|k| variable(k)),
                Some(m) => m.source.as_ref().map(|s| s.to_string()).or_else(|| Some(m.name.to_string())),
                None => None,
            };
            let from = from.map(|f| format!(" ({f})")).unwrap_or_default();
            match &e.kind {
                figment::error::Kind::UnknownField(field, _) => {
                    format!("unknown setting {field}{from}{}", suggestion(nearest(field, keys.iter().copied())))
                }
                kind => {
                    let key = e.path.join(".");
                    format!("setting {key}{from}: {kind}")
                }
            }
        })
        .collect();
    anyhow::anyhow!("invalid configuration: {}", lines.join("; "))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_a_setting_with_its_variable() {
        let names = settings();
        assert!(names.contains(&"cache_freshness_ms".to_owned()) && names.contains(&"database_url".to_owned()));
        assert!(names.contains(&"log".to_owned()), "Option fields and plain ones alike: {names:?}");
        assert_eq!(variable("cache_freshness_ms"), "HOTLINE_CACHE_FRESHNESS_MS");
    }

    #[test]
    fn a_mistyped_name_is_told_the_nearest_known_one() {
        let names = settings();
        let known = names.iter().map(String::as_str);
        assert_eq!(nearest("cache_freshnes_ms", known.clone()), Some("cache_freshness_ms"));
        assert_eq!(nearest("worker_bach", known.clone()), Some("worker_batch"));
        assert_eq!(nearest("something_else_entirely", known), None);
    }

    #[test]
    fn unknown_variables_are_refused_and_known_ones_pass() {
        let also = ["HOTLINE_CONFIG".to_owned()];
        let ok = ["HOTLINE_DATABASE_URL", "HOTLINE_CONFIG", "PATH", "OTEL_SERVICE_NAME"].map(str::to_owned);
        assert!(refuse_unknown_variables(ok, &also).is_ok());
        let err = refuse_unknown_variables(["HOTLINE_CACHE_FRESHNES_MS".to_owned()], &also).unwrap_err().to_string();
        assert!(
            err.contains("HOTLINE_CACHE_FRESHNES_MS") && err.contains("did you mean HOTLINE_CACHE_FRESHNESS_MS"),
            "{err}"
        );
    }

    #[test]
    #[expect(clippy::result_large_err, reason = "figment's Jail takes a closure that returns figment's own error")]
    fn a_text_setting_of_digits_is_read_as_written() {
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            let key = format!("{:0>64}", 7);
            jail.set_env("HOTLINE_REDIS_PREFIX", "2026");
            jail.set_env("HOTLINE_PII_KEY", &key);
            jail.set_env("HOTLINE_WORKER_BATCH", "64");
            let config = Config::load(None, &[]).map_err(|e| e.to_string())?;
            assert_eq!(config.redis_prefix, "2026");
            assert_eq!(config.pii_key.as_deref(), Some(key.as_str()), "its leading zeros kept");
            assert_eq!(config.worker_batch.get(), 64);
            Ok(())
        });
    }
}
