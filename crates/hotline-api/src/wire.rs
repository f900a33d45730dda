//! The response bodies, as they go on the wire and into the OpenAPI document.
//! Closed vocabularies are the domain's own types, so the document lists
//! their words and a body cannot carry any other.

use hotline_core::rules::tokyo_rfc3339;
use hotline_core::{
    CaSync, CardStatus, Cause, CertificateKind, CertificateStatus, IdentityDocument, Item, Language, Medium, Mode,
    RevocationReason, StatusRecord, SuspensionState,
};
use hotline_store::{CertificateView, IdentifiedHolder, SuspensionView};
use serde::Serialize;
use utoipa::ToSchema;

use crate::json_text::push_json_string;

/// A certificate covered by a suspension.
#[derive(Debug, Serialize, ToSchema)]
pub struct CertificateOut {
    #[schema(example = "jpki-auth")]
    pub issuer: String,
    #[schema(example = "3f9a0c11d2e4b5a6978812aa03bc4d5e")]
    pub serial: String,
    pub kind: CertificateKind,
    pub medium: Medium,
    pub status: CertificateStatus,
}

impl From<&CertificateView> for CertificateOut {
    fn from(c: &CertificateView) -> Self {
        Self { issuer: c.issuer.clone(), serial: c.serial.clone(), kind: c.kind, medium: c.medium, status: c.status }
    }
}

/// Which rule set decided, in which mode.
#[derive(Debug, Serialize, ToSchema)]
pub struct RulesOut {
    pub version: String,
    pub mode: Mode,
}

/// Whether a report suspended something new.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptStatus {
    /// A new suspension.
    Suspended,
    /// Everything the report covers was already held: the suspension holding it.
    AlreadySuspended,
}

/// The answer to a suspension report: what to read to the caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct SuspensionReceipt {
    pub id: String,
    /// The reference to read to the caller.
    #[schema(example = "K7M3-9QX2")]
    pub reference: String,
    pub status: ReceiptStatus,
    pub item: Item,
    pub cause: Cause,
    pub certificates: Vec<CertificateOut>,
    /// When the suspension was decided, in Tokyo time with its offset.
    #[schema(example = "2026-11-22T14:30:05.123+09:00")]
    pub decided_at: String,
    pub rules: RulesOut,
    /// Delivery to the certificate authority.
    pub ca_sync: CaSync,
}

impl SuspensionReceipt {
    pub fn new(view: &SuspensionView, status: ReceiptStatus) -> Self {
        Self {
            id: view.id.clone(),
            reference: view.reference.clone(),
            status,
            item: view.item,
            cause: view.cause,
            certificates: view.certificates.iter().map(CertificateOut::from).collect(),
            decided_at: tokyo_rfc3339(view.decided_at),
            rules: RulesOut { version: view.rules_version.clone(), mode: view.mode },
            ca_sync: view.ca_sync,
        }
    }
}

/// A suspension in full, for operators and clerks.
#[derive(Debug, Serialize, ToSchema)]
pub struct SuspensionDetail {
    pub id: String,
    pub reference: String,
    pub status: SuspensionState,
    pub item: Item,
    pub cause: Cause,
    pub language: Language,
    pub call_id: String,
    pub device_id: Option<String>,
    pub police_report_number: Option<String>,
    pub certificates: Vec<CertificateOut>,
    pub decided_at: String,
    pub rules: RulesOut,
    /// Delivery to the certificate authority.
    pub ca_sync: CaSync,
    /// When delivery was confirmed or failed (Tokyo time); absent while pending.
    pub ca_sync_at: Option<String>,
    pub released_at: Option<String>,
    pub verified_with: Option<String>,
    /// The identity documents the clerk checked at the release.
    pub documents_checked: Vec<IdentityDocument>,
}

impl From<&SuspensionView> for SuspensionDetail {
    fn from(v: &SuspensionView) -> Self {
        Self {
            id: v.id.clone(),
            reference: v.reference.clone(),
            status: v.state,
            item: v.item,
            cause: v.cause,
            language: v.language,
            call_id: v.call_id.clone(),
            device_id: v.device_id.clone(),
            police_report_number: v.police_report_number.clone(),
            certificates: v.certificates.iter().map(CertificateOut::from).collect(),
            decided_at: tokyo_rfc3339(v.decided_at),
            rules: RulesOut { version: v.rules_version.clone(), mode: v.mode },
            ca_sync: v.ca_sync,
            ca_sync_at: v.ca_sync_at.map(tokyo_rfc3339),
            released_at: v.released_at.map(tokyo_rfc3339),
            verified_with: v.verified_with.clone(),
            documents_checked: v.documents_checked.clone(),
        }
    }
}

