//! The JSON bodies of the CA's HTTP API. ca-sim serves them and the worker's
//! client sends them, so both sides share one definition.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What the CA is asked to do with a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Suspend: a CRL entry with reason certificateHold.
    Hold,
    /// Lift a hold: the entry leaves the CRL.
    Release,
    /// Revoke for good: the entry stays on the CRL with a permanent reason.
    Revoke,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Hold => "hold",
            Action::Release => "release",
            Action::Revoke => "revoke",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "hold" => Some(Action::Hold),
            "release" => Some(Action::Release),
            "revoke" => Some(Action::Revoke),
            _ => None,
        }
    }
}

/// RFC 5280 CRL reason codes, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Unspecified,
    KeyCompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
    CertificateHold,
    RemoveFromCrl,
    PrivilegeWithdrawn,
}

impl Reason {
    /// The reason's code in a CRL entry (RFC 5280 §5.3.1).
    pub fn code(self) -> u8 {
        match self {
            Reason::Unspecified => 0,
            Reason::KeyCompromise => 1,
            Reason::AffiliationChanged => 3,
            Reason::Superseded => 4,
            Reason::CessationOfOperation => 5,
            Reason::CertificateHold => 6,
            Reason::RemoveFromCrl => 8,
            Reason::PrivilegeWithdrawn => 9,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        [
            Reason::Unspecified,
            Reason::KeyCompromise,
            Reason::AffiliationChanged,
            Reason::Superseded,
            Reason::CessationOfOperation,
            Reason::CertificateHold,
            Reason::RemoveFromCrl,
            Reason::PrivilegeWithdrawn,
        ]
        .into_iter()
        .find(|r| r.code() == code)
    }

    /// The snake_case name, as stored in the outbox.
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }

    /// Whether the reason fits the action: a hold says certificateHold, a
    /// release removeFromCRL, and a revocation any permanent reason.
    pub fn fits(self, action: Action) -> bool {
        match action {
            Action::Hold => self == Reason::CertificateHold,
            Action::Release => self == Reason::RemoveFromCrl,
            Action::Revoke => !matches!(self, Reason::CertificateHold | Reason::RemoveFromCrl),
        }
    }
}

/// `POST /v1/revocations`. The CA applies each `event_id` at most once and
/// answers a replay as it answered the first time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationRequest {
    pub event_id: String,
    pub issuer: String,
    /// Lowercase hex, as the registry holds it.
    pub serial: String,
    pub action: Action,
    pub reason: Reason,
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
    pub action: Action,
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
