//! The labels of the per-request metrics, made without allocating: the
//! method as a `&'static str`, the matched route interned once, the status as
//! a number. They are built for every request, so they must be cheap.

use std::collections::HashSet;
use std::sync::{OnceLock, RwLock};
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

impl Metrics {
    /// Counts and times one answered request.
    pub fn request_answered(&self, route: &RouteLabels, status: u16, latency: Duration) {
        let RouteLabels { method, route: template } = *route;
        self.http_request_duration.get_or_create(route).observe(latency.as_secs_f64());
        self.flow.count(method, template, status);
        self.http_requests.get_or_create(&RequestLabels { method, route: template, status }).inc();
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
    if let Some(known) = routes.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(route) {
        return known;
    }
    let mut routes = routes.write().unwrap_or_else(std::sync::PoisonError::into_inner);
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
    fn unusual_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
    }
}