/// A certificate's status for a validator.
#[derive(Debug, Serialize, ToSchema)]
pub struct CertificateStatusOut {
    pub issuer: String,
    pub serial: String,
    pub status: CertificateStatus,
    /// `certificate_hold` for a suspension, the revocation reason otherwise; null when good.
    pub reason: Option<RevocationReason>,
    /// Since when the status holds; null for a serial the registry does not list.
    pub since: Option<String>,
}

impl CertificateStatusOut {
    /// How a certificate is rendered for validators: good when the registry
    /// holds nothing against it (no record), else its record.
    pub fn new(issuer: &str, serial: &str, record: Option<&StatusRecord>) -> Self {
        Self {
            issuer: issuer.to_owned(),
            serial: serial.to_owned(),
            status: record.map_or(CertificateStatus::Good, |r| r.status),
            reason: record.and_then(|r| r.reason),
            since: record.map(|r| tokyo_rfc3339(r.since)),
        }
    }
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
    pub status: CertificateStatus,
    /// `certificate_hold` for a suspension, the revocation reason otherwise; null when good.
    pub reason: Option<RevocationReason>,
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
            (",\"status\":", Some(status.as_str())),
            (",\"reason\":", reason.map(RevocationReason::as_str)),
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

/// The answer to a batch status query, in the order asked.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchStatusAnswer {
    /// Every change committed before this instant is reflected in every result.
    pub as_of: String,
    pub results: Vec<CertificateStatusOut>,
}

/// What an operator learns about a caller (`POST /v1/holders/identify`):
/// whether the holder was found, and what of theirs can be suspended.
/// Never the Individual Number, never a name or an address.
#[derive(Debug, Serialize, ToSchema)]
pub struct IdentifyAnswer {
    pub found: bool,
    /// The card in use (not revoked); absent if not found or the holder has none.
    pub card: Option<IdentifiedCardOut>,
    /// Smartphones with certificates not revoked.
    pub smartphones: Vec<IdentifiedSmartphoneOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IdentifiedCardOut {
    pub status: CardStatus,
    /// Since when it has this status (Tokyo time).
    pub since: String,
    /// The reference of the suspension holding it, if held.
    pub held_by: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IdentifiedSmartphoneOut {
    pub device_id: String,
    /// What an operator reads to the caller: the device id's last four characters.
    #[schema(example = "…3f9a")]
    pub label: String,
    pub held: bool,
    pub held_by: Option<String>,
}

impl IdentifyAnswer {
    pub fn new(found: Option<&IdentifiedHolder>) -> Self {
        let Some(holder) = found else { return Self { found: false, card: None, smartphones: Vec::new() } };
        Self {
            found: true,
            card: holder.card.as_ref().map(|c| IdentifiedCardOut {
                status: c.status,
                since: tokyo_rfc3339(c.since),
                held_by: c.held_by.clone(),
            }),
            smartphones: holder
                .smartphones
                .iter()
                .map(|p| {
                    let last_four = p.device_id.char_indices().rev().nth(3).map_or(0, |(at, _)| at);
                    IdentifiedSmartphoneOut {
                        device_id: p.device_id.clone(),
                        label: format!("…{}", &p.device_id[last_four..]),
                        held: p.held,
                        held_by: p.held_by.clone(),
                    }
                })
                .collect(),
        }
    }
}

/// The reception rules in force now.
#[derive(Debug, Serialize, ToSchema)]
pub struct RulesNow {
    pub now: String,
    pub mode: Mode,
    pub accepted_items: Vec<Item>,
    pub next_change_at: Option<String>,
    pub rules_version: String,
    /// Languages whose operators are on duty now; informational only.
    pub staffed_languages: Vec<Language>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(issuer: &str, record: Option<StatusRecord>) -> StatusAnswer {
        let certificate = CertificateStatusOut::new(issuer, "3f9a0c11d2e4b5a6978812aa03bc4d5e", record.as_ref());
        StatusAnswer::new(certificate, "2026-11-24T03:12:45.123456+09:00".into())
    }

    #[test]
    fn a_status_answer_written_by_hand_is_the_text_serde_writes() {
        let since = chrono::DateTime::from_timestamp(1_763_791_200, 0).unwrap();
        let mut answers = vec![answer("jpki-auth", None), answer("jpki-auth", Some(StatusRecord::held(since)))];
        answers
            .extend(RevocationReason::ALL.iter().map(|r| answer("jpki-sign", Some(StatusRecord::revoked(*r, since)))));
        // Text that needs escaping, where the answer echoes what was asked.
        answers.push(answer("key \"compromise\"\n", None));
        for answer in answers {
            assert_eq!(answer.to_json(), serde_json::to_string(&answer).unwrap());
        }
    }
}
