//! The on-call status page (`GET /ops`) and the JSON it refreshes itself
//! from (`GET /ops/summary`): health of the database (and whether it has a
//! synchronous standby), the cache and the CA,
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
use hotline_core::{CaAction, Item, Mode};
use serde::Serialize;

use crate::AppState;
use crate::answer::JsonAnswer;
use crate::metrics::Metrics;

/// How often the flows are sampled, and how many samples are kept (10 minutes).
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);
const SAMPLES_KEPT: usize = 121;

/// Running totals of the two flows at one instant.
#[derive(Debug, Clone, Copy, Default)]
struct FlowTotals {
    suspension_requests: u64,
    suspension_errors: u64,
    status_requests: u64,
    status_errors: u64,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: DateTime<Utc>,
    totals: FlowTotals,
}

/// What the status page knows beyond the metrics: recent samples and how to reach the CA.
#[derive(Default)]
pub struct Ops {
    samples: Mutex<VecDeque<Sample>>,
    ca: Option<CaClient>,
}

/// Per-minute rates of each flow between consecutive samples, oldest first.
#[derive(Debug, Serialize)]
pub struct Series {
    pub sample_seconds: u64,
    /// When each rate was measured (the later sample of its pair), Tokyo time.
    pub at: Vec<String>,
    pub suspensions_per_min: Vec<f64>,
    pub suspension_errors_per_min: Vec<f64>,
    pub status_per_min: Vec<f64>,
    pub status_errors_per_min: Vec<f64>,
}

/// Requests per minute from `before` to `after`, to one decimal.
fn per_minute(before: u64, after: u64, minutes: f64) -> f64 {
    (after.saturating_sub(before) as f64 / minutes * 10.0).round() / 10.0
}

impl Ops {
    /// `ca`: the CA this deployment delivers to, for its health; none when unknown.
    pub fn new(ca: Option<CaClient>) -> Self {
        Self { samples: Mutex::default(), ca }
    }

    /// Records the running totals now.
    pub fn sample(&self, metrics: &Metrics, at: DateTime<Utc>) {
        let f = &metrics.flow;
        let totals = FlowTotals {
            suspension_requests: f.suspension_requests.load(Relaxed),
            suspension_errors: f.suspension_errors.load(Relaxed),
            status_requests: f.status_requests.load(Relaxed),
            status_errors: f.status_errors.load(Relaxed),
        };
        let mut samples = self.samples.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if samples.len() == SAMPLES_KEPT {
            samples.pop_front();
        }
        samples.push_back(Sample { at, totals });
    }

