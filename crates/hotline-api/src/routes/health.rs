//! Liveness, readiness and metrics for load balancers, orchestrators and
//! Prometheus; no token. The API serves them beside its routes, and a
//! process that serves no API (the CA sync worker) serves the same three
//! through [`probes`].

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use hotline_store::Store;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};

use crate::AppState;
use crate::answer::JsonAnswer;
use crate::problem::Problem;

/// Prometheus's text format, version 0.0.4.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200)))]
pub async fn healthz() -> JsonAnswer<Value> {
    JsonAnswer(json!({"status": "ok"}))
}

/// Prometheus metrics, text format.
pub async fn metrics(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    observe_dependencies(&state).await;
    ([(axum::http::header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], state.metrics.render())
}

/// Gauges read at scrape time, so an alert sees them even when a background loop is stuck.
async fn observe_dependencies(state: &AppState) {
    let m = &state.metrics;
    let now = state.clock.now();
    let marker = state.status.cache.marker().await;
    m.cache_up.set(i64::from(marker.is_ok()));
    let lag = match marker {
        Ok(Some(marker)) => marker.lag_seconds(now),
        Ok(None) | Err(_) => f64::INFINITY,
    };
    m.cache_lag_seconds.set(lag);
    let pool = state.store.pool();
    m.db_pool_connections.get_or_create(&[("state", "open")]).set(i64::from(pool.size()));
    m.db_pool_connections.get_or_create(&[("state", "idle")]).set(pool.num_idle() as i64);
    let up = tokio::time::timeout(state.timeouts.ready_probe, state.store.ping()).await.unwrap_or(false);
    m.db_up.set(i64::from(up));
    m.db_synchronous_standbys.set(synchronous_standbys(state).await.unwrap_or(-1));
    match state.store.within(state.timeouts.ready_probe, state.store.unsealed_audit()).await {
        Ok((waiting, oldest)) => {
            m.audit_unsealed.set(waiting);
            let age = oldest.map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0);
            m.audit_unsealed_oldest_seconds.set(age);
        }
        Err(_) => {
            m.audit_unsealed_oldest_seconds.set(-1.0);
        }
    }
    let (entries, bytes) = state.ocsp.cache_size();
    m.ocsp.cache_entries.set(i64::try_from(entries).unwrap_or(i64::MAX));
    m.ocsp.cache_bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
    for served in state.ocsp.served() {
        let left = served.responder.as_ref().map_or(0, |r| (r.not_after - now).num_seconds());
        m.ocsp.responder_expiry_seconds.get_or_create(&[("issuer", served.issuer.id.to_string())]).set(left);
    }
    if let Ok(snapshot) = state.rules.snapshot(now) {
        m.rules_info.clear();
        m.rules_info
            .get_or_create(&[("version", snapshot.rules_version), ("mode", snapshot.mode.as_str().to_owned())])
            .set(1);
    }
}

/// How many synchronous standbys stream from the primary now: `None` when
/// that cannot be read (no database answer in time, a role that may not see
/// it), which on-call must hear as loudly as none.
pub(crate) async fn synchronous_standbys(state: &AppState) -> Option<i64> {
    let read = state.store.within(state.timeouts.ready_probe, state.store.replication()).await;
    match read {
        Ok(Some(replication)) => replication.synchronous,
        // SQLite: one file, never replicated.
        Ok(None) => Some(0),
        Err(_) => None,
    }
}

/// The instance can serve: its database answers, or, while it does not (a
/// failover, which every instance meets alike), its caches can still answer
/// validators within the maximum staleness. Taking every instance out of a
/// load balancer then would turn away the validators they can answer.
#[utoipa::path(get, path = "/readyz", tag = "health", responses((status = 200), (status = 503, description = "not_ready")))]
pub async fn readyz(State(state): State<AppState>) -> Result<JsonAnswer<Value>, Problem> {
    let refused = match readiness(&state.store, state.timeouts.ready_probe).await {
        Ok(ready) => return Ok(ready),
        Err(refused) => refused,
    };
    match state.status.last_confirmed().await {
        Some(as_of) => Ok(JsonAnswer(json!({
            "status": "ready",
            "database": "unreachable",
            "validators_answered_as_of": hotline_core::rules::tokyo_rfc3339(as_of),
        }))),
        None => Err(refused),
    }
}

/// Ready when the database answers within `bound`: a probe gets its answer
/// in time whatever the database does (a hung database is "not ready", not a
/// probe that times out).
async fn readiness(store: &Store, bound: std::time::Duration) -> Result<JsonAnswer<Value>, Problem> {
    match tokio::time::timeout(bound, store.ping()).await {
        Ok(true) => Ok(JsonAnswer(json!({"status": "ready", "database": "ok"}))),
        Ok(false) => Err(Problem::unavailable("not_ready", "The database does not answer")),
        Err(_) => Err(Problem::unavailable("not_ready", "The database did not answer in time")
            .detail(format!("No answer within {} ms.", bound.as_millis()))),
    }
}

/// `/healthz`, `/readyz` (the database answers) and `/metrics`, for a process
/// that serves no API (the CA sync worker on its own).
pub struct Probes(Router);

impl Probes {
    /// Serves them on `listener` until `shutdown` completes.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.0).with_graceful_shutdown(shutdown).await
    }
}

/// The probes of a process that serves no API: its database for `/readyz`,
/// its metrics `registry` for `/metrics`.
pub fn probes(store: Store, registry: Arc<Registry>, ready_probe: std::time::Duration) -> Probes {
    Probes(probe_routes(store, registry, ready_probe))
}

fn probe_routes(store: Store, registry: Arc<Registry>, ready_probe: std::time::Duration) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(move || async move { readiness(&store, ready_probe).await }))
        .route(
            "/metrics",
            get(move || async move {
                let mut out = String::new();
                // Writing to a String cannot fail.
                let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
                ([(axum::http::header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], out)
            }),
        )
        .fallback(|| async { Problem::not_found("not_found", "No such route") })
}
