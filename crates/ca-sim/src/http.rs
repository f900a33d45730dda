//! The CA's HTTP API and its fault injection.

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use hotline_ca::{CaProblem, CaStats, Faults, ResponderCertificate, ResponderRequest, RevocationRequest};
use rand::Rng;
use time::OffsetDateTime;

use crate::CaSim;
use crate::authority::Revoked;
use crate::ledger::{Refusal, canonical};

/// A signed CRL is re-signed at least this often even if nothing changed,
/// so its nextUpdate never comes near.
const CRL_REFRESH: time::Duration = time::Duration::hours(1);

/// The last CRL signed per issuer.
#[derive(Default)]
pub struct CrlCache {
    signed: HashMap<String, (OffsetDateTime, Vec<u8>)>,
    last_number: u64,
}

pub fn router(ca: CaSim) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/v1/revocations", post(revoke))
        .route("/v1/issuers/{issuer}/crl", get(crl))
        .route("/v1/issuers/{issuer}/ca.pem", get(ca_pem))
        .route("/v1/issuers/{issuer}/ocsp-responder", post(issue_responder))
        .route("/v1/issuers/{issuer}/entries/{serial}", delete(forget))
        .route("/v1/faults", get(faults).post(set_faults))
        .route("/v1/stats", get(stats))
        .with_state(ca)
}

fn problem(status: u16, code: &str, detail: impl Into<String>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = CaProblem { code: code.to_owned(), detail: detail.into() };
    (status, [(header::CONTENT_TYPE, "application/problem+json")], Json(body)).into_response()
}

fn refusal((status, p): Refusal) -> Response {
    problem(status, &p.code, p.detail)
}

/// The fault drawn for one request.
enum Fault {
    None,
    Error,
    Hang,
    LoseResponse,
}

fn draw(faults: &Faults) -> Fault {
    let mut rng = rand::rng();
    let mut roll = |rate: f64| rate > 0.0 && rng.random::<f64>() < rate;
    if roll(faults.error_rate) {
        Fault::Error
    } else if roll(faults.timeout_rate) {
        Fault::Hang
    } else if roll(faults.lost_response_rate) {
        Fault::LoseResponse
    } else {
        Fault::None
    }
}

async fn revoke(State(ca): State<CaSim>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let faults = lock(&ca.inner.faults).clone();
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    let fault = draw(&faults);
    if !matches!(fault, Fault::None | Fault::LoseResponse) {
        lock(&ca.inner.ledger).stats.faulted += 1;
    }
    match fault {
        Fault::Error => return problem(503, "injected_error", "fault injection: the CA is unavailable"),
        Fault::Hang => return std::future::pending().await,
        Fault::None | Fault::LoseResponse => {}
    }
    let request: RevocationRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return problem(422, "invalid_request", e.to_string()),
    };
    if let Some(traceparent) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
        lock(&ca.inner.ledger).stats.traceparents.insert(request.event_id.clone(), traceparent.to_owned());
    }
    let answer = lock(&ca.inner.ledger).apply(request, OffsetDateTime::now_utc());
    match (answer, fault) {
        (Ok(_), Fault::LoseResponse) => {
            lock(&ca.inner.ledger).stats.faulted += 1;
            lost_response()
        }
        (Ok(answer), _) => Json(answer).into_response(),
        (Err(refused), _) => refusal(refused),
    }
}