    fn series(&self) -> Series {
        let samples = self.samples.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut series = Series {
            sample_seconds: SAMPLE_EVERY.as_secs(),
            at: Vec::with_capacity(samples.len()),
            suspensions_per_min: Vec::with_capacity(samples.len()),
            suspension_errors_per_min: Vec::with_capacity(samples.len()),
            status_per_min: Vec::with_capacity(samples.len()),
            status_errors_per_min: Vec::with_capacity(samples.len()),
        };
        for (a, b) in samples.iter().zip(samples.iter().skip(1)) {
            let minutes = (b.at - a.at).num_milliseconds().max(1) as f64 / 60_000.0;
            let (a, b, at) = (a.totals, b.totals, b.at);
            series.at.push(tokyo_rfc3339(at));
            series.suspensions_per_min.push(per_minute(a.suspension_requests, b.suspension_requests, minutes));
            series.suspension_errors_per_min.push(per_minute(a.suspension_errors, b.suspension_errors, minutes));
            series.status_per_min.push(per_minute(a.status_requests, b.status_requests, minutes));
            series.status_errors_per_min.push(per_minute(a.status_errors, b.status_errors, minutes));
        }
        series
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

/// Everything the page shows (`GET /ops/summary`).
#[derive(Debug, Serialize)]
pub struct Summary {
    pub now: String,
    pub build: Build,
    pub health: Health,
    pub rules: RulesState,
    pub outbox: OutboxState,
    /// The most recent, newest first.
    pub dead_letters: Vec<DeadLetterOut>,
    pub series: Series,
}

#[derive(Debug, Serialize)]
pub struct Build {
    pub version: &'static str,
    pub commit: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Health {
    pub database: Up,
    /// Whether the primary has a synchronous standby now.
    pub replication: ReplicationHealth,
    pub cache: CacheHealth,
    pub ca: CaHealth,
}

/// The database's durability on two servers, as the primary reports it.
#[derive(Debug, Serialize)]
pub struct ReplicationHealth {
    /// Synchronous standbys streaming now; `None` when that cannot be read.
    pub synchronous_standbys: Option<i64>,
    /// Whether this deployment requires one.
    pub required: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Up {
    Ok,
    Down,
}

/// The shared revocation cache, by the state of its completeness marker.
#[derive(Debug, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CacheHealth {
    Ok {
        backend: &'static str,
        lag_seconds: f64,
        as_of: String,
    },
    /// No marker: being built, or lost; validators are answered from the store.
    Empty {
        backend: &'static str,
    },
    Down {
        backend: &'static str,
        error: String,
    },
}

#[derive(Debug, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CaHealth {
    Unknown { detail: &'static str },
    Ok { url: String },
    Down { url: String, error: String },
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum RulesState {
    InForce { version: String, mode: Mode, accepted_items: Vec<Item>, next_change: Option<String> },
    Missing { error: String },
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum OutboxState {
    Counted { pending: i64, dead: i64, oldest_age_seconds: Option<i64> },
    Unknown { error: String },
}

#[derive(Debug, Serialize)]
pub struct DeadLetterOut {
    pub event_id: String,
    pub issuer: String,
    pub serial: String,
    pub action: CaAction,
    pub attempts: i64,
    pub error: Option<String>,
    pub dead_at: Option<String>,
}

pub async fn summary(State(state): State<AppState>) -> JsonAnswer<Summary> {
    let now = state.clock.now();
    let cache = &state.status.cache;
    let backend = cache.backend_name();
    let cache = match cache.marker().await {
        Ok(Some(m)) => CacheHealth::Ok { backend, lag_seconds: m.lag_seconds(now), as_of: tokyo_rfc3339(m.as_of) },
        Ok(None) => CacheHealth::Empty { backend },
        Err(e) => CacheHealth::Down { backend, error: e.to_string() },
    };
    let ca = match &state.ops.ca {
        None => CaHealth::Unknown { detail: "no CA configured for this instance" },
        Some(client) => match client.health().await {
            Ok(()) => CaHealth::Ok { url: client.base_url().to_owned() },
            Err(e) => CaHealth::Down { url: client.base_url().to_owned(), error: e.to_string() },
        },
    };
    let rules = match state.rules.snapshot(now) {
        Ok(s) => RulesState::InForce {
            version: s.rules_version,
            mode: s.mode,
            accepted_items: s.accepted_items,
            next_change: s.next_mode_change.map(tokyo_rfc3339),
        },
        Err(e) => RulesState::Missing { error: e.to_string() },
    };
    let outbox = match state.store.outbox_summary().await {
        Ok(o) => OutboxState::Counted {
            pending: o.pending,
            dead: o.dead,
            oldest_age_seconds: o.oldest_pending.map(|t| (now - t).num_seconds().max(0)),
        },
        Err(e) => OutboxState::Unknown { error: format!("{e:#}") },
    };
    let dead_letters = state
        .store
        .dead_letters(5)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|d| DeadLetterOut {
            event_id: d.event_id,
            issuer: d.issuer,
            serial: d.serial,
            action: d.action,
            attempts: d.attempts,
            error: d.last_error,
            dead_at: d.dead_at.map(tokyo_rfc3339),
        })
        .collect();
    let answered = tokio::time::timeout(state.timeouts.ready_probe, state.store.ping()).await.unwrap_or(false);
    let database = if answered { Up::Ok } else { Up::Down };
    let replication = ReplicationHealth {
        synchronous_standbys: crate::routes::health::synchronous_standbys(&state).await,
        required: state.requires_synchronous_standby,
    };
    JsonAnswer(Summary {
        now: tokyo_rfc3339(now),
        build: Build { version: env!("CARGO_PKG_VERSION"), commit: env!("HOTLINE_GIT_COMMIT") },
        health: Health { database, replication, cache, ca },
        rules,
        outbox,
        dead_letters,
        series: state.ops.series(),
    })
}
