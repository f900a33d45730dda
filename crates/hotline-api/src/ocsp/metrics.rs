//! The OCSP responder's metrics: answers by response status, certificate
//! status and source; signatures and their latency; the signed-response
//! cache's look-ups and size; refusals when the signers are saturated; and
//! each responder certificate's remaining lifetime.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Labels3 = [(&'static str, &'static str); 3];

/// Signing latency buckets (seconds): a signature takes tens of microseconds, a queue behind it more.
const SIGNING_BUCKETS: [f64; 10] = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1];

pub struct OcspMetrics {
    /// Responses by response status (`successful`, `malformed_request`, …), certificate status and source.
    pub responses: Family<Labels3, Counter>,
    pub signatures: Counter,
    pub signing_duration: Histogram,
    /// Signed-response cache look-ups by result (`hit`, `miss`, `stale`).
    pub cache_lookups: Family<[(&'static str, &'static str); 1], Counter>,
    pub cache_entries: Gauge,
    pub cache_bytes: Gauge,
    /// Requests answered `tryLater` because the signers' queue was full.
    pub saturated: Counter,
    /// Seconds until each issuer's responder certificate expires (negative once expired); set at each scrape.
    pub responder_expiry_seconds: Family<[(&'static str, String); 1], Gauge>,
    /// The series counted on every kept answer, made once: finding a series
    /// in its family hashes its labels, twice per request.
    hot: HotSeries,
}

/// `successful` answers by certificate status and source, and look-ups by result, in the order of their names.
struct HotSeries {
    successful: [[Counter; SOURCES.len()]; CERT_STATUSES.len()],
    lookups: [Counter; LOOKUPS.len()],
}

const CERT_STATUSES: [&str; 4] = ["good", "revoked", "unknown", "several"];
/// Every [`crate::status_service::Source`]'s label, in its order (a test holds the two together).
const SOURCES: [&str; 5] = ["near_cache", "cache", "store", "near_cache_stale", "cache_stale"];
const LOOKUPS: [&str; 3] = ["hit", "miss", "stale"];

impl HotSeries {
    fn new(responses: &Family<Labels3, Counter>, lookups: &Family<[(&'static str, &'static str); 1], Counter>) -> Self {
        Self {
            successful: CERT_STATUSES.map(|cert_status| {
                SOURCES.map(|source| {
                    responses
                        .get_or_create(&[
                            ("response_status", "successful"),
                            ("cert_status", cert_status),
                            ("source", source),
                        ])
                        .clone()
                })
            }),
            lookups: LOOKUPS.map(|result| lookups.get_or_create(&[("result", result)]).clone()),
        }
    }
}

impl OcspMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let (responses, cache_lookups) = (Family::default(), Family::default());
        let m = Self {
            hot: HotSeries::new(&responses, &cache_lookups),
            responses,
            signatures: Counter::default(),
            signing_duration: Histogram::new(SIGNING_BUCKETS),
            cache_lookups,
            cache_entries: Gauge::default(),
            cache_bytes: Gauge::default(),
            saturated: Counter::default(),
            responder_expiry_seconds: Family::default(),
        };
        registry.register(
            "ocsp_responses",
            "OCSP responses by response status, certificate status (good, revoked, unknown, several, none) and source",
            m.responses.clone(),
        );
        registry.register("ocsp_signatures", "OCSP responses signed", m.signatures.clone());
        registry.register(
            "ocsp_signing_duration_seconds",
            "From asking the signers to the signed response, queueing included",
            m.signing_duration.clone(),
        );
        registry.register(
            "ocsp_cache_lookups",
            "Signed-response cache look-ups by result (hit, miss, stale: due to be signed again)",
            m.cache_lookups.clone(),
        );
        registry.register("ocsp_cache_entries", "Signed responses kept", m.cache_entries.clone());
        registry.register("ocsp_cache_bytes", "Bytes of signed responses kept", m.cache_bytes.clone());
        registry.register(
            "ocsp_saturated",
            "OCSP requests answered tryLater because the signers' queue was full",
            m.saturated.clone(),
        );
        registry.register(
            "ocsp_responder_expiry_seconds",
            "Seconds until the issuer's OCSP responder certificate expires (negative once expired)",
            m.responder_expiry_seconds.clone(),
        );
        m
    }

    pub fn response(&self, response_status: &'static str, cert_status: &'static str, source: &'static str) {
        let position = |names: &[&str], name: &str| names.iter().position(|n| *n == name);
        if response_status == "successful"
            && let (Some(c), Some(s)) = (position(&CERT_STATUSES, cert_status), position(&SOURCES, source))
        {
            self.hot.successful[c][s].inc();
            return;
        }
        self.responses
            .get_or_create(&[("response_status", response_status), ("cert_status", cert_status), ("source", source)])
            .inc();
    }

    /// A signed-response cache look-up: `hit`, `miss` or `stale`.
    pub fn lookup(&self, result: &'static str) {
        match LOOKUPS.iter().position(|n| *n == result) {
            Some(i) => self.hot.lookups[i].inc(),
            None => self.cache_lookups.get_or_create(&[("result", result)]).inc(),
        };
    }
}

#[cfg(test)]
mod tests {
    use crate::status_service::Source;

    #[test]
    fn the_hot_series_name_every_source() {
        assert_eq!(super::SOURCES.to_vec(), Source::ALL.map(Source::as_str).to_vec());
    }
}
