//! Liveness and readiness for load balancers and orchestrators; no token.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::AppState;
use crate::problem::Problem;

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200)))]
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Prometheus metrics, text format.
pub async fn metrics(State(state): State<AppState>) -> impl axum::response::IntoResponse {
    // Read at scrape time, so an alert sees the lag even when the sync loop is stuck.
    let lag = match state.status.cache.marker().await {
        Ok(Some(marker)) => (chrono::Utc::now() - marker.as_of).num_milliseconds().max(0) as f64 / 1000.0,
        Ok(None) | Err(_) => f64::INFINITY,
    };
    state.metrics.cache_lag_seconds.set(lag);
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render())
}

/// The process can serve: its database answers.
#[utoipa::path(get, path = "/readyz", tag = "health", responses((status = 200), (status = 503, description = "not_ready")))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, Problem> {
    if state.store.ping().await {
        Ok(Json(json!({"status": "ready", "database": "ok"})))
    } else {
        Err(Problem::unavailable("not_ready", "The database does not answer"))
    }
}
