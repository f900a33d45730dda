//! Prometheus metrics, one registry per application instance (so tests of
//! several instances in one process do not mix their counts), served as text
//! at `/metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

type Labels2 = [(&'static str, &'static str); 2];

pub struct Metrics {
    registry: Registry,
    /// Status answers by where they came from (`cache`, `store`, `unavailable`) and the status given.
    pub status_answers: Family<Labels2, Counter>,
    /// Cache updates right after a commit that failed (the background sync repairs them).
    pub cache_write_failures: Counter,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("hotline");
        let status_answers = Family::<Labels2, Counter>::default();
        registry.register("status_answers", "Certificate status answers by source and status", status_answers.clone());
        let cache_write_failures = Counter::default();
        registry.register(
            "cache_write_failures",
            "Cache updates after a commit that failed and were left to the background sync",
            cache_write_failures.clone(),
        );
        Self { registry, status_answers, cache_write_failures }
    }

    pub fn status_answer(&self, source: &'static str, status: &'static str) {
        self.status_answers.get_or_create(&[("source", source), ("status", status)]).inc();
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
