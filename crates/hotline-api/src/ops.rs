//! The on-call status page (`GET /ops`) and the JSON it refreshes itself
//! from (`GET /ops/summary`): health of the database, the cache and the CA,
//! the reception mode now and the next change, suspension and status rates
//! with error rates over the last minutes, cache lag, the outbox backlog,
//! recent dead letters and the build. The page is one self-contained file:
//! no CDN, no external script. Like `/metrics`, it carries no personal data
//! and needs no token; deployments keep it on the internal network.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use axum::extract::State;
use axum::response::{Html, IntoResponse};
use chrono::{DateTime, Utc};
use hotline_ca::CaClient;
use hotline_core::rules::tokyo_rfc3339;
use serde_json::{Value, json};

use crate::AppState;
use crate::answer::JsonAnswer;
use crate::metrics::Metrics;

/// How often the flows are sampled, and how many samples are kept (10 minutes).
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);
const SAMPLES_KEPT: usize = 121;

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: DateTime<Utc>,
    totals: [u64; 4],
}

/// What the status page knows beyond the metrics: recent samples and how to reach the CA.
#[derive(Default)]
pub struct Ops {
    samples: Mutex<VecDeque<Sample>>,
    ca: Option<CaClient>,
}

impl Ops {
    /// `ca`: the CA this deployment delivers to, for its health; none when unknown.
    pub fn new(ca: Option<CaClient>) -> Self {
        Self { samples: Mutex::default(), ca }
    }

    /// Records the running totals now.
    pub fn sample(&self, metrics: &Metrics, at: DateTime<Utc>) {
        let f = &metrics.flow;
        let totals = [
            f.suspension_requests.load(Relaxed),
            f.suspension_errors.load(Relaxed),
            f.status_requests.load(Relaxed),
            f.status_errors.load(Relaxed),
        ];
        let mut samples = self.samples.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if samples.len() == SAMPLES_KEPT {
            samples.pop_front();
        }
        samples.push_back(Sample { at, totals });
    }

    /// Per-minute rates between consecutive samples, for each flow.
    fn series(&self) -> Value {
        let samples = self.samples.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut rates: [Vec<f64>; 4] = Default::default();
        let mut times = Vec::new();
        for (a, b) in samples.iter().zip(samples.iter().skip(1)) {
            let minutes = (b.at - a.at).num_milliseconds().max(1) as f64 / 60_000.0;
            for (i, series) in rates.iter_mut().enumerate() {
                series.push(((b.totals[i].saturating_sub(a.totals[i])) as f64 / minutes * 10.0).round() / 10.0);
            }
            times.push(tokyo_rfc3339(b.at));
        }
        let [suspensions, suspension_errors, status, status_errors] = rates;
        json!({
            "sample_seconds": SAMPLE_EVERY.as_secs(),
            "at": times,
            "suspensions_per_min": suspensions,
            "suspension_errors_per_min": suspension_errors,
            "status_per_min": status,
            "status_errors_per_min": status_errors,
        })
    }
}

/// Samples the flows until the task is dropped.
pub async fn run_sampler(state: AppState) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    loop {
        tick.tick().await;
        state.ops.sample(&state.metrics, Utc::now());
    }
}

/// The page.
pub async fn page() -> impl IntoResponse {
    Html(include_str!("ops.html"))
}

/// Everything the page shows, as JSON.
pub async fn summary(State(state): State<AppState>) -> JsonAnswer<Value> {
    let now = state.clock.now();
    let database = state.store.ping().await;
    let marker = state.status.cache.marker().await;
    let cache = match &marker {
        Ok(Some(m)) => json!({
            "state": "ok", "backend": state.status.cache.backend_name(),
            "lag_seconds": m.lag_seconds(now),
            "as_of": tokyo_rfc3339(m.as_of),
        }),
        Ok(None) => json!({"state": "empty", "backend": state.status.cache.backend_name()}),
        Err(e) => json!({"state": "down", "backend": state.status.cache.backend_name(), "error": e.to_string()}),
    };
    let ca = match &state.ops.ca {
        None => json!({"state": "unknown", "detail": "no CA configured for this instance"}),
        Some(client) => match client.health().await {
            Ok(()) => json!({"state": "ok", "url": client.base_url()}),
            Err(e) => json!({"state": "down", "url": client.base_url(), "error": e.to_string()}),
        },
    };
    let rules = match state.rules.snapshot(now) {
        Ok(s) => json!({
            "version": s.rules_version,
            "mode": s.mode.as_str(),
            "accepted_items": s.accepted_items.iter().map(|i| i.as_str()).collect::<Vec<_>>(),
            "next_change": s.next_mode_change.map(tokyo_rfc3339),
        }),
        Err(e) => json!({"error": e.to_string()}),
    };
    let outbox = match state.store.outbox_summary().await {
        Ok(o) => json!({
            "pending": o.pending,
            "dead": o.dead,
            "oldest_age_seconds": o.oldest_pending.map(|t| (now - t).num_seconds().max(0)),
        }),
        Err(e) => json!({"error": format!("{e:#}")}),
    };
    let dead_letters: Vec<Value> = state
        .store
        .dead_letters(5)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|d| {
            json!({
                "event_id": d.event_id, "issuer": d.issuer, "serial": d.serial, "action": d.action,
                "attempts": d.attempts, "error": d.last_error, "dead_at": d.dead_at.map(tokyo_rfc3339),
            })
        })
        .collect();
    JsonAnswer(json!({
        "now": tokyo_rfc3339(now),
        "build": {
            "version": env!("CARGO_PKG_VERSION"),
            "commit": env!("HOTLINE_GIT_COMMIT"),
        },
        "health": {"database": if database { "ok" } else { "down" }, "cache": cache, "ca": ca},
        "rules": rules,
        "outbox": outbox,
        "dead_letters": dead_letters,
        "series": state.ops.series(),
    }))
}
