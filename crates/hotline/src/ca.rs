//! Reaching the certificate authority: the configured one, or (with no
//! `HOTLINE_CA_URL`) ca-sim started inside this process, so that the whole
//! flow works on a machine with nothing installed.

use std::sync::Arc;

use anyhow::Context;
use hotline_ca::{CaClient, TrustedIssuer};
use hotline_store::Store;
use hotline_worker::{TrustStore, Worker, WorkerMetrics};

use crate::config::Config;

/// What a worker does when no `ca_url` is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WithoutCaUrl {
    /// Start ca-sim in this process (`hotline serve`: the embedded default works with nothing installed).
    StartCaSim,
    /// Refuse to start (`hotline worker`: a worker on its own is a deployment, which has a real CA).
    Refuse,
}

/// The worker for this process, talking to the configured CA or an embedded one.
pub async fn worker(
    config: &Config,
    store: Store,
    metrics: Arc<WorkerMetrics>,
    without_ca_url: WithoutCaUrl,
) -> anyhow::Result<Worker> {
    let timeout = config.ca_timeout_ms.millis();
    let trust = match &config.ca_trust_dir {
        Some(dir) => TrustStore::from_dir(dir)?,
        None => TrustStore::default(),
    };
    let client = match (&config.ca_url, without_ca_url) {
        (Some(url), _) => CaClient::new(url, timeout)?,
        (None, WithoutCaUrl::StartCaSim) => embedded_ca(config, &trust).await?,
        (None, WithoutCaUrl::Refuse) => {
            anyhow::bail!("HOTLINE_CA_URL is required: a worker on its own needs a certificate authority to talk to")
        }
    };
    Ok(Worker::new(store, client, config.worker_settings(), metrics, trust))
}

async fn embedded_ca(config: &Config, trust: &TrustStore) -> anyhow::Result<CaClient> {
    let dir = config.data_dir.join("ca-sim");
    let ca = ca_sim::CaSim::open(&dir, hotline_ca::Faults::default())
        .with_context(|| format!("could not open the embedded CA in {}", dir.display()))?;
    for issuer in ca_sim::DEFAULT_ISSUERS {
        if let Some(pem) = ca.issuer_pem(issuer) {
            trust.pin(issuer, TrustedIssuer::from_pem(pem)?);
        }
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = ca.serve(listener).await {
            tracing::error!(error = %e, "the embedded CA stopped");
        }
    });
    let url = format!("http://{addr}");
    tracing::info!(
        ca_url = %url, dir = %dir.display(),
        "no HOTLINE_CA_URL: running the development CA (ca-sim) in this process; set HOTLINE_CA_URL for a real CA"
    );
    Ok(CaClient::new(&url, config.ca_timeout_ms.millis())?)
}
