//! `hotline serve` and `hotline api`: open the store, migrate, (embedded,
//! first start) seed the demo, and serve the API until SIGTERM or Ctrl-C,
//! letting in-flight requests finish within a deadline. `serve` also runs the
//! CA sync worker (and, with no CA configured, ca-sim) in the same process.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hotline_api::metrics::Metrics;
use hotline_api::status_service::StatusService;
use hotline_api::{AppState, Services, SystemClock};
use hotline_cache::{NearCache, RevocationCache};
use hotline_worker::WorkerMetrics;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::config::Config;
use crate::demo;

/// How long in-flight requests get to finish after a shutdown signal.
const DRAIN_DEADLINE: Duration = Duration::from_secs(20);

/// Which parts run in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parts {
    ApiOnly,
    ApiAndWorker,
}

pub async fn run(config: Config, listen: Option<SocketAddr>, parts: Parts) -> anyhow::Result<()> {
    let rules = Arc::new(config.rules()?);
    let store = config.open_store().await?;
    store.migrate().await?;
    let pii_key = config.pii_key(store.backend())?;
    let listen = listen.unwrap_or(config.listen);
    let listener = TcpListener::bind(listen).await.with_context(|| format!("could not listen on {listen}"))?;
    let addr = listener.local_addr()?;
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
    let rules_version = rules.snapshot(chrono::Utc::now()).map(|s| s.rules_version).unwrap_or_default();
    tracing::info!(
        %addr,
        threads,
        backend = store.backend().as_str(),
        embedded = config.is_embedded(),
        rules_version,
        "listening"
    );
    if config.is_embedded() {
        tracing::info!(data_dir = %config.data_dir.display(), "embedded default: SQLite in the data directory");
    }
    if let Some(demo) = &demo {
        demo.print(addr, &rules, chrono::Utc::now());
    }

    let cache = config.cache()?;
    let issuers = store.issuers().await?;
    let interval = Duration::from_millis(config.cache_sync_interval_ms);
    let mut status = StatusService::new(store.clone(), cache.clone(), issuers, config.status_settings());
    if let (RevocationCache::Redis(redis), true) = (&cache, config.near_cache) {
        let near = NearCache::new(store.clone(), redis.clone());
        tokio::spawn(near.clone().run(interval));
        status = status.with_near_cache(near);
    }
    let status = Arc::new(status);
    tracing::info!(
        cache = status.cache.backend_name(),
        near_cache = status.near.is_some(),
        freshness_ms = config.cache_freshness_ms,
        "revocation cache"
    );
    // The first step builds the cache if it is empty; validators are answered from the store meanwhile.
    tokio::spawn(status.sync.clone().run(interval));
    let mut metrics = Metrics::new();
    let worker = match parts {
        Parts::ApiOnly => None,
        Parts::ApiAndWorker => {
            let worker_metrics = Arc::new(WorkerMetrics::new(metrics.registry_mut()));
            Some(crate::ca::worker(&config, store.clone(), worker_metrics, true).await?)
        }
    };
    // The status page reports the CA's health: the worker's CA, or the configured one.
    let ca = match (&worker, &config.ca_url) {
        (Some(worker), _) => Some(worker.ca().clone()),
        (None, Some(url)) => Some(hotline_ca::CaClient::new(url, Duration::from_millis(config.ca_timeout_ms))?),
        (None, None) => None,
    };
    let state = AppState::from(Services {
        store,
        rules,
        clock: Arc::new(SystemClock),
        pii_key,
        status,
        metrics: Arc::new(metrics),
        tokens: Arc::default(),
        ops: Arc::new(hotline_api::ops::Ops::new(ca)),
    });
    let stop = Arc::new(Notify::new());
    let stop_worker = Arc::new(Notify::new());
    let worker = worker.map(|worker| {
        let stop = stop_worker.clone();
        tokio::spawn(worker.run(async move { stop.notified().await }))
    });
    let server = {
        let stop = stop.clone();
        tokio::spawn(async move {
            hotline_api::serve(listener, threads, admin, state, async move { stop.notified().await }).await
        })
    };
    tokio::pin!(server);
    tokio::select! {
        finished = &mut server => return finished.context("server task failed")?.context("server failed"),
        () = shutdown_signal() => {}
    }
    tracing::info!(deadline_s = DRAIN_DEADLINE.as_secs(), "shutting down: finishing in-flight requests");
    stop.notify_one();
    match tokio::time::timeout(DRAIN_DEADLINE, server).await {
        Ok(finished) => finished.context("server task failed")?.context("server failed")?,
        Err(_) => tracing::warn!("in-flight requests did not finish before the deadline; exiting anyway"),
    }
    if let Some(worker) = worker {
        stop_worker.notify_one();
        if tokio::time::timeout(DRAIN_DEADLINE, worker).await.is_err() {
            tracing::warn!("the CA sync worker did not finish its batch before the deadline; its leases will run out");
        }
    }
    tracing::info!("stopped");
    Ok(())
}

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
