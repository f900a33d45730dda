//! OCSP over HTTP (RFC 6960 Appendix A, profiled by RFC 5019 §5): `POST
//! /ocsp` with a DER request, `GET /ocsp/{request}` with it in base64 (either
//! alphabet), percent-encoded. Every answer, refusals included, is an
//! `application/ocsp-response`: an OCSP client reads nothing else. A `GET`
//! answer carries RFC 5019's caching headers, never beyond its `nextUpdate`,
//! with an `ETag` a client can revalidate (`304`).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use chrono::Utc;
use hotline_ocsp::MAX_REQUEST_BYTES;

use std::sync::Arc;

use crate::AppState;
use crate::auth::{Authorized, Validators};
use crate::ocsp::Reply;
use crate::problem::Problem;

const OCSP_RESPONSE: &str = "application/ocsp-response";

/// Whether the caller may ask; `Err` when tokens cannot be checked right now (answered `tryLater`).
fn authorized(caller: &Result<Authorized<Validators>, Problem>) -> Result<bool, ()> {
    match caller {
        Ok(_) => Ok(true),
        Err(problem) if problem.code() == "auth_unavailable" => Err(()),
        Err(_) => Ok(false),
    }
}

/// Where the request is: a `POST`'s body, or a `GET`'s path (its base64, percent-decoded).
enum Asking<'a> {
    Body(&'a [u8]),
    Path(&'a str),
}

async fn answer(state: &AppState, caller: &Result<Authorized<Validators>, Problem>, asking: Asking<'_>) -> Reply {
    let authorized = match authorized(caller) {
        Ok(authorized) => authorized,
        Err(()) if state.ocsp.settings.anonymous => true,
        Err(()) => return Reply::try_later(),
    };
    let query = match asking {
        Asking::Body(der) => hotline_ocsp::parse(der).map(Arc::new),
        Asking::Path(encoded) => state.ocsp.read_get(encoded, decode_get),
    };
    let query = match query {
        Ok(query) => query,
        Err(e) => {
            tracing::debug!(error = %e, "malformed OCSP request");
            state.metrics.ocsp.response("malformed_request", "none", "none");
            return Reply::malformed();
        }
    };
    state.ocsp.answer(&query, authorized, &state.status, &state.metrics).await
}

fn malformed(state: &AppState) -> Response {
    state.metrics.ocsp.response("malformed_request", "none", "none");
    wire(Reply::malformed(), None)
}

/// An OCSP request in the body.
pub async fn post(
    State(state): State<AppState>,
    caller: Result<Authorized<Validators>, Problem>,
    body: Body,
) -> Response {
    // One byte over the bound tells an oversized body from one exactly at it.
    let Ok(der) = axum::body::to_bytes(body, MAX_REQUEST_BYTES).await else { return malformed(&state) };
    let reply = answer(&state, &caller, Asking::Body(&der)).await;
    wire(reply, None)
}

/// The route of an OCSP `GET`.
pub const GET: &str = "/ocsp/{*request}";

/// An OCSP request in the path: base64 of its DER, percent-encoded.
pub async fn get(
    State(state): State<AppState>,
    caller: Result<Authorized<Validators>, Problem>,
    headers: HeaderMap,
    Path(encoded): Path<String>,
) -> Response {
    answer_get(&state, &caller, &headers, &encoded).await
}

/// Answers an OCSP `GET` whose path holds `encoded`, percent-decoded; the
/// router's handler and the shortcut for plain paths (`dispatch`) both end here.
pub async fn answer_get(
    state: &AppState,
    caller: &Result<Authorized<Validators>, Problem>,
    headers: &HeaderMap,
    encoded: &str,
) -> Response {
    let reply = answer(state, caller, Asking::Path(encoded)).await;
    wire(reply, Some(headers))
}

/// Base64 in the standard or the URL-safe alphabet, padded or not (RFC 5019 §5).
fn decode_get(encoded: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let encoded = encoded.trim_start_matches('/');
    if encoded.len() > MAX_REQUEST_BYTES.div_ceil(3) * 4 {
        return None;
    }
    // The alphabet the request's characters name is tried first; the others only if that fails.
    let url_safe = encoded.bytes().any(|b| b == b'-' || b == b'_');
    let padded = encoded.ends_with('=');
    let engines = match (url_safe, padded) {
        (false, true) => [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD],
        (false, false) => [STANDARD_NO_PAD, STANDARD, URL_SAFE_NO_PAD, URL_SAFE],
        (true, true) => [URL_SAFE, URL_SAFE_NO_PAD, STANDARD, STANDARD_NO_PAD],
        (true, false) => [URL_SAFE_NO_PAD, URL_SAFE, STANDARD_NO_PAD, STANDARD],
    };
    engines.iter().find_map(|engine| engine.decode(encoded).ok())
}

/// A header value from bytes written by this service; they are always
/// valid, and an empty value is sent should one somehow not be.
fn header_value(bytes: bytes::Bytes) -> HeaderValue {
    HeaderValue::from_maybe_shared(bytes).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The reply as HTTP; `get` holds a `GET`'s headers, whose answers may be cached.
fn wire(reply: Reply, get: Option<&HeaderMap>) -> Response {
    let mut headers = HeaderMap::with_capacity(8);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(OCSP_RESPONSE));
    let cacheable = match (get, &reply.signed) {
        (Some(request), Some(signed)) if reply.cacheable => Some((request, signed)),
        _ => None,
    };
    let Some((request, signed)) = cacheable else {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return (StatusCode::OK, headers, Body::from(reply.der)).into_response();
    };
    let max_age = (signed.next_update - Utc::now()).num_seconds().max(0);
    let cache_control = format!("max-age={max_age}, public, no-transform, must-revalidate");
    headers.insert(header::CACHE_CONTROL, header_value(cache_control.into()));
    headers.insert(header::LAST_MODIFIED, header_value(signed.http.last_modified.clone()));
    headers.insert(header::EXPIRES, header_value(signed.http.expires.clone()));
    headers.insert(header::ETAG, header_value(signed.http.etag.clone()));
    let etag = signed.http.etag.as_ref();
    let unchanged = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .any(|tag| tag == etag || tag == b"*");
    if unchanged {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    let body = Body::from(reply.der);
    (StatusCode::OK, headers, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_requests_are_read_in_either_base64_alphabet() {
        let der = vec![0xfb, 0xff, 0x3e, 0x30, 0x00];
        let standard = base64::engine::general_purpose::STANDARD.encode(&der);
        let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&der);
        assert!(standard.contains('/') || standard.contains('+'), "{standard}");
        assert_eq!(decode_get(&standard), Some(der.clone()));
        assert_eq!(decode_get(&url_safe), Some(der));
        assert_eq!(decode_get("not base64!"), None);
        assert_eq!(decode_get(&"A".repeat(MAX_REQUEST_BYTES * 2)), None);
    }
}
