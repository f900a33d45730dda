//! The one assembly of the service: from a [`Config`], the store, the
//! revocation cache with its near-cache and sync loops, the status service,
//! the CA sync worker and the listeners, for `hotline serve`, `hotline api`
//! and `hotline worker` alike, and for the tests, which start the same
//! [`Application`] the binary runs. [`Application::run_until_stopped`]
//! serves until told to stop, then lets in-flight requests finish and the
//! worker settle its batch, each within a deadline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hotline_api::metrics::Metrics;
use hotline_api::ocsp::OcspService;
use hotline_api::ocsp::provision::{Sources, keep_current, provision};
use hotline_api::status_service::StatusService;
use hotline_api::{AppState, Clock, Services, SystemClock};
use hotline_cache::{NearCache, RevocationCache};
use hotline_store::Sealer;
use hotline_worker::{Worker, WorkerMetrics};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::ca::{self, WithoutCaUrl};
use crate::config::Config;
use crate::demo;

/// How long in-flight requests, and then the worker's batch in hand, get to finish after a stop.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(20);

/// Which parts of the service run in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parts {
    /// `hotline serve`: the API and the CA sync worker (with ca-sim when no CA is configured).
    ApiAndWorker,
    /// `hotline api`: the API alone.
    Api,
    /// `hotline worker`: the CA sync worker alone, with its probes on the listen address.
    Worker,
}

impl Parts {
    fn api(self) -> bool {
        self != Parts::Worker
    }

    fn worker(self) -> bool {
        self != Parts::Api
    }
}

/// How the shared cache is kept up to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheFollowing {
    /// A background loop every `cache_sync_interval_ms`, besides the step after each commit.
    Background,
    /// Only the step after each commit, and whatever the caller runs itself (tests of staleness).
    OnDemand,
}

/// What the assembly takes beyond the configuration.
#[derive(Clone)]
pub struct Assembly {
    pub parts: Parts,
    /// The reception rules' "now": the server's clock, or a test's.
    pub clock: Arc<dyn Clock>,
    pub cache_following: CacheFollowing,
}

impl Assembly {
    /// As the binary runs: the system clock, the background sync.
    pub fn of(parts: Parts) -> Self {
        Self { parts, clock: Arc::new(SystemClock), cache_following: CacheFollowing::Background }
    }
}

/// What serves HTTP in this process.
enum Serving {
    Api { listener: TcpListener, threads: usize, admin: Option<TcpListener>, state: AppState },
    Probes { listener: TcpListener, probes: hotline_api::Probes },
}

/// The service, built and listening, not yet serving.
pub struct Application {
    addr: SocketAddr,
    state: Option<AppState>,
    serving: Serving,
    worker: Option<Worker>,
    /// This process's sealer: its lease is given up when the process stops.
    sealer: Arc<Sealer>,
    /// The cache's sync loops and the sealer's: stopped (aborted) when the application is dropped.
    background: JoinSet<()>,
}

