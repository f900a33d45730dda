//! What every request goes through, in one layer around each route: its
//! request id (the caller's `x-request-id`, or a new UUID), echoed on the
//! answer; its span, which every log line it causes carries; its deadline
//! (503 `request_timed_out`); and its count and latency in the metrics.
//!
//! One hand-written layer instead of four generic ones from tower-http
//! (request id, propagation, trace, timeout): validators' status queries are
//! most of the traffic and each costs a few microseconds, so the generic
//! layers' boxing, body wrapping and one timer registration per request were
//! a quarter of it (docs/BENCHMARKS.md). The deadline polls the route first,
//! so a request answered without waiting, as a status query from the
//! near-cache is, never touches the timer wheel.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use crate::metrics::Metrics;
use crate::problem::Dependency;
use crate::problem::Problem;
use crate::request_metrics::{RouteLabels, interned, method_label};

/// The header that names a request, in both directions.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Wraps each route; `timeout` bounds how long a request may take.
#[derive(Clone)]
pub struct RequestLayer {
    pub metrics: Arc<Metrics>,
    pub timeout: Duration,
}

impl<S> Layer<S> for RequestLayer {
    type Service = EveryRequest<S>;

    fn layer(&self, inner: S) -> EveryRequest<S> {
        EveryRequest { inner, layer: self.clone(), route: None }
    }
}

impl RequestLayer {
    /// Wraps a service that serves one route, called without the router:
    /// its requests are labelled with `route` instead of a matched path.
    pub fn for_route<S>(&self, route: &str, inner: S) -> EveryRequest<S> {
        EveryRequest { inner, layer: self.clone(), route: Some(interned(route)) }
    }
}

#[derive(Clone)]
pub struct EveryRequest<S> {
    inner: S,
    layer: RequestLayer,
    /// The route this service serves, when it is not called by the router.
    route: Option<&'static str>,
}

impl<S> Service<Request> for EveryRequest<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answering<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let request_id = request.headers().get(X_REQUEST_ID).cloned().unwrap_or_else(new_request_id);
        let route = RouteLabels {
            method: method_label(request.method()),
            route: self.route.unwrap_or_else(|| {
                request.extensions().get::<MatchedPath>().map_or("unmatched", |p| interned(p.as_str()))
            }),
        };
        let span = request_span(&request, &route, request_id.to_str().unwrap_or("-"));
        // Calling a route only builds its future (extractors and handler run
        // when it is polled, inside the span), so the call itself needs no span.
        Answering {
            inner: tokio::time::timeout(self.layer.timeout, self.inner.call(request)),
            span,
            request_id: Some(request_id),
            route,
            metrics: self.layer.metrics.clone(),
            started,
        }
    }
}

pin_project_lite::pin_project! {
    /// A route's answer in the making, inside the request's span and deadline.
    pub struct Answering<F> {
        #[pin]
        inner: tokio::time::Timeout<F>,
        span: tracing::Span,
        request_id: Option<HeaderValue>,
        route: RouteLabels,
        metrics: Arc<Metrics>,
        started: Instant,
    }
}

impl<F> Future for Answering<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let mut response = match ready!(this.inner.poll(cx)) {
            Ok(Ok(response)) => response,
            Ok(Err(never)) => match never {},
            Err(_elapsed) => Problem::unavailable("request_timed_out", "The request took too long")
                .detail("It was abandoned; nothing it started was committed. Retry; with the same Idempotency-Key a retry is safe.")
                .into_response(),
        };
        let latency = this.started.elapsed();
        let status = response.status();
        if let Some(request_id) = this.request_id.take() {
            response.headers_mut().insert(X_REQUEST_ID, request_id);
        }
        this.metrics.request_answered(this.route, status.as_u16(), latency);
        let outage = response.extensions().get::<Dependency>().copied();
        if let Some(dependency) = outage {
            this.metrics.unavailable_answer(dependency);
        }
        log_outcome(status, latency, this.span, outage.is_some());
        Poll::Ready(Ok(response))
    }
}

