//! Logging and traces. Logs are JSON lines on standard error by default,
//! each carrying the request's span (with its request id); standard output
//! is kept for what a command prints for a person.
//!
//! Traces are exported over OTLP/HTTP (protobuf) when `HOTLINE_OTLP_ENDPOINT`
//! or the standard `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and W3C trace
//! context is then read from requests and passed on to the CA. Spans carry
//! routes, ids and outcomes, never a request body: the Individual Number
//! never reaches a span.

mod span_fields;

use anyhow::Context as _;
use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use hotline::cli::LogFormat;

/// The standard variables that turn export on when ours is not set.
const STANDARD_ENDPOINTS: [&str; 2] = ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"];

/// Where traces go, if anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceExport {
    Off,
    /// An OTLP/HTTP base URL (`http://collector:4318`); spans go to `/v1/traces` under it.
    To(String),
    /// Set by the standard `OTEL_EXPORTER_OTLP_*` variables, which the exporter reads itself.
    FromStandardVariables,
}

impl TraceExport {
    pub fn from_settings(hotline_endpoint: Option<&str>) -> Self {
        match hotline_endpoint.filter(|e| !e.is_empty()) {
            Some(endpoint) => TraceExport::To(endpoint.to_owned()),
            None if STANDARD_ENDPOINTS.iter().any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty())) => {
                TraceExport::FromStandardVariables
            }
            None => TraceExport::Off,
        }
    }
}

/// Flushes the spans still queued when the process ends. Drop it outside
/// the async runtime: the flush blocks.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("warning: could not flush the last traces: {e}");
        }
    }
}

/// `filter`: the `log` setting, refused if it is not a filter.
pub fn init(format: LogFormat, filter: &str, export: &TraceExport) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_new(filter).with_context(|| {
        format!("setting log (HOTLINE_LOG) = {filter:?} is not a log filter (e.g. `info`, `hotline_api=debug`)")
    })?;
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = match format {
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .fmt_fields(span_fields::JsonSpanFields)
            .boxed(),
        LogFormat::Text => logs.boxed(),
    };
    let provider = match export {
        TraceExport::Off => None,
        _ => Some(tracer_provider(export)?),
    };
    let traces = provider.as_ref().map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("hotline")));
    if traces.is_some() {
        hotline_trace::set_exporting();
    }
    tracing_subscriber::registry().with(filter).with(logs).with(traces).try_init()?;
    if let Some(endpoint) = describe(export) {
        tracing::info!(endpoint, "exporting traces over OTLP/HTTP");
    }
    Ok(Telemetry { provider })
}

fn tracer_provider(export: &TraceExport) -> anyhow::Result<SdkTracerProvider> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let builder = opentelemetry_otlp::SpanExporter::builder().with_http().with_protocol(Protocol::HttpBinary);
    let builder = match export {
        TraceExport::To(base) => builder.with_endpoint(plain_http(base)?),
        _ => builder,
    };
    let exporter = builder.build().context("could not set up the OTLP trace exporter")?;
    let mut resource = Resource::builder().with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    // The pod or container name tells the API instances apart.
    if let Ok(host) = std::env::var("HOSTNAME") {
        resource = resource.with_attribute(KeyValue::new("service.instance.id", host));
    }
    // OTEL_SERVICE_NAME, when set, names the service; the builder has read it already.
    let resource =
        if std::env::var_os("OTEL_SERVICE_NAME").is_some() { resource } else { resource.with_service_name("hotline") };
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource.build()).build())
}

/// The traces URL, refused unless it is plain HTTP: this build has no TLS
/// client, and an https endpoint would otherwise fail on every export, unseen.
fn plain_http(base: &str) -> anyhow::Result<String> {
    if !base.starts_with("http://") {
        anyhow::bail!(
            "HOTLINE_OTLP_ENDPOINT must be an http:// URL (got {base}): traces are sent over plain HTTP; \
             run an OpenTelemetry collector beside the service and let it forward over TLS"
        );
    }
    Ok(traces_url(base))
}

/// The OTLP/HTTP traces URL under a base URL, as the standard variable is read.
fn traces_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/v1/traces") { base.to_owned() } else { format!("{base}/v1/traces") }
}

fn describe(export: &TraceExport) -> Option<String> {
    match export {
        TraceExport::Off => None,
        TraceExport::To(base) => Some(traces_url(base)),
        TraceExport::FromStandardVariables => Some("from OTEL_EXPORTER_OTLP_* variables".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_path_is_added_once() {
        assert_eq!(traces_url("http://collector:4318"), "http://collector:4318/v1/traces");
        assert_eq!(traces_url("http://collector:4318/"), "http://collector:4318/v1/traces");
        assert_eq!(traces_url("http://collector:4318/v1/traces"), "http://collector:4318/v1/traces");
    }

    #[test]
    fn only_plain_http_endpoints_are_accepted() {
        assert_eq!(plain_http("http://c:4318").unwrap(), "http://c:4318/v1/traces");
        let refused = plain_http("https://c:4318").unwrap_err().to_string();
        assert!(refused.contains("http://") && refused.contains("https://c:4318"), "{refused}");
        assert!(plain_http("c:4318").is_err());
    }

    #[test]
    fn our_endpoint_wins_and_an_empty_one_is_off() {
        assert_eq!(TraceExport::from_settings(Some("http://c:4318")), TraceExport::To("http://c:4318".into()));
        // The test command sets no OTEL_EXPORTER_OTLP_* variable.
        assert_eq!(TraceExport::from_settings(Some("")), TraceExport::Off);
        assert_eq!(TraceExport::from_settings(None), TraceExport::Off);
    }
}
