//! W3C trace context (`traceparent`, `tracestate`) at the service's edges.
//!
//! A trace begins at the operator's client (or at the API when the client
//! sends none), runs through the suspension's transaction, is saved with the
//! outbox event that transaction writes, and goes on when a worker, perhaps
//! in another process and seconds later, delivers the event to the CA, whose
//! request carries it further. So one trace shows a call-centre request all
//! the way to the certificate authority.
//!
//! The propagator is the process-wide one the binary installs with the
//! exporter. When export is off no span has a trace context and every
//! function here does nothing (and costs next to nothing).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use http::HeaderMap;
use opentelemetry::global;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

const TRACEPARENT: &str = "traceparent";

/// Whether the process exports traces; set once by whoever installs the trace layer.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Says that a trace layer is installed and spans are exported, so spans
/// should carry the OpenTelemetry fields. Without it, callers may keep their
/// spans to what log lines need.
pub fn set_exporting() {
    EXPORTING.store(true, Ordering::Relaxed);
}

/// Whether spans are exported (see [`set_exporting`]).
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Makes `span` continue the trace named by the request's `traceparent`
/// header, if it has one. Call before the span is first entered.
pub fn continue_from_headers(span: &Span, headers: &HeaderMap) {
    // Most requests (validators' status queries) carry none: skip the propagator.
    if !headers.contains_key(TRACEPARENT) {
        return;
    }
    let parent = global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    // An error only means no trace layer is installed: there is nothing to continue.
    let _ = span.set_parent(parent);
}

/// Makes `span` continue the trace named by a saved `traceparent`.
/// Call before the span is first entered.
pub fn continue_from_traceparent(span: &Span, traceparent: &str) {
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let parent = global::get_text_map_propagator(|p| p.extract(&carrier));
    let _ = span.set_parent(parent);
}

/// The trace id of `span` (32 hex digits), for log lines to name, or `None`
/// when spans are not traced.
pub fn trace_id(span: &Span) -> Option<String> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then(|| span_context.trace_id().to_string())
}

/// Writes the current span's trace context into outgoing request headers.
pub fn inject_current(headers: &mut HeaderMap) {
    let context = Span::current().context();
    if !context.span().span_context().is_valid() {
        return;
    }
    global::get_text_map_propagator(|p| p.inject_context(&context, &mut HeaderInjector(headers)));
}

/// The current span's `traceparent`, to save with work that is done later,
/// or `None` when the current span has no trace context.
pub fn current_traceparent() -> Option<String> {
    let context = Span::current().context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    global::get_text_map_propagator(|p| p.inject_context(&context, &mut carrier));
    carrier.remove(TRACEPARENT)
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    const INCOMING: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn with_tracing(test: impl FnOnce()) {
        global::set_text_map_propagator(TraceContextPropagator::new());
        let provider = SdkTracerProvider::builder().build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), test);
    }

    fn trace_id_of(traceparent: &str) -> &str {
        traceparent.split('-').nth(1).unwrap_or_default()
    }

    #[test]
    fn a_request_span_continues_the_incoming_trace_with_a_span_of_its_own() {
        with_tracing(|| {
            let mut headers = HeaderMap::new();
            headers.insert(TRACEPARENT, http::HeaderValue::from_static(INCOMING));
            let span = tracing::info_span!("request");
            continue_from_headers(&span, &headers);
            let saved = span.in_scope(current_traceparent).unwrap_or_default();
            assert_eq!(trace_id_of(&saved), trace_id_of(INCOMING));
            assert_ne!(saved, INCOMING, "the request must have a span id of its own");
            assert_eq!(trace_id(&span).as_deref(), Some(trace_id_of(INCOMING)));
        });
    }

    #[test]
    fn a_saved_traceparent_is_continued_and_passed_on_in_headers() {
        with_tracing(|| {
            let span = tracing::info_span!("deliver");
            continue_from_traceparent(&span, INCOMING);
            let mut outgoing = HeaderMap::new();
            span.in_scope(|| inject_current(&mut outgoing));
            let sent = outgoing.get(TRACEPARENT).and_then(|v| v.to_str().ok()).unwrap_or_default();
            assert_eq!(trace_id_of(sent), trace_id_of(INCOMING));
        });
    }

    #[test]
    fn without_a_trace_layer_nothing_is_saved_or_sent() {
        global::set_text_map_propagator(TraceContextPropagator::new());
        let span = tracing::info_span!("request");
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, http::HeaderValue::from_static(INCOMING));
        continue_from_headers(&span, &headers);
        assert_eq!(span.in_scope(current_traceparent), None);
        assert_eq!(trace_id(&span), None);
        let mut outgoing = HeaderMap::new();
        span.in_scope(|| inject_current(&mut outgoing));
        assert!(outgoing.is_empty());
    }

    #[test]
    fn a_malformed_traceparent_starts_a_new_trace() {
        with_tracing(|| {
            let span = tracing::info_span!("deliver");
            continue_from_traceparent(&span, "00-not-a-trace-01");
            let saved = span.in_scope(current_traceparent).unwrap_or_default();
            assert_eq!(trace_id_of(&saved).len(), 32);
            assert_ne!(trace_id_of(&saved), "00000000000000000000000000000000");
        });
    }
}
