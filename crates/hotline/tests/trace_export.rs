//! Trace export end to end: `hotline serve` with `HOTLINE_OTLP_ENDPOINT`
//! pointing at an OTLP/HTTP receiver in this test, and a real ca-sim
//! process. A suspension sent with a W3C `traceparent` must come out as one
//! trace: the request, its transaction, the outbox delivery and the CA call,
//! with the CA receiving the same trace. No span may hold the caller's
//! Individual Number.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use hotline_testkit::CaSimServer;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use serde_json::Value;
use support::Server;

const TRACE_ID: &str = "5b8efff798038103d269b633813fc60c";
const CALLER_SPAN_ID: &str = "eee19b7ec3c1b174";

type Received = Arc<Mutex<Vec<Bytes>>>;

/// A minimal OTLP/HTTP receiver: keeps every protobuf body posted to `/v1/traces`.
async fn start_receiver() -> (String, Received) {
    async fn accept(State(received): State<Received>, body: Bytes) -> ([(&'static str, &'static str); 1], Vec<u8>) {
        received.lock().unwrap().push(body);
        // An empty ExportTraceServiceResponse: everything accepted.
        ([("content-type", "application/x-protobuf")], Vec::new())
    }
    let received = Received::default();
    let app = Router::new().route("/v1/traces", post(accept)).with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

/// One exported span, flattened.
#[derive(Debug)]
struct ExportedSpan {
    name: String,
    kind: i32,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: HashMap<String, String>,
    service: String,
}

fn text(value: Option<&AnyValue>) -> String {
    match value {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn attributes(kvs: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> HashMap<String, String> {
    kvs.iter().map(|kv| (kv.key.clone(), text(kv.value.as_ref().and_then(|v| v.value.as_ref())))).collect()
}

fn decode(bodies: &[Bytes]) -> Vec<ExportedSpan> {
    let mut spans = Vec::new();
    for body in bodies {
        let request = ExportTraceServiceRequest::decode(body.as_ref()).expect("an OTLP protobuf body");
        for resource_spans in request.resource_spans {
            let resource = resource_spans.resource.map(|r| attributes(&r.attributes)).unwrap_or_default();
            let service = resource.get("service.name").cloned().unwrap_or_default();
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                spans.push(ExportedSpan {
                    name: span.name,
                    kind: span.kind,
                    trace_id: hex::encode(&span.trace_id),
                    span_id: hex::encode(&span.span_id),
                    parent_span_id: hex::encode(&span.parent_span_id),
                    attributes: attributes(&span.attributes),
                    service: service.clone(),
                });
            }
        }
    }
    spans
}

fn one<'a>(spans: &'a [ExportedSpan], name: &str) -> &'a ExportedSpan {
    let found: Vec<_> = spans.iter().filter(|s| s.name == name && s.trace_id == TRACE_ID).collect();
    assert!(!found.is_empty(), "no span {name:?} in the trace; exported: {:#?}", names(spans));
    found[0]
}

fn names(spans: &[ExportedSpan]) -> Vec<(&str, &str)> {
    spans.iter().map(|s| (s.name.as_str(), s.trace_id.as_str())).collect()
}

#[tokio::test]
async fn a_suspension_is_one_trace_from_the_caller_to_the_ca_without_the_individual_number() {
    let (collector, received) = start_receiver().await;
    let ca = CaSimServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = support::serve(dir.path());
    cmd.env("HOTLINE_OTLP_ENDPOINT", &collector)
        .env("HOTLINE_CA_URL", ca.url())
        // Export every 100 ms instead of every 5 s.
        .env("OTEL_BSP_SCHEDULE_DELAY", "100");
    let server = Server::start(cmd);
    // The smartphone suspension is accepted at any hour of the day.
    let curl = server.wait_for(|l| (l.starts_with("curl ") && l.contains("smartphone")).then(|| l.to_owned())).await;
    let operator = server.wait_for(|l| l.trim_start().strip_prefix("operator ").map(|t| t.trim().to_owned())).await;
    let addr = server.addr().await;
    let individual_number = curl.split("\"individual_number\":\"").nth(1).unwrap()[..12].to_owned();
    assert!(individual_number.bytes().all(|b| b.is_ascii_digit()), "{individual_number}");

    let traced = curl.replacen("curl ", &format!("curl -H 'traceparent: 00-{TRACE_ID}-{CALLER_SPAN_ID}-01' "), 1);
    let out = support::paste(&traced).await;
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = answer["id"].as_str().unwrap_or_else(|| panic!("{answer}"));

    support::wait_ca_confirmed(&addr, &operator, id).await;

    // The CA was called within the caller's trace.
    let stats = ca.control().stats().await.unwrap();
    assert!(!stats.traceparents.is_empty(), "the CA received no traceparent: {stats:?}");
    for traceparent in stats.traceparents.values() {
        assert_eq!(traceparent.split('-').nth(1), Some(TRACE_ID), "{traceparent}");
    }

    // SIGTERM: the exporter flushes what is still queued before the process ends.
    let (code, _, err) = server.terminate().await;
    assert_eq!(code, 0, "{}", err.join("\n"));
    // The request's log lines name its trace, to go from a log line to the trace.
    let logged: Vec<Value> = err.iter().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(
        logged.iter().any(|l| l["span"]["trace_id"] == TRACE_ID && l["span"]["http.route"] == "/v1/suspensions"),
        "no log line names the trace:\n{}",
        err.join("\n")
    );
    let bodies = received.lock().unwrap().clone();
    let spans = decode(&bodies);

    let request = one(&spans, "POST /v1/suspensions");
    assert_eq!(request.kind, SpanKind::Server as i32);
    assert_eq!(request.parent_span_id, CALLER_SPAN_ID, "the request continues the caller's span");
    assert_eq!(request.attributes.get("http.response.status_code").map(String::as_str), Some("201"));
    assert_eq!(request.attributes.get("http.route").map(String::as_str), Some("/v1/suspensions"));
    assert_eq!(request.service, "hotline");

    let transaction = one(&spans, "transaction suspend");
    assert_eq!(transaction.parent_span_id, request.span_id, "the transaction runs inside the request");
    assert_eq!(transaction.kind, SpanKind::Client as i32);

    let deliveries: Vec<_> = spans.iter().filter(|s| s.name == "outbox deliver" && s.trace_id == TRACE_ID).collect();
    assert_eq!(deliveries.len(), stats.traceparents.len(), "one delivery per event: {:#?}", names(&spans));
    for delivery in &deliveries {
        assert_eq!(delivery.parent_span_id, transaction.span_id, "delivery continues the transaction that wrote it");
        assert_eq!(delivery.kind, SpanKind::Consumer as i32);
        assert_eq!(delivery.attributes.get("outcome").map(String::as_str), Some("Confirmed"));
    }
    let ca_calls: Vec<_> =
        spans.iter().filter(|s| s.name == "POST /v1/revocations" && s.trace_id == TRACE_ID).collect();
    assert_eq!(ca_calls.len(), deliveries.len());
    for call in &ca_calls {
        assert_eq!(call.kind, SpanKind::Client as i32);
        assert!(deliveries.iter().any(|d| d.span_id == call.parent_span_id), "each CA call is inside a delivery");
        // What the CA received names this very span as its parent.
        let event_id = call.attributes.get("event_id").unwrap();
        let sent = &stats.traceparents[event_id];
        assert_eq!(sent.split('-').nth(2), Some(call.span_id.as_str()), "{sent}");
    }

    // A request without a traceparent starts a trace of its own.
    let poll = spans.iter().find(|s| s.name == "GET /v1/suspensions/{id}").expect("the status polls were traced");
    assert_ne!(poll.trace_id, TRACE_ID);
    assert!(poll.parent_span_id.is_empty(), "{poll:?}");

    // No Individual Number anywhere in what was exported: not in a name, an
    // attribute or an event, in any encoding the digits could take.
    for body in &bodies {
        let raw = body.as_ref();
        assert!(
            !raw.windows(individual_number.len()).any(|w| w == individual_number.as_bytes()),
            "the Individual Number was exported"
        );
        let decoded = format!("{:?}", ExportTraceServiceRequest::decode(raw).unwrap());
        assert!(!decoded.contains(&individual_number), "the Individual Number was exported");
    }
}