/// A 200 whose body breaks off: the change is applied, the caller never learns it.
fn lost_response() -> Response {
    let broken = futures::stream::once(async {
        Err::<axum::body::Bytes, std::io::Error>(std::io::Error::other("fault injection: response lost"))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, "64")
        .body(Body::from_stream(broken))
        .unwrap_or_default()
}

async fn crl(State(ca): State<CaSim>, Path(issuer): Path<String>) -> Response {
    let Some(authority) = ca.inner.authorities.iter().find(|a| a.name == issuer) else {
        return problem(404, "unknown_issuer", format!("this CA does not serve issuer {issuer}"));
    };
    let now = OffsetDateTime::now_utc();
    let scheduled = lock(&ca.inner.faults).scheduled_crl;
    let der = {
        let mut ledger = lock(&ca.inner.ledger);
        let mut crls = lock(&ca.inner.crls);
        let dirty = ledger.dirty.get(&issuer).copied().unwrap_or(true);
        match crls.signed.get(&issuer) {
            Some((_, der)) if scheduled => der.clone(),
            Some((signed_at, der)) if !dirty && now - *signed_at < CRL_REFRESH => der.clone(),
            _ => {
                // Increasing across restarts without keeping a counter: milliseconds since the epoch.
                let number =
                    (crls.last_number + 1).max(u64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0));
                let entries = ledger
                    .entries
                    .get(&issuer)
                    .into_iter()
                    .flatten()
                    .filter_map(|(serial, e)| hex::decode(serial).ok().map(|bytes| (bytes, e.since, e.reason)));
                let entries: Vec<_> = entries.collect();
                let signed = authority.sign_crl(
                    number,
                    now,
                    entries.iter().map(|(bytes, since, reason)| Revoked {
                        serial: bytes,
                        since: OffsetDateTime::from_unix_timestamp(*since).unwrap_or(now),
                        reason: *reason,
                    }),
                );
                match signed {
                    Ok(der) => {
                        crls.last_number = number;
                        crls.signed.insert(issuer.clone(), (now, der.clone()));
                        ledger.dirty.insert(issuer.clone(), false);
                        der
                    }
                    Err(e) => return problem(500, "crl_signing_failed", e.to_string()),
                }
            }
        }
    };
    let der = if lock(&ca.inner.faults).bad_crl_signature { corrupt_signature(der) } else { der };
    ([(header::CONTENT_TYPE, "application/pkix-crl")], der).into_response()
}

/// Flips a bit in the signature's last byte: the CRL still parses, but does not verify.
fn corrupt_signature(mut der: Vec<u8>) -> Vec<u8> {
    if let Some(last) = der.last_mut() {
        *last ^= 0x01;
    }
    der
}

async fn ca_pem(State(ca): State<CaSim>, Path(issuer): Path<String>) -> Response {
    match ca.issuer_pem(&issuer) {
        Some(pem) => ([(header::CONTENT_TYPE, "application/x-pem-file")], pem.to_owned()).into_response(),
        None => problem(404, "unknown_issuer", format!("this CA does not serve issuer {issuer}")),
    }
}

async fn forget(State(ca): State<CaSim>, Path((issuer, serial)): Path<(String, String)>) -> Response {
    if canonical(&serial).is_none() {
        return problem(422, "invalid_serial", "serial must be 1 to 20 bytes of hex");
    }
    match lock(&ca.inner.ledger).forget(&issuer, &serial) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(refused) => refusal(refused),
    }
}

async fn faults(State(ca): State<CaSim>) -> Json<Faults> {
    Json(lock(&ca.inner.faults).clone())
}

async fn set_faults(State(ca): State<CaSim>, body: axum::body::Bytes) -> Response {
    let faults: Faults = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => return problem(422, "invalid_faults", e.to_string()),
    };
    let rates = [faults.error_rate, faults.timeout_rate, faults.lost_response_rate];
    if rates.iter().any(|r| !(0.0..=1.0).contains(r)) {
        return problem(422, "invalid_faults", "rates must be between 0 and 1");
    }
    tracing::info!(?faults, "faults set");
    *lock(&ca.inner.faults) = faults.clone();
    Json(faults).into_response()
}

async fn stats(State(ca): State<CaSim>) -> Json<CaStats> {
    Json(lock(&ca.inner.ledger).stats.clone())
}

/// Locks a mutex, recovering from a panic in another holder: the state is
/// only changed after the journal write, so it is never half-updated.
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Certifies a key as the issuer's delegated OCSP responder.
async fn issue_responder(State(ca): State<CaSim>, Path(issuer): Path<String>, body: axum::body::Bytes) -> Response {
    use base64::Engine;
    let Some(authority) = ca.inner.authorities.iter().find(|a| a.name == issuer) else {
        return problem(404, "unknown_issuer", format!("this CA does not serve issuer {issuer}"));
    };
    let request: ResponderRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return problem(422, "invalid_request", e.to_string()),
    };
    let Ok(key) = base64::engine::general_purpose::STANDARD.decode(request.public_key.trim()) else {
        return problem(422, "invalid_public_key", "public_key must be a base64 DER SubjectPublicKeyInfo");
    };
    let validity = request.validity_s.map_or(crate::authority::RESPONDER_VALIDITY, |s| {
        time::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX))
    });
    match authority.issue_responder(&key, validity) {
        Ok(certificate_pem) => Json(ResponderCertificate { certificate_pem }).into_response(),
        Err(e) => problem(422, "invalid_public_key", format!("{e:#}")),
    }
}
