//! The HTTP API: the only crate that knows HTTP.
//!
//! [`app`] builds the router from an [`AppState`]; [`serve`] serves it on a
//! thread per core, for the binary and for tests on port 0. Every error is problem+json with a stable
//! `code`; every request carries an `x-request-id` that appears on every log
//! line it causes.

mod answer;
mod auth;
mod body;
pub mod clock;
mod dispatch;
mod fields;
pub mod json_text;
pub mod metrics;
pub mod ocsp;
pub mod openapi;
pub mod ops;
mod path_params;
pub mod problem;
mod request_layer;
mod request_metrics;
mod requests;
mod routes;
mod serving;
pub mod status_service;
mod tokens;
pub mod wire;
mod write_retry;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use hotline_core::{PiiKey, RuleBook};
use hotline_store::Store;
use tower::ServiceBuilder;

pub use body::MAX_BODY_BYTES;
pub use clock::{Clock, FixedClock, SystemClock};
pub use dispatch::Api;
use metrics::Metrics;
use problem::Problem;
use request_layer::RequestLayer;
pub use routes::console::ConsoleSettings;
pub use routes::health::{METRICS_CONTENT_TYPE, Probes, probes};
pub use serving::serve;
use status_service::StatusService;
pub use tokens::TokenCache;

/// Everything a handler needs, shared by every request.
pub struct Services {
    pub store: Store,
    pub rules: Arc<RuleBook>,
    pub clock: Arc<dyn Clock>,
    /// Keys the Individual Number fingerprints and request fingerprints.
    pub pii_key: PiiKey,
    /// Certificate status for validators: the revocation cache, its sync, the store fallback.
    pub status: Arc<StatusService>,
    pub metrics: Arc<Metrics>,
    /// Token look-ups remembered in memory.
    pub tokens: Arc<TokenCache>,
    /// The on-call status page's samples and CA probe.
    pub ops: Arc<ops::Ops>,
    /// The OCSP responder.
    pub ocsp: Arc<ocsp::OcspService>,
    pub timeouts: Timeouts,
    /// Console sessions: idle timeout, cookie attributes.
    pub console: ConsoleSettings,
    /// The deployment requires a synchronous standby: on-call is told when none streams.
    pub requires_synchronous_standby: bool,
}

/// How long the HTTP side waits, for clients and for itself.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// A client's request head (line and headers); past it the connection is closed.
    pub header_read: Duration,
    /// A client's request body, from when the handler starts reading it; past it, `408`.
    pub body_read: Duration,
    /// `/readyz`'s database probe; past it, `503 not_ready`.
    pub ready_probe: Duration,
    /// How long a suspension or release keeps trying through a database outage; past it, `503`.
    pub write_deadline: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(10),
            body_read: Duration::from_secs(5),
            ready_probe: Duration::from_millis(500),
            write_deadline: Duration::from_secs(8),
        }
    }
}

/// The router's state: one reference count to bump per request, where
/// cloning [`Services`] field by field would bump eight and copy the key.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl From<Services> for AppState {
    fn from(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// A batch status query of 1000 pairs needs more room than the default limit.
const BATCH_BODY_BYTES: usize = 128 * 1024;

/// How long a request may take before the client gets 503.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The whole API, the on-call routes included.
pub fn app(state: AppState) -> Api {
    with_shortcuts(api_routes().merge(health_routes()).merge(on_call_routes()), state)
}

/// The API without the on-call routes, when those are served on their own address.
pub fn api_app(state: AppState) -> Api {
    with_shortcuts(api_routes().merge(health_routes()), state)
}

/// The on-call routes alone (`/metrics`, `/ops`, `/ops/summary`, health), for an admin address.
pub fn on_call_app(state: AppState) -> Router {
    finish(on_call_routes().merge(health_routes()), every_request(&state), state)
}

/// The routes, with single status queries taken before the router (`dispatch`).
fn with_shortcuts(routes: Router<AppState>, state: AppState) -> Api {
    let every_request = every_request(&state);
    let router = finish(routes, every_request.clone(), state.clone());
    Api::with_shortcuts(router, state, &every_request)
}

fn every_request(state: &AppState) -> RequestLayer {
    RequestLayer { metrics: state.metrics.clone(), timeout: REQUEST_TIMEOUT }
}

fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/v1/suspensions", post(routes::suspensions::create))
        .route("/v1/suspensions/{id}", get(routes::suspensions::get))
        .route("/v1/suspensions/{id}/release", post(routes::suspensions::release))
        .route(routes::status::SINGLE, get(routes::status::get))
        .route("/v1/status", post(routes::status::batch).layer(DefaultBodyLimit::max(BATCH_BODY_BYTES)))
        .route("/v1/rules/now", get(routes::rules::now))
        .route("/v1/holders/identify", post(routes::holders::identify))
        // The responder reads its bodies itself, so an oversized one is answered malformedRequest.
        .route("/ocsp", post(routes::ocsp::post).layer(DefaultBodyLimit::disable()))
        .route(routes::ocsp::GET, get(routes::ocsp::get))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/docs", get(openapi::docs))
        .merge(console_routes())
}

/// The operators' and clerks' console: its files and its sessions.
fn console_routes() -> Router<AppState> {
    use routes::console;
    Router::new()
        .route("/console", get(console::page))
        .route("/console/console.js", get(console::script))
        .route("/console/console.css", get(console::style))
        .route("/console/i18n/{name}", get(console::catalogue))
        .route("/console/vocabulary.json", get(console::vocabulary))
        .route("/console/session", get(console::current).post(console::sign_in).merge(delete(console::sign_out)))
}

/// Served beside the API and on the on-call address alike, for probes on either.
fn health_routes() -> Router<AppState> {
    Router::new().route("/healthz", get(routes::health::healthz)).route("/readyz", get(routes::health::readyz))
}

fn on_call_routes() -> Router<AppState> {
    Router::new()
        .route("/metrics", get(routes::health::metrics))
        .route("/ops", get(ops::page))
        .route("/ops/summary", get(ops::summary))
}

/// Fallbacks, then around every route (the fallbacks included) its request
/// id, span, deadline and metrics, and the body limit.
fn finish(routes: Router<AppState>, every_request: RequestLayer, state: AppState) -> Router {
    routes
        .fallback(|| async { Problem::not_found("not_found", "No such route") })
        .method_not_allowed_fallback(|| async {
            Problem::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "This route does not take this method")
        })
        .layer(ServiceBuilder::new().layer(every_request).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)))
        .with_state(state)
}
