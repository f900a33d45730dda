//! The JSON bodies of the CA's HTTP API. ca-sim serves them and the worker's
//! client sends them, so both sides share one definition; the action and its
//! reason are the domain's own vocabularies (`hotline_core`).

use std::collections::BTreeMap;

use hotline_core::{CaAction, RevocationReason};
use serde::{Deserialize, Serialize};

/// `POST /v1/revocations`. The CA applies each `event_id` at most once and
/// answers a replay as it answered the first time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationRequest {
    pub event_id: String,
    pub issuer: String,
    /// Lowercase hex, as the registry holds it.
    pub serial: String,
    pub action: CaAction,
    pub reason: RevocationReason,
}

/// Where a certificate stands at the CA after a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryState {
    /// Not on the CRL.
    Absent,
    /// On the CRL with reason certificateHold.
    Held,
    /// On the CRL for good.
    Revoked,
}

/// The CA's answer to a revocation request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationAnswer {
    pub event_id: String,
    pub issuer: String,
    pub serial: String,
    pub action: CaAction,
    /// The certificate's state at the CA after this event.
    pub entry: EntryState,
    /// When the CA applied the event (RFC 3339).
    pub applied_at: String,
    /// True when this answer repeats an event already applied.
    pub replay: bool,
}

/// The CA's error body (`application/problem+json`), with a stable `code`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaProblem {
    pub code: String,
    pub detail: String,
}

/// Faults the CA injects, set at start-up or through `POST /v1/faults`.
/// Rates are probabilities in 0..=1 applied to each revocation request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Added to every revocation request before it is handled.
    pub latency_ms: u64,
    /// Answer 503 without applying anything.
    pub error_rate: f64,
    /// Never answer (the caller's timeout decides).
    pub timeout_rate: f64,
    /// Apply the change, then drop the connection before the answer is complete.
    pub lost_response_rate: f64,
    /// Serve CRLs whose signature does not verify.
    pub bad_crl_signature: bool,
    /// Keep serving the CRL last signed though changes were applied since,
    /// as a CA that publishes on a schedule (JPKI's, about daily) does.
    pub scheduled_crl: bool,
}

/// `GET /v1/stats`: how often each event was applied, so tests can prove
/// "once in effect", and how often it was replayed or refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaStats {
    /// Event id → times its change was applied to the CA's state.
    pub applied: BTreeMap<String, u32>,
    /// Event id → times it was answered as a replay.
    pub replays: BTreeMap<String, u32>,
    /// Requests refused for good (4xx).
    pub refused: u64,
    /// Requests failed by an injected fault.
    pub faulted: u64,
    /// Event id → the W3C `traceparent` its last request carried, so tests
    /// can follow a trace from the operator's call into the CA.
    #[serde(default)]
    pub traceparents: BTreeMap<String, String>,
}

/// `POST /v1/issuers/{issuer}/ocsp-responder`: certify a key as the issuer's
/// delegated OCSP responder (id-kp-OCSPSigning, id-pkix-ocsp-nocheck).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponderRequest {
    /// The responder's public key: a DER SubjectPublicKeyInfo, base64 (standard alphabet).
    pub public_key: String,
    /// How long the certificate is to be valid (s); absent, the CA's own
    /// lifetime (ca-sim's: 30 days, also its longest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity_s: Option<u64>,
}

impl ResponderRequest {
    /// A request to certify the DER SubjectPublicKeyInfo `public_key`, for
    /// `validity_s` seconds or the CA's own lifetime.
    pub fn new(public_key: &[u8], validity_s: Option<u64>) -> Self {
        use base64::Engine;
        Self { public_key: base64::engine::general_purpose::STANDARD.encode(public_key), validity_s }
    }
}

/// The certificate issued for a responder key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponderCertificate {
    pub certificate_pem: String,
}
