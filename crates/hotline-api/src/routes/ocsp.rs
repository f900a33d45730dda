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
use chrono::{DateTime, Utc};
use hotline_ocsp::MAX_REQUEST_BYTES;

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

async fn answer(state: &AppState, caller: &Result<Authorized<Validators>, Problem>, der: &[u8]) -> Reply {
    let authorized = match authorized(caller) {
        Ok(authorized) => authorized,
        Err(()) if state.ocsp.settings.anonymous => true,
        Err(()) => return Reply::try_later(),
    };
    let query = match hotline_ocsp::parse(der) {
        Ok(query) => query,
        Err(e) => {
            tracing::debug!(error = %e, "malformed OCSP request");
            state.metrics.ocsp.response("malformed_request", "none", "none");
            return Reply::malformed();
        }
    };
    state.ocsp.answer(query, authorized, &state.status, &state.metrics).await
}

fn malformed(state: &AppState) -> Response {
    state.metrics.ocsp.response("malformed_request", "none", "none");
    wire(&Reply::malformed(), None)
}

/// An OCSP request in the body.
pub async fn post(
    State(state): State<AppState>,
    caller: Result<Authorized<Validators>, Problem>,
    body: Body,
) -> Response {
    // One byte over the bound tells an oversized body from one exactly at it.
    let Ok(der) = axum::body::to_bytes(body, MAX_REQUEST_BYTES).await else { return malformed(&state) };
    let reply = answer(&state, &caller, &der).await;
    wire(&reply, None)
}

/// An OCSP request in the path: base64 of its DER, percent-encoded.
pub async fn get(
    State(state): State<AppState>,
    caller: Result<Authorized<Validators>, Problem>,
    headers: HeaderMap,
    Path(encoded): Path<String>,
) -> Response {
    let Some(der) = decode_get(&encoded) else { return malformed(&state) };
    let reply = answer(&state, &caller, &der).await;
    wire(&reply, Some(&headers))
}

/// Base64 in the standard or the URL-safe alphabet, padded or not (RFC 5019 §5).
fn decode_get(encoded: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let encoded = encoded.trim_start_matches('/');
    if encoded.len() > MAX_REQUEST_BYTES.div_ceil(3) * 4 {
        return None;
    }
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD].iter().find_map(|engine| engine.decode(encoded).ok())
}

/// An HTTP-date (RFC 9110 §5.6.7), written out directly: every cached
/// answer carries two, and a strftime pattern is parsed again for each.
fn http_date(t: DateTime<Utc>) -> String {
    use chrono::{Datelike, Timelike};
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let day = DAYS[t.weekday().num_days_from_monday() as usize];
    let month = MONTHS[t.month0() as usize];
    let mut out = String::with_capacity(29);
    use std::fmt::Write;
    let _ = write!(
        out,
        "{day}, {:02} {month} {} {:02}:{:02}:{:02} GMT",
        t.day(),
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    );
    out
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The reply as HTTP; `get` holds a `GET`'s headers, whose answers may be cached.
fn wire(reply: &Reply, get: Option<&HeaderMap>) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(OCSP_RESPONSE));
    let cacheable = match (get, reply.signed) {
        (Some(request), Some((this_update, next_update, digest))) if reply.cacheable => {
            Some((request, this_update, next_update, digest))
        }
        _ => None,
    };
    let Some((request, this_update, next_update, digest)) = cacheable else {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return (StatusCode::OK, headers, Body::from(reply.der.clone())).into_response();
    };
    let max_age = (next_update - Utc::now()).num_seconds().max(0);
    let etag = format!("\"{}\"", hex_prefix(&digest));
    headers.insert(
        header::CACHE_CONTROL,
        header_value(&format!("max-age={max_age}, public, no-transform, must-revalidate")),
    );
    headers.insert(header::LAST_MODIFIED, header_value(&http_date(this_update)));
    headers.insert(header::EXPIRES, header_value(&http_date(next_update)));
    headers.insert(header::ETAG, header_value(&etag));
    let unchanged = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| tag.trim() == etag || tag.trim() == "*");
    if unchanged {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (StatusCode::OK, headers, Body::from(reply.der.clone())).into_response()
}

/// A response's digest in hex: a strong ETag for its exact bytes.
fn hex_prefix(digest: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(2 * digest.len());
    for b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
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

    #[test]
    fn http_dates_are_imf_fixdate() {
        for seconds in [1_764_633_600, 1_764_633_600 + 86_400 * 40 + 3_723, 0] {
            let t = DateTime::from_timestamp(seconds, 0).unwrap();
            assert_eq!(http_date(t), t.format("%a, %d %b %Y %H:%M:%S GMT").to_string());
        }
        assert_eq!(http_date(DateTime::from_timestamp(1_764_633_600, 0).unwrap()), "Tue, 02 Dec 2025 00:00:00 GMT");
        assert_eq!(hex_prefix(&[0x0f, 0xa0]), "0fa0");
    }
}
