//! The CA sync worker.
//!
//! It leases due outbox events, sends each to the CA with its event id as
//! the idempotency key, and settles it: done, retried later with exponential
//! backoff and full jitter, or dead-lettered. A refusal from the CA is final
//! and dead-letters at once; anything else (503, timeout, a dropped
//! connection) is retried until the attempt limit. Because the CA applies an
//! event id once, sending again after a crash or a lost answer is harmless:
//! delivery is at least once, its effect exactly once.
//!
//! Every reconciliation interval it also fetches each issuer's CRL, verifies
//! it, and compares it with the registry (see [`reconcile`]).

mod backoff;
mod deliver;
mod metrics;
pub mod reconcile;
mod trust;

use std::sync::Arc;
use std::time::Duration;

use hotline_ca::CaClient;
use hotline_store::Store;
use tokio::sync::Notify;

pub use backoff::Backoff;
pub use deliver::Delivery;
pub use metrics::WorkerMetrics;
pub use reconcile::{ReconcileError, ReconcileReport};
pub use trust::TrustStore;

/// How often the outbox backlog gauges are refreshed.
const OBSERVE_EVERY: Duration = Duration::from_secs(2);

/// How the worker paces itself.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Events leased per claim.
    pub batch: i64,
    /// Events of one batch sent at the same time.
    pub concurrency: usize,
    /// How long a lease lasts; renewed every third of it while the events
    /// are being sent, so a live worker never has its events taken over and a
    /// dead one's are taken over within about one lease.
    pub lease: Duration,
    /// How long to wait before looking again when nothing was due.
    pub poll: Duration,
    /// Attempts before an event that keeps failing is dead-lettered.
    pub max_attempts: i64,
    pub backoff: Backoff,
    /// How often the CRLs are compared with the registry.
    pub reconcile_interval: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            batch: 64,
            concurrency: 16,
            lease: Duration::from_secs(5),
            poll: Duration::from_millis(100),
            max_attempts: 20,
            backoff: Backoff { base: Duration::from_millis(500), cap: Duration::from_secs(300) },
            reconcile_interval: Duration::from_secs(300),
        }
    }
}

/// One worker: an identity for its leases, the store, the CA and its settings.
#[derive(Clone)]
pub struct Worker {
    pub(crate) owner: String,
    pub(crate) store: Store,
    pub(crate) ca: CaClient,
    pub(crate) settings: WorkerSettings,
    pub(crate) metrics: Arc<WorkerMetrics>,
    pub(crate) trust: TrustStore,
    wake: Arc<Notify>,
}

impl Worker {
    pub fn new(
        store: Store,
        ca: CaClient,
        settings: WorkerSettings,
        metrics: Arc<WorkerMetrics>,
        trust: TrustStore,
    ) -> Self {
        let owner = format!("worker-{}", uuid_like());
        Self { owner, store, ca, settings, metrics, trust, wake: Arc::new(Notify::new()) }
    }

    /// The handle that wakes the worker at once (after a commit in the same process).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// The CA this worker delivers to.
    pub fn ca(&self) -> &CaClient {
        &self.ca
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Delivers and reconciles until `stop` resolves; the batch in hand is finished first.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        tracing::info!(owner = %self.owner, ca = self.ca.base_url(), "CA sync worker started");
        let mut next_reconcile = tokio::time::Instant::now() + self.settings.reconcile_interval;
        let mut next_observe = tokio::time::Instant::now();
        loop {
            if tokio::time::Instant::now() >= next_reconcile {
                for issuer in self.issuers().await {
                    // Failures are logged and counted inside; delivery goes on regardless.
                    let _ = self.reconcile(&issuer).await;
                }
                next_reconcile = tokio::time::Instant::now() + self.settings.reconcile_interval;
            }
            // The backlog gauges cost a query: refresh them on a timer, not on every turn of the loop.
            if tokio::time::Instant::now() >= next_observe {
                self.metrics.observe_outbox(&self.store).await;
                next_observe = tokio::time::Instant::now() + OBSERVE_EVERY;
            }
            let delivered = match self.drain_once().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "could not claim outbox events");
                    0
                }
            };
            if delivered == 0 {
                tokio::select! {
                    () = &mut stop => break,
                    () = tokio::time::sleep(self.settings.poll) => {}
                    () = self.wake.notified() => {}
                }
            } else if futures::FutureExt::now_or_never(&mut stop).is_some() {
                break;
            }
        }
        tracing::info!(owner = %self.owner, "CA sync worker stopped");
    }

    async fn issuers(&self) -> Vec<String> {
        match self.store.issuers().await {
            Ok(issuers) => issuers.iter().map(|i| i.as_str().to_owned()).collect(),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "could not list issuers for reconciliation");
                Vec::new()
            }
        }
    }
}

/// A short random id for lease ownership (which process holds an event).
fn uuid_like() -> String {
    use rand::Rng;
    format!("{:016x}", rand::rng().random::<u64>())
}
