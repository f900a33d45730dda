//! The HTTP API: the only crate that knows HTTP.
//!
//! [`app`] builds the router from an [`AppState`]; the binary serves it and
//! tests drive it on port 0. Every error is problem+json with a stable
//! `code`; every request carries an `x-request-id` that appears on every log
//! line it causes.

mod auth;
mod body;
pub mod clock;
mod fields;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod problem;
mod report;
mod routes;
pub mod status_service;
mod tokens;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::StatusCode;
use axum::routing::{get, post};
use hotline_core::{PiiKey, RuleBook};
use hotline_store::Store;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, OnResponse, TraceLayer};

pub use body::MAX_BODY_BYTES;
pub use clock::{Clock, FixedClock, SystemClock};
use metrics::Metrics;
use problem::Problem;
use status_service::StatusService;
pub use tokens::TokenCache;

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
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
}

/// A batch status query of 1000 pairs needs more room than the default limit.
const BATCH_BODY_BYTES: usize = 128 * 1024;

/// How long a request may take before the client gets 503.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The whole API, the on-call routes included.
pub fn app(state: AppState) -> Router {
    finish(api_routes().merge(health_routes()).merge(on_call_routes()), state)
}

/// The API without the on-call routes, when those are served on their own address.
pub fn api_app(state: AppState) -> Router {
    finish(api_routes().merge(health_routes()), state)
}

/// The on-call routes alone (`/metrics`, `/ops`, `/ops/summary`, health), for an admin address.
pub fn on_call_app(state: AppState) -> Router {
    finish(on_call_routes().merge(health_routes()), state)
}

fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/v1/suspensions", post(routes::suspensions::create))
        .route("/v1/suspensions/{id}", get(routes::suspensions::get))
        .route("/v1/suspensions/{id}/release", post(routes::suspensions::release))
        .route("/v1/status/{issuer}/{serial}", get(routes::status::get))
        .route("/v1/status", post(routes::status::batch).layer(DefaultBodyLimit::max(BATCH_BODY_BYTES)))
        .route("/v1/rules/now", get(routes::rules::now))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/docs", get(openapi::docs))
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

/// Fallbacks, metrics, request ids, the trace span, the timeout and the body limit.
fn finish(routes: Router<AppState>, state: AppState) -> Router {
    let routes = routes
        .fallback(|| async { Problem::not_found("not_found", "No such route") })
        .method_not_allowed_fallback(|| async {
            Problem::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "This route does not take this method")
        })
        .layer(axum::middleware::from_fn_with_state(state.metrics.clone(), metrics::record))
        .with_state(state);

    // Outermost first: the request id exists before the trace span that records it.
    let layers = ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                // One line per request only at debug: validators query millions of times a
                // day. Suspensions and releases log their outcome at info themselves.
                .on_response(|response: &axum::response::Response, latency: Duration, span: &tracing::Span| {
                    record_outcome(response.status(), span);
                    DefaultOnResponse::new().level(tracing::Level::DEBUG).on_response(response, latency, span);
                }),
        )
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, REQUEST_TIMEOUT))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    routes.layer(layers)
}

/// The span of one request: named by its matched route, continuing the
/// caller's trace when the request carries a `traceparent`.
fn request_span(req: &Request) -> tracing::Span {
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str());
    let request_id = req.extensions().get::<RequestId>().and_then(|id| id.header_value().to_str().ok()).unwrap_or("-");
    // The URI is not recorded: routes carry only ids and serials, but the
    // matched route keeps the label set small anyway.
    let span = tracing::info_span!(
        "request",
        otel.name = format!("{} {route}", req.method()),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %req.method(),
        http.route = route,
        http.response.status_code = tracing::field::Empty,
        request_id,
        trace_id = tracing::field::Empty,
    );
    hotline_trace::continue_from_headers(&span, req.headers());
    // Log lines then name the trace, so on-call can go from a log line to its trace.
    if let Some(trace_id) = hotline_trace::trace_id(&span) {
        span.record("trace_id", trace_id);
    }
    span
}

/// Puts the answer's status on the request span; a 5xx marks the span failed.
fn record_outcome(status: StatusCode, span: &tracing::Span) {
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
}

/// Serves the API on `listener` until `shutdown` completes, then lets
/// in-flight requests finish. With an `on_call` listener, `/metrics` and
/// `/ops` are served there instead of beside the API.
pub async fn serve(
    listener: tokio::net::TcpListener,
    on_call: Option<tokio::net::TcpListener>,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let sampler = tokio::spawn(ops::run_sampler(state.clone()));
    let served = match on_call {
        None => axum::serve(listener, app(state)).with_graceful_shutdown(shutdown).await,
        Some(on_call) => {
            // The on-call address stays up while the API drains, and stops with it.
            let admin = tokio::spawn(axum::serve(on_call, on_call_app(state.clone())).into_future());
            let served = axum::serve(listener, api_app(state)).with_graceful_shutdown(shutdown).await;
            admin.abort();
            served
        }
    };
    sampler.abort();
    served
}
