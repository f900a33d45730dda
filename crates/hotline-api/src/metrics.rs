//! Prometheus metrics, one registry per application instance (so tests of
//! several instances in one process do not mix their counts), served as text
//! at `/metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::request_metrics::{Handles, RequestLabels, RouteLabels, label_id};

type Labels2 = [(&'static str, &'static str); 2];
type Labels3 = [(&'static str, &'static str); 3];

/// Latency buckets (seconds), dense below 100 ms where the service should live.
const LATENCY_BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

pub struct Metrics {
    registry: Registry,
    /// Requests by method, matched route and status code.
    pub http_requests: Family<RequestLabels, Counter>,
    /// Request latency by method and matched route.
    pub http_request_duration: Family<RouteLabels, Histogram>,
    /// Suspension reports by item, mode and outcome.
    pub suspensions: Family<Labels3, Counter>,
    /// Releases by outcome.
    pub releases: Family<[(&'static str, &'static str); 1], Counter>,
    /// Status answers by where they came from (`cache`, `store`, `unavailable`) and the status given.
    pub status_answers: Family<Labels2, Counter>,
    /// 503 answers because a dependency was unavailable, by dependency (`database`, `database_and_cache`).
    pub unavailable_answers: Family<[(&'static str, &'static str); 1], Counter>,
    /// Cache updates right after a commit that failed (the background sync repairs them).
    pub cache_write_failures: Counter,
    /// Seconds since the shared cache was last confirmed complete (+Inf without a marker); set at each scrape.
    pub cache_lag_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// 1 when the revocation cache answered the last scrape's marker read.
    pub cache_up: Gauge,
    /// Database pool connections by state (open, idle); set at each scrape.
    pub db_pool_connections: Family<[(&'static str, &'static str); 1], Gauge>,
    /// 1 when the database answered the last scrape's ping.
    pub db_up: Gauge,
    /// Database outages met by a suspension's or release's attempts, by write and kind.
    pub write_outages: Family<Labels2, Counter>,
    /// Synchronous standbys streaming from the primary now (-1: not known); set at each scrape.
    pub db_synchronous_standbys: Gauge,
    /// 1 when this deployment requires a synchronous standby (`database_synchronous_standby`).
    pub db_synchronous_standby_required: Gauge,
    /// Audit records committed and not chained yet, and the age of the oldest (s); set at each scrape.
    pub audit_unsealed: Gauge,
    pub audit_unsealed_oldest_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Always 1; the labels say which reception rule set and mode are in force now.
    pub rules_info: Family<[(&'static str, String); 2], Gauge>,
    /// Plain running totals for the status page's plots.
    pub flow: FlowTotals,
    /// The OCSP responder's.
    pub ocsp: crate::ocsp::OcspMetrics,
    /// Handles of `http_requests` and `http_request_duration` by (method, route, status).
    pub(crate) request_handles: Handles<(usize, usize, u16), (Counter, Histogram)>,
    /// Handles of `status_answers` by (source, status).
    status_answer_handles: Handles<(usize, usize), Counter>,
}

/// Running totals of the two flows on-call watches, read by the status page.
#[derive(Debug, Default)]
pub struct FlowTotals {
    pub suspension_requests: std::sync::atomic::AtomicU64,
    pub suspension_errors: std::sync::atomic::AtomicU64,
    pub status_requests: std::sync::atomic::AtomicU64,
    pub status_errors: std::sync::atomic::AtomicU64,
}

impl FlowTotals {
    pub(crate) fn count(&self, method: &str, route: &str, status: u16) {
        use std::sync::atomic::Ordering::Relaxed;
        let (requests, errors) = match (method, route) {
            ("POST", "/v1/suspensions") => (&self.suspension_requests, &self.suspension_errors),
            (_, "/v1/status/{issuer}/{serial}" | "/v1/status") => (&self.status_requests, &self.status_errors),
            _ => return,
        };
        requests.fetch_add(1, Relaxed);
        if status >= 500 {
            errors.fetch_add(1, Relaxed);
        }
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("hotline");
        let http_requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests by method, matched route and status", http_requests.clone());
        let http_request_duration = Family::<RouteLabels, Histogram>::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by method and matched route",
            http_request_duration.clone(),
        );
        let suspensions = Family::<Labels3, Counter>::default();
        registry.register(
            "suspensions",
            "Suspension reports by item, mode and outcome (accepted, already_suspended, refused_by_rule, rejected)",
            suspensions.clone(),
        );
        let releases = Family::<[(&'static str, &'static str); 1], Counter>::default();
        registry.register("releases", "Releases at the counter by outcome", releases.clone());
        let build = Family::<[(&'static str, &'static str); 2], Gauge>::default();
        build.get_or_create(&[("version", env!("CARGO_PKG_VERSION")), ("commit", env!("HOTLINE_GIT_COMMIT"))]).set(1);
        registry.register("build_info", "Always 1; the labels say which build is running", build);
        let status_answers = Family::<Labels2, Counter>::default();
        registry.register("status_answers", "Certificate status answers by source and status", status_answers.clone());
        let unavailable_answers = Family::<[(&'static str, &'static str); 1], Counter>::default();
        registry.register(
            "unavailable_answers",
            "503 answers because a dependency could not be reached, by dependency (database, database_and_cache)",
            unavailable_answers.clone(),
        );
        let cache_write_failures = Counter::default();
        registry.register(
            "cache_write_failures",
            "Cache updates after a commit that failed and were left to the background sync",
            cache_write_failures.clone(),
        );
        let cache_lag_seconds = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "cache_lag_seconds",
            "Seconds since the revocation cache was last confirmed complete (+Inf when it has no marker or cannot be read)",
            cache_lag_seconds.clone(),
        );
        let cache_up = Gauge::default();
        registry.register("cache_up", "1 when the revocation cache answered at the last scrape", cache_up.clone());
        let db_pool_connections = Family::<[(&'static str, &'static str); 1], Gauge>::default();
        registry.register(
            "db_pool_connections",
            "Database pool connections by state (open, idle)",
            db_pool_connections.clone(),
        );
        let db_up = Gauge::default();
        registry.register("db_up", "1 when the database answered at the last scrape", db_up.clone());
        let write_outages = Family::<Labels2, Counter>::default();
        registry.register(
            "write_outages",
            "Database outages met by suspension and release attempts, by write and kind; each is retried with the same Idempotency-Key while the write deadline allows",
            write_outages.clone(),
        );
        let db_synchronous_standbys = Gauge::default();
        registry.register(
            "db_synchronous_standbys",
            "Synchronous standbys streaming from the primary at the last scrape (-1 when it cannot be read)",
            db_synchronous_standbys.clone(),
        );
        let db_synchronous_standby_required = Gauge::default();
        registry.register(
            "db_synchronous_standby_required",
            "1 when the deployment requires a synchronous standby (HOTLINE_DATABASE_SYNCHRONOUS_STANDBY)",
            db_synchronous_standby_required.clone(),
        );
        let audit_unsealed = Gauge::default();
        registry.register(
            "audit_unsealed",
            "Audit records committed but not yet chained by the sealer (with their status changes, not yet in the stream)",
            audit_unsealed.clone(),
        );
        let audit_unsealed_oldest_seconds = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "audit_unsealed_oldest_seconds",
            "Age of the oldest audit record waiting to be sealed (0 when none waits); -1 when it cannot be read",
            audit_unsealed_oldest_seconds.clone(),
        );
        let rules_info = Family::<[(&'static str, String); 2], Gauge>::default();
        registry.register(
            "rules_info",
            "Always 1; the labels say which rule set and mode are in force now",
            rules_info.clone(),
        );
        let ocsp = crate::ocsp::OcspMetrics::register(&mut registry);
        Self {
            registry,
            flow: FlowTotals::default(),
            ocsp,
            cache_up,
            db_pool_connections,
            db_up,
            write_outages,
            db_synchronous_standbys,
            db_synchronous_standby_required,
            audit_unsealed,
            audit_unsealed_oldest_seconds,
            rules_info,
            cache_lag_seconds,
            http_requests,
            http_request_duration,
            suspensions,
            releases,
            status_answers,
            unavailable_answers,
            cache_write_failures,
            request_handles: Handles::default(),
            status_answer_handles: Handles::default(),
        }
    }

    pub fn status_answer(&self, source: &'static str, status: &'static str) {
        self.status_answer_handles.with(
            (label_id(source), label_id(status)),
            || self.status_answers.get_or_create(&[("source", source), ("status", status)]).clone(),
            |count| {
                count.inc();
            },
        );
    }

    pub fn unavailable_answer(&self, dependency: crate::problem::Dependency) {
        self.unavailable_answers.get_or_create(&[("dependency", dependency.as_str())]).inc();
    }

    pub fn suspension(&self, item: &'static str, mode: &'static str, outcome: &'static str) {
        self.suspensions.get_or_create(&[("item", item), ("mode", mode), ("outcome", outcome)]).inc();
    }

    pub fn write_outage(&self, write: &'static str, outage: hotline_store::Outage) {
        self.write_outages.get_or_create(&[("write", write), ("outage", outage.as_str())]).inc();
    }

    pub fn release(&self, outcome: &'static str) {
        self.releases.get_or_create(&[("outcome", outcome)]).inc();
    }

    /// The registry, for other parts of the process (the CA sync worker) to add their metrics to.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