impl Application {
    pub async fn build(config: &Config, assembly: Assembly) -> anyhow::Result<Application> {
        config.warn_about_mismatches();
        let store = config.open_store_to_serve().await?;
        store.migrate().await?;
        let listener =
            TcpListener::bind(config.listen).await.with_context(|| format!("could not listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let mut background = JoinSet::new();
        // Every serving process may seal; the lease elects one at a time.
        let sealer = Arc::new(Sealer::new(store.clone(), config.sealer_lease_ms.millis()));
        let sealed = Arc::new(Notify::new());
        background.spawn(sealer.clone().run(SEAL_EVERY, sealed.clone()));
        if !assembly.parts.api() {
            let mut registry = Registry::with_prefix("hotline");
            let metrics = Arc::new(WorkerMetrics::new(&mut registry));
            let worker = ca::worker(config, store.clone(), metrics, WithoutCaUrl::Refuse).await?;
            tracing::info!(%addr, "worker metrics and health");
            let probes = hotline_api::probes(store, Arc::new(registry), config.timeouts().ready_probe);
            return Ok(Application {
                addr,
                state: None,
                serving: Serving::Probes { listener, probes },
                worker: Some(worker),
                sealer,
                background,
            });
        }

        let rules = Arc::new(config.rules()?);
        let pii_key = config.pii_key(store.backend())?;
        let threads = config.http_threads();
        let admin = match config.admin_listen {
            Some(at) => {
                let admin = TcpListener::bind(at).await.with_context(|| format!("could not listen on {at}"))?;
                tracing::info!(addr = %admin.local_addr()?, "on-call routes (/metrics, /ops) listening");
                Some(admin)
            }
            None => None,
        };
        let first_embedded_start = config.is_embedded() && !store.has_tokens().await?;
        let demo = if first_embedded_start { Some(demo::seed(&store, &pii_key).await?) } else { None };
        let now = assembly.clock.now();
        let rules_version = rules.snapshot(now).map(|s| s.rules_version).unwrap_or_default();
        tracing::info!(
            %addr,
            threads,
            backend = store.backend().as_str(),
            embedded = config.is_embedded(),
            rules_version,
            "listening"
        );
        tracing::info!(url = %format!("http://{addr}/console"), "console for operators and clerks");
        if config.is_embedded() {
            tracing::info!(data_dir = %config.data_dir.display(), "embedded default: SQLite in the data directory");
        }

        let status = Arc::new(status_service(config, &store, &mut background).await?.with_sealer(sealer.clone()));
        // Whichever process sealed, this one's caches read the newly sealed changes at once.
        background.spawn(follow_each_seal(status.clone(), sealed));
        if assembly.cache_following == CacheFollowing::Background {
            // The first step builds the cache if it is empty; validators are answered from the store meanwhile.
            background.spawn(status.sync.clone().run(config.cache_sync_interval_ms.millis()));
        }
        let mut metrics = Metrics::new();
        metrics.db_synchronous_standby_required.set(i64::from(config.database_synchronous_standby));
        let worker = if assembly.parts.worker() {
            let worker_metrics = Arc::new(WorkerMetrics::new(metrics.registry_mut()));
            Some(ca::worker(config, store.clone(), worker_metrics, WithoutCaUrl::StartCaSim).await?)
        } else {
            None
        };
        // The status page reports the CA's health: the worker's CA, or the configured one.
        let ca = match (&worker, &config.ca_url) {
            (Some(worker), _) => Some(worker.ca().clone()),
            (None, Some(url)) => Some(hotline_ca::CaClient::new(url, config.ca_timeout_ms.millis())?),
            (None, None) => None,
        };
        let ocsp = ocsp_responder(config, &store, ca.clone(), &mut background).await?;
        let state = AppState::from(Services {
            store,
            rules,
            clock: assembly.clock,
            pii_key,
            status,
            metrics: Arc::new(metrics),
            tokens: Arc::default(),
            ops: Arc::new(hotline_api::ops::Ops::new(ca)),
            ocsp,
            timeouts: config.timeouts(),
            console: config.console_settings(),
            requires_synchronous_standby: config.database_synchronous_standby,
        });
        if let Some(demo) = &demo {
            // With ca-sim in this process, its issuer certificates are in the data directory.
            let in_process_ca = config.ca_url.is_none() && assembly.parts.worker();
            let issuer_pems = in_process_ca.then(|| config.data_dir.join("ca-sim"));
            demo.print(addr, &state.rules, now, issuer_pems.as_deref());
        }
        Ok(Application {
            addr,
            state: Some(state.clone()),
            serving: Serving::Api { listener, threads, admin, state },
            worker,
            sealer,
            background,
        })
    }

    /// Where the API (or the worker's probes) listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API's shared state; none for a worker on its own.
    pub fn state(&self) -> Option<&AppState> {
        self.state.as_ref()
    }

    /// Serves until `stop` completes; then in-flight requests finish, then the
    /// worker settles the batch in hand, each within [`DRAIN_DEADLINE`].
    pub async fn run_until_stopped(self, stop: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        let Application { serving, worker, background, sealer, .. } = self;
        // Held until the end: dropping it stops the sync loops.
        let _background = background;
        let stop_serving = Arc::new(Notify::new());
        let stopped = {
            let stop_serving = stop_serving.clone();
            async move { stop_serving.notified().await }
        };
        let mut server = match serving {
            Serving::Api { listener, threads, admin, state } => {
                tokio::spawn(async move { hotline_api::serve(listener, threads, admin, state, stopped).await })
            }
            Serving::Probes { listener, probes } => tokio::spawn(probes.serve(listener, stopped)),
        };
        let stop_worker = Arc::new(Notify::new());
        let worker = worker.map(|worker| {
            let stop = stop_worker.clone();
            tokio::spawn(worker.run(async move { stop.notified().await }))
        });
        tokio::select! {
            finished = &mut server => return finished.context("server task failed")?.context("server failed"),
            () = stop => {}
        }
        tracing::info!(deadline_s = DRAIN_DEADLINE.as_secs(), "shutting down: finishing in-flight requests");
        stop_serving.notify_one();
        match tokio::time::timeout(DRAIN_DEADLINE, &mut server).await {
            Ok(finished) => finished.context("server task failed")?.context("server failed")?,
            Err(_) => {
                server.abort();
                tracing::warn!("in-flight requests did not finish before the deadline; exiting anyway");
            }
        }
        if let Some(mut worker) = worker {
            stop_worker.notify_one();
            if tokio::time::timeout(DRAIN_DEADLINE, &mut worker).await.is_err() {
                worker.abort();
                tracing::warn!(
                    "the CA sync worker did not finish its batch before the deadline; its leases will run out"
                );
            }
        }
        // What the drained requests committed is sealed now, and the lease given up for another at once.
        if let Err(e) = sealer.seal_all().await.and(sealer.release().await) {
            tracing::warn!(error = e.report(), "could not seal and give up the sealer's lease; it lapses by itself");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// How often a process looks for committed records and changes to seal
/// (and at once when a commit of its own pokes it).
const SEAL_EVERY: Duration = Duration::from_millis(50);

/// Brings the caches up to the stream each time this process's sealer sealed changes.
async fn follow_each_seal(status: Arc<StatusService>, sealed: Arc<Notify>) {
    loop {
        sealed.notified().await;
        status.after_seal().await;
    }
}

/// The status service: the shared cache, with a near-cache in front of it
/// when Redis holds the shared one and `near_cache` is on.
async fn status_service(
    config: &Config,
    store: &hotline_store::Store,
    background: &mut JoinSet<()>,
) -> anyhow::Result<StatusService> {
    let cache = config.cache()?;
    let issuers = store.issuers().await?;
    let mut status = StatusService::new(store.clone(), cache.clone(), issuers, config.status_settings());
    if let (RevocationCache::Redis(redis), true) = (&cache, config.near_cache) {
        let near = NearCache::new(store.clone(), redis.clone());
        background.spawn(near.clone().run(config.cache_sync_interval_ms.millis()));
        status = status.with_near_cache(near);
    }
    tracing::info!(
        cache = status.cache.backend_name(),
        near_cache = status.near.is_some(),
        freshness_ms = config.cache_freshness_ms.get(),
        "revocation cache"
    );
    Ok(status)
}

/// The OCSP responder, with its certificates from the responder directory
/// or the CA; refused at start-up if they do not check out. With neither,
/// it answers every request `unauthorized` (it serves no issuer), and says so.
async fn ocsp_responder(
    config: &Config,
    store: &hotline_store::Store,
    ca: Option<hotline_ca::CaClient>,
    background: &mut JoinSet<()>,
) -> anyhow::Result<Arc<OcspService>> {
    let ocsp = Arc::new(OcspService::new(config.ocsp_settings()).context("could not start the OCSP signers")?);
    if config.ocsp_responder_dir.is_none() && ca.is_none() {
        tracing::warn!("OCSP responder off: no HOTLINE_OCSP_RESPONDER_DIR and no CA to certify a responder");
        return Ok(ocsp);
    }
    let sources = Sources {
        issuers: store.issuers().await?,
        trust_dir: config.ca_trust_dir.clone(),
        responder_dir: config.ocsp_responder_dir.clone(),
        ca,
    };
    let pending = provision(&ocsp, sources).await.context("the OCSP responder cannot start")?;
    background.spawn(keep_current(ocsp.clone(), pending));
    Ok(ocsp)
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
