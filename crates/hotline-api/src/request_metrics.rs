//! The labels of the per-request metrics, made without allocating: the
//! method as a `&'static str`, the matched route interned once, the status as
//! a number. They are built for every request, so they must be cheap; and
//! their handles are found by the labels' addresses (see [`Handles`]).

use foldhash::{HashMap, HashMapExt, HashSet};
use std::hash::Hash;
use std::sync::{OnceLock, PoisonError, RwLock};
use std::time::Duration;

use axum::http::Method;
use prometheus_client::encoding::EncodeLabelSet;

use crate::metrics::Metrics;

/// Labels of `hotline_http_requests_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: &'static str,
    pub route: &'static str,
    pub status: u16,
}

/// Labels of `hotline_http_request_duration_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: &'static str,
    pub route: &'static str,
}

/// A label's identity: the address of its `&'static str`. Static text does
/// not move, so one address always names the same text (one text may have
/// two addresses, which costs only a second entry for the same series).
pub fn label_id(label: &'static str) -> usize {
    label.as_ptr() as usize
}

/// Metric handles remembered by their labels' identities. A family finds a
/// series by hashing and comparing its labels' text, several strings per
/// count; validators' status queries count three series each, so here a
/// series is looked up in its family once and found by a few integers after.
pub struct Handles<K, H>(RwLock<HashMap<K, H>>);

impl<K, H> Default for Handles<K, H> {
    fn default() -> Self {
        Self(RwLock::new(HashMap::new()))
    }
}

impl<K: Hash + Eq, H> Handles<K, H> {
    /// Runs `use_handle` on `key`'s handle, made by `make` the first time.
    pub fn with(&self, key: K, make: impl FnOnce() -> H, use_handle: impl FnOnce(&H)) {
        if let Some(handle) = self.0.read().unwrap_or_else(PoisonError::into_inner).get(&key) {
            return use_handle(handle);
        }
        use_handle(self.0.write().unwrap_or_else(PoisonError::into_inner).entry(key).or_insert_with(make));
    }
}

impl Metrics {
    /// Counts and times one answered request.
    pub fn request_answered(&self, route: &RouteLabels, status: u16, latency: Duration) {
        let RouteLabels { method, route: template } = *route;
        self.request_handles.with(
            (label_id(method), label_id(template), status),
            || {
                let count =
                    self.http_requests.get_or_create(&RequestLabels { method, route: template, status }).clone();
                (count, self.http_request_duration.get_or_create(route).clone())
            },
            |(count, duration)| {
                count.inc();
                duration.observe(latency.as_secs_f64());
            },
        );
        self.flow.count(method, template, status);
    }
}

/// The method as a label; methods no route takes are lumped together, so a
/// client cannot grow the label set.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The matched route template as a `&'static str`. Templates come from the
/// router, not from clients, so the set is small and fixed; each is leaked
/// once, the first time it is matched.
pub fn interned(route: &str) -> &'static str {
    static ROUTES: OnceLock<RwLock<HashSet<&'static str>>> = OnceLock::new();
    let routes = ROUTES.get_or_init(RwLock::default);
    if let Some(known) = routes.read().unwrap_or_else(PoisonError::into_inner).get(route) {
        return known;
    }
    let mut routes = routes.write().unwrap_or_else(PoisonError::into_inner);
    match routes.get(route) {
        Some(known) => known,
        None => {
            let leaked: &'static str = Box::leak(route.to_owned().into_boxed_str());
            routes.insert(leaked);
            leaked
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_is_interned_once() {
        let a = interned(&String::from("/v1/status/{issuer}/{serial}"));
        let b = interned(&String::from("/v1/status/{issuer}/{serial}"));
        assert!(std::ptr::eq(a, b));
        assert_eq!(a, "/v1/status/{issuer}/{serial}");
        assert_ne!(interned("/v1/status"), a);
    }

    #[test]
    fn a_handle_is_made_once_and_counts_into_its_family() {
        let metrics = Metrics::new();
        let route = RouteLabels { method: "GET", route: interned("/v1/rules/now") };
        for status in [200, 200, 200, 503] {
            metrics.request_answered(&route, status, Duration::from_millis(3));
        }
        assert_eq!(metrics.request_handles.0.read().unwrap().len(), 2, "one handle per (method, route, status)");
        let rendered = metrics.render();
        for series in [
            r#"hotline_http_requests_total{method="GET",route="/v1/rules/now",status="200"} 3"#,
            r#"hotline_http_requests_total{method="GET",route="/v1/rules/now",status="503"} 1"#,
            r#"hotline_http_request_duration_seconds_count{method="GET",route="/v1/rules/now"} 4"#,
        ] {
            assert!(rendered.contains(series), "{series} in {rendered}");
        }
    }

    #[test]
    fn unusual_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
    }
}
