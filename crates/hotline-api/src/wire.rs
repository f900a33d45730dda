//! The response bodies, as they go on the wire and into the OpenAPI document.

use hotline_core::rules::tokyo_rfc3339;
use hotline_store::{CertificateView, SuspensionView};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::json_text::push_json_string;

/// A certificate covered by a suspension.
#[derive(Debug, Serialize, ToSchema)]
pub struct CertificateOut {
    #[schema(example = "jpki-auth")]
    pub issuer: String,
    #[schema(example = "3f9a0c11d2e4b5a6978812aa03bc4d5e")]
    pub serial: String,
    /// `signature` or `user_identification`.
    pub kind: String,
    /// `card` or `smartphone`.
    pub medium: String,
    /// `good`, `suspended` or `revoked`.
    pub status: String,
}

impl From<&CertificateView> for CertificateOut {
    fn from(c: &CertificateView) -> Self {
        Self {
            issuer: c.issuer.clone(),
            serial: c.serial.clone(),
            kind: c.kind.as_str().to_owned(),
            medium: c.medium.as_str().to_owned(),
            status: c.status.as_str().to_owned(),
        }
    }
}

/// Which rule set decided, in which mode.
#[derive(Debug, Serialize, ToSchema)]
pub struct RulesOut {
    pub version: String,
    /// `day` or `night`.
    pub mode: String,
}

/// The answer to a suspension report: what to read to the caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct SuspensionReceipt {
    pub id: String,
    /// The reference to read to the caller.
    #[schema(example = "K7M3-9QX2")]
    pub reference: String,
    /// `suspended` for a new suspension, `already_suspended` when everything was already held.
    pub status: String,
    pub item: String,
    pub cause: String,
    pub certificates: Vec<CertificateOut>,
    /// When the suspension was decided, in Tokyo time with its offset.
    #[schema(example = "2026-11-22T14:30:05+09:00")]
    pub decided_at: String,
    pub rules: RulesOut,
    /// Delivery to the certificate authority: `pending`, `confirmed` or `failed`.
    pub ca_sync: String,
}

impl SuspensionReceipt {
    pub fn new(view: &SuspensionView, status: &str) -> Self {
        Self {
            id: view.id.clone(),
            reference: view.reference.clone(),
            status: status.to_owned(),
            item: view.item.as_str().to_owned(),
            cause: view.cause.as_str().to_owned(),
            certificates: view.certificates.iter().map(CertificateOut::from).collect(),
            decided_at: tokyo_rfc3339(view.decided_at),
            rules: RulesOut { version: view.rules_version.clone(), mode: view.mode.as_str().to_owned() },
            ca_sync: view.ca_sync.clone(),
        }
    }
}

/// A suspension in full, for operators and clerks.
#[derive(Debug, Serialize, ToSchema)]
pub struct SuspensionDetail {
    pub id: String,
    pub reference: String,
    /// `suspended` or `released`.
    pub status: String,
    pub item: String,
    pub cause: String,
    pub language: String,
    pub call_id: String,
    pub device_id: Option<String>,
    pub police_report_number: Option<String>,
    pub certificates: Vec<CertificateOut>,
    pub decided_at: String,
    pub rules: RulesOut,
    /// Delivery to the certificate authority: `pending`, `confirmed` or `failed`.
    pub ca_sync: String,
    /// When delivery was confirmed or failed (Tokyo time); absent while pending.
    pub ca_sync_at: Option<String>,
    pub released_at: Option<String>,
    pub verified_with: Option<String>,
}

impl From<&SuspensionView> for SuspensionDetail {
    fn from(v: &SuspensionView) -> Self {
        Self {
            id: v.id.clone(),
            reference: v.reference.clone(),
            status: v.state.as_str().to_owned(),
            item: v.item.as_str().to_owned(),
            cause: v.cause.as_str().to_owned(),
            language: v.language.as_str().to_owned(),
            call_id: v.call_id.clone(),
            device_id: v.device_id.clone(),
            police_report_number: v.police_report_number.clone(),
            certificates: v.certificates.iter().map(CertificateOut::from).collect(),
            decided_at: tokyo_rfc3339(v.decided_at),
            rules: RulesOut { version: v.rules_version.clone(), mode: v.mode.as_str().to_owned() },
            ca_sync: v.ca_sync.clone(),
            ca_sync_at: v.ca_sync_at.map(tokyo_rfc3339),
            released_at: v.released_at.map(tokyo_rfc3339),
            verified_with: v.verified_with.clone(),
        }
    }
}

