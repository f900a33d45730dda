//! `hotline worker`: the CA sync worker on its own, for deployments that
//! scale it apart from the API. It serves `/metrics` and `/health` on the
//! listen address so it can be scraped and probed like the API.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::routing::get;
use hotline_worker::WorkerMetrics;
use prometheus_client::registry::Registry;

use crate::config::Config;

pub async fn run(config: Config, listen: Option<SocketAddr>) -> anyhow::Result<()> {
    let store = config.open_store().await?;
    store.migrate().await?;
    let mut registry = Registry::with_prefix("hotline");
    let metrics = Arc::new(WorkerMetrics::new(&mut registry));
    let worker = crate::ca::worker(&config, store, metrics, false).await?;
    let listen = listen.unwrap_or(config.listen);
    let listener =
        tokio::net::TcpListener::bind(listen).await.with_context(|| format!("could not listen on {listen}"))?;
    tracing::info!(addr = %listener.local_addr()?, "worker metrics and health");
    let registry = Arc::new(registry);
    let app = Router::new().route("/health", get(|| async { "ok" })).route(
        "/metrics",
        get(move || {
            let registry = registry.clone();
            async move {
                let mut out = String::new();
                let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
                ([("content-type", "text/plain; version=0.0.4")], out)
            }
        }),
    );
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    worker.run(crate::serve::shutdown_signal()).await;
    server.abort();
    Ok(())
}
