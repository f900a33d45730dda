//! What the registry says about a certificate it lists: one record, read
//! from a database row, a cache entry or a change in the stream, and
//! rendered for validators, so a new field is added in one place.

use chrono::{DateTime, Utc};

use crate::vocabulary::{CertificateStatus, RevocationReason};

/// A listed certificate's status. A serial the registry does not list has
/// no record: it is good (CRL semantics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRecord {
    pub status: CertificateStatus,
    /// `certificate_hold` while suspended, the permanent reason once revoked; none while good.
    pub reason: Option<RevocationReason>,
    /// Since when the status holds.
    pub since: DateTime<Utc>,
}

impl StatusRecord {
    /// Held: suspended with reason certificateHold.
    pub fn held(since: DateTime<Utc>) -> Self {
        Self { status: CertificateStatus::Suspended, reason: Some(RevocationReason::CertificateHold), since }
    }

    /// Good again (a hold lifted).
    pub fn good(since: DateTime<Utc>) -> Self {
        Self { status: CertificateStatus::Good, reason: None, since }
    }

    /// Revoked for good, with its reason.
    pub fn revoked(reason: RevocationReason, since: DateTime<Utc>) -> Self {
        Self { status: CertificateStatus::Revoked, reason: Some(reason), since }
    }
}