/// A certificate's status for a validator.
#[derive(Debug, Serialize, ToSchema)]
pub struct CertificateStatusOut {
    pub issuer: String,
    pub serial: String,
    /// `good`, `suspended` or `revoked`.
    pub status: String,
    /// `certificate_hold` for a suspension, the revocation reason otherwise; null when good.
    pub reason: Option<String>,
    /// Since when the status holds; null for a serial the registry does not list.
    pub since: Option<String>,
}

/// The answer to a single status query: a certificate's status and `as_of`.
///
/// Validators' single queries are most of the traffic, so this answer is
/// written by hand ([`StatusAnswer::to_json`]); the derived `Serialize`
/// describes it to the OpenAPI document, and a test holds the two to the same
/// text. The fields are spelled out rather than flattened from
/// [`CertificateStatusOut`] for the same reason.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusAnswer {
    pub issuer: String,
    pub serial: String,
    /// `good`, `suspended` or `revoked`.
    pub status: String,
    /// `certificate_hold` for a suspension, the revocation reason otherwise; null when good.
    pub reason: Option<String>,
    /// Since when the status holds; null for a serial the registry does not list.
    pub since: Option<String>,
    /// Every change committed before this instant is reflected (Tokyo time).
    pub as_of: String,
}

impl StatusAnswer {
    pub fn new(certificate: CertificateStatusOut, as_of: String) -> Self {
        let CertificateStatusOut { issuer, serial, status, reason, since } = certificate;
        Self { issuer, serial, status, reason, since, as_of }
    }

    /// The answer as JSON text: the same text `serde_json` writes for it,
    /// each string checked whole and copied in one piece instead of escaped
    /// byte by byte (docs/BENCHMARKS.md, step 9).
    pub fn to_json(&self) -> String {
        let Self { issuer, serial, status, reason, since, as_of } = self;
        let mut out = String::with_capacity(192);
        let pairs: [(&str, Option<&str>); 6] = [
            ("{\"issuer\":", Some(issuer)),
            (",\"serial\":", Some(serial)),
            (",\"status\":", Some(status)),
            (",\"reason\":", reason.as_deref()),
            (",\"since\":", since.as_deref()),
            (",\"as_of\":", Some(as_of)),
        ];
        for (name, value) in pairs {
            out.push_str(name);
            match value {
                Some(value) => push_json_string(&mut out, value),
                None => out.push_str("null"),
            }
        }
        out.push('}');
        out
    }
}

/// One certificate in a batch status query.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct StatusQueryItem {
    #[schema(example = "jpki-auth")]
    pub issuer: String,
    pub serial: String,
}

/// A batch status query: up to 1000 certificates.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct BatchStatusQuery {
    pub certificates: Vec<StatusQueryItem>,
}

/// The answer to a batch status query, in the order asked.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchStatusAnswer {
    /// Every change committed before this instant is reflected in every result.
    pub as_of: String,
    pub results: Vec<CertificateStatusOut>,
}

/// The reception rules in force now.
#[derive(Debug, Serialize, ToSchema)]
pub struct RulesNow {
    pub now: String,
    /// `day` or `night`.
    pub mode: String,
    pub accepted_items: Vec<String>,
    pub next_change_at: Option<String>,
    pub rules_version: String,
    /// Languages whose operators are on duty now; informational only.
    pub staffed_languages: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: &str, reason: Option<&str>, since: Option<&str>) -> StatusAnswer {
        let certificate = CertificateStatusOut {
            issuer: "jpki-auth".into(),
            serial: "3f9a0c11d2e4b5a6978812aa03bc4d5e".into(),
            status: status.into(),
            reason: reason.map(Into::into),
            since: since.map(Into::into),
        };
        StatusAnswer::new(certificate, "2026-11-24T03:12:45.123456+09:00".into())
    }

    #[test]
    fn a_status_answer_written_by_hand_is_the_text_serde_writes() {
        for answer in [
            answer("good", None, None),
            answer("suspended", Some("certificate_hold"), Some("2026-11-24T03:00:00+09:00")),
            answer("revoked", Some("key \"compromise\"\n"), Some("2026-11-20T10:00:00+09:00")),
        ] {
            assert_eq!(answer.to_json(), serde_json::to_string(&answer).unwrap());
        }
    }
}
