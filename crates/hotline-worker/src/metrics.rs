//! The worker's metrics, registered into the process's Prometheus registry
//! (the API's when `hotline serve` runs both).

use std::time::Duration;

use chrono::Utc;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Outcome = [(&'static str, &'static str); 1];
type IssuerLabels = [(&'static str, String); 2];

/// Seconds; CA calls should take tens of milliseconds, sync lag under seconds.
const CALL_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];
const LAG_BUCKETS: [f64; 11] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 120.0, 600.0];

pub struct WorkerMetrics {
    /// CA calls by outcome: applied, replayed, refused, unavailable.
    pub ca_requests: Family<Outcome, Counter>,
    pub ca_request_duration: Histogram,
    /// From commit to the CA's confirmation.
    pub ca_sync_lag: Histogram,
    pub dead_letters: Counter,
    pub outbox_pending: Gauge,
    pub outbox_dead: Gauge,
    pub outbox_oldest_pending_age: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Reconciliation runs by issuer and outcome: ok, crl_rejected, ca_unavailable, store_failed.
    pub reconcile_runs: Family<IssuerLabels, Counter>,
    /// Disagreements found, by issuer and kind: missing (re-sent) or unexplained (reported).
    pub reconcile_drift: Family<IssuerLabels, Counter>,
}

impl WorkerMetrics {
    pub fn new(registry: &mut Registry) -> Self {
        let m = Self {
            ca_requests: Family::default(),
            ca_request_duration: Histogram::new(CALL_BUCKETS),
            ca_sync_lag: Histogram::new(LAG_BUCKETS),
            dead_letters: Counter::default(),
            outbox_pending: Gauge::default(),
            outbox_dead: Gauge::default(),
            outbox_oldest_pending_age: Gauge::default(),
            reconcile_runs: Family::default(),
            reconcile_drift: Family::default(),
        };
        registry.register(
            "ca_requests",
            "Calls to the CA by outcome (applied, replayed, refused, unavailable)",
            m.ca_requests.clone(),
        );
        registry.register("ca_request_duration_seconds", "Latency of calls to the CA", m.ca_request_duration.clone());
        registry.register(
            "ca_sync_lag_seconds",
            "From a change's commit to the CA's confirmation",
            m.ca_sync_lag.clone(),
        );
        registry.register(
            "outbox_dead_letters",
            "Outbox events given up on and kept as dead letters",
            m.dead_letters.clone(),
        );
        registry.register("outbox_pending", "Outbox events not yet delivered to the CA", m.outbox_pending.clone());
        registry.register("outbox_dead", "Outbox events dead-lettered and not yet re-queued", m.outbox_dead.clone());
        registry.register(
            "outbox_oldest_pending_age_seconds",
            "Age of the oldest outbox event not yet delivered (0 when none)",
            m.outbox_oldest_pending_age.clone(),
        );
        registry.register("reconcile_runs", "CRL reconciliations by issuer and outcome", m.reconcile_runs.clone());
        registry.register(
            "reconcile_drift",
            "Disagreements between a CRL and the registry, by issuer and kind",
            m.reconcile_drift.clone(),
        );
        m
    }

    pub(crate) fn ca_call(&self, took: Duration, outcome: &'static str) {
        self.ca_request_duration.observe(took.as_secs_f64());
        self.ca_requests.get_or_create(&[("outcome", outcome)]).inc();
    }

    pub(crate) fn confirmed(&self, lag: Duration) {
        self.ca_sync_lag.observe(lag.as_secs_f64());
    }

    pub(crate) fn reconciled(&self, issuer: &str, outcome: &'static str) {
        self.reconcile_runs.get_or_create(&[("issuer", issuer.to_owned()), ("outcome", outcome.to_owned())]).inc();
    }

    pub(crate) fn drift(&self, issuer: &str, kind: &'static str, n: usize) {
        self.reconcile_drift
            .get_or_create(&[("issuer", issuer.to_owned()), ("kind", kind.to_owned())])
            .inc_by(n as u64);
    }

    /// Refreshes the backlog gauges from the store.
    pub async fn observe_outbox(&self, store: &hotline_store::Store) {
        match store.outbox_summary().await {
            Ok(summary) => {
                self.outbox_pending.set(summary.pending);
                self.outbox_dead.set(summary.dead);
                let age =
                    summary.oldest_pending.map_or(0.0, |t| (Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0);
                self.outbox_oldest_pending_age.set(age);
            }
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "could not read the outbox backlog"),
        }
    }
}