/// A new request id: a UUID, formatted without an intermediate `String`.
fn new_request_id() -> HeaderValue {
    let mut buffer = uuid::Uuid::encode_buffer();
    let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buffer);
    // A hyphenated UUID is always a valid header value.
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// The span of one request: named by its matched route, continuing the
/// caller's trace when the request carries a `traceparent`.
///
/// Without trace export the span carries only what log lines need (method,
/// route, request id): the log layer formats a span's fields as JSON when it is
/// created and again at every record, and validators' status queries, most of
/// the traffic, rarely log anything.
fn request_span(request: &Request, route: &RouteLabels, request_id: &str) -> tracing::Span {
    let RouteLabels { method, route } = *route;
    if !hotline_trace::exporting() {
        return tracing::info_span!("request", http.request.method = method, http.route = route, request_id);
    }
    // The URI is not recorded: routes carry only ids and serials, but the
    // matched route keeps the label set small anyway.
    let span = tracing::info_span!(
        "request",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = method,
        http.route = route,
        http.response.status_code = tracing::field::Empty,
        request_id,
        trace_id = tracing::field::Empty,
    );
    hotline_trace::continue_from_headers(&span, request.headers());
    // Log lines then name the trace, so on-call can go from a log line to its trace.
    if let Some(trace_id) = hotline_trace::trace_id(&span) {
        span.record("trace_id", trace_id);
    }
    span
}

/// One line per request only at debug (validators query millions of times a
/// day; suspensions and releases log their outcome at info themselves), a
/// warning for an outage's 503 (its cause was logged where it was met), an
/// error line for every other 5xx, and the status on an exported span.
fn log_outcome(status: StatusCode, latency: Duration, span: &tracing::Span, outage: bool) {
    let latency_ms = latency.as_secs_f64() * 1e3;
    if outage {
        tracing::warn!(status = status.as_u16(), latency_ms, "answered 503: a dependency is unavailable");
    } else if status.is_server_error() {
        tracing::error!(status = status.as_u16(), latency_ms, "response failed");
    } else {
        tracing::debug!(status = status.as_u16(), latency_ms, "finished processing request");
    }
    if hotline_trace::exporting() {
        span.record("http.response.status_code", status.as_u16());
        if status.is_server_error() {
            span.record("otel.status_code", "ERROR");
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    fn app(timeout: Duration) -> (Router, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new());
        let router = Router::new()
            .route("/quick/{id}", get(|| async { "ok" }))
            .route("/slow", get(|| async { tokio::time::sleep(Duration::from_secs(3600)).await }))
            .layer(RequestLayer { metrics: metrics.clone(), timeout });
        (router, metrics)
    }

    fn get_request(path: &str) -> Request {
        Request::builder().uri(path).body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn every_answer_carries_a_new_request_id_or_the_callers() {
        let (app, _) = app(Duration::from_secs(10));
        let first = app.clone().oneshot(get_request("/quick/1")).await.unwrap();
        let second = app.clone().oneshot(get_request("/quick/2")).await.unwrap();
        let id = |r: &Response| r.headers().get(X_REQUEST_ID).unwrap().to_str().unwrap().to_owned();
        assert_eq!(id(&first).len(), 36);
        assert!(uuid::Uuid::parse_str(&id(&first)).is_ok());
        assert_ne!(id(&first), id(&second));
        let mut theirs = get_request("/quick/3");
        theirs.headers_mut().insert(X_REQUEST_ID, HeaderValue::from_static("caller-chosen-id"));
        let answered = app.oneshot(theirs).await.unwrap();
        assert_eq!(id(&answered), "caller-chosen-id");
    }

    #[tokio::test]
    async fn a_request_past_its_deadline_is_a_problem_503() {
        let (app, metrics) = app(Duration::from_millis(50));
        let answered = tokio::time::timeout(Duration::from_secs(5), app.oneshot(get_request("/slow")))
            .await
            .expect("the deadline must answer the request, not leave it waiting")
            .unwrap();
        assert_eq!(answered.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answered.headers()["content-type"], "application/problem+json");
        assert!(answered.headers().contains_key(X_REQUEST_ID));
        let body = axum::body::to_bytes(answered.into_body(), 4096).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], "request_timed_out");
        let rendered = metrics.render();
        assert!(
            rendered.contains(r#"hotline_http_requests_total{method="GET",route="/slow",status="503"} 1"#),
            "{rendered}"
        );
    }

    #[tokio::test]
    async fn requests_are_counted_by_method_matched_route_and_status() {
        let (app, metrics) = app(Duration::from_secs(10));
        for path in ["/quick/1", "/quick/2", "/nowhere"] {
            app.clone().oneshot(get_request(path)).await.unwrap();
        }
        let rendered = metrics.render();
        assert!(
            rendered.contains(r#"hotline_http_requests_total{method="GET",route="/quick/{id}",status="200"} 2"#),
            "{rendered}"
        );
        assert!(
            rendered.contains(r#"hotline_http_request_duration_seconds_count{method="GET",route="/quick/{id}"} 2"#),
            "{rendered}"
        );
        assert!(
            rendered.contains(r#"hotline_http_requests_total{method="GET",route="unmatched",status="404"} 1"#),
            "{rendered}"
        );
    }
}
