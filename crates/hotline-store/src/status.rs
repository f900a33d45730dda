//! Certificate status for validators, with CRL semantics: a serial the
//! registry does not list is good, an issuer it does not know is an error.

use chrono::{DateTime, Utc};
use hotline_core::{CertificateStatus, IssuerId, Serial};

use crate::Store;
use crate::rows::{instant, opt_text, word};

/// A listed certificate's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateStatusRecord {
    pub status: CertificateStatus,
    pub reason: Option<String>,
    pub since: DateTime<Utc>,
}

/// What the registry says about (issuer, serial).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusLookup {
    UnknownIssuer,
    NotListed,
    Listed(CertificateStatusRecord),
}

impl Store {
    pub async fn certificate_status(&self, issuer: &IssuerId, serial: &Serial) -> anyhow::Result<StatusLookup> {
        let row = sqlx::query(
            "SELECT i.id, c.status, c.reason, c.since
               FROM issuers i LEFT JOIN certificates c ON c.issuer = i.id AND c.serial = $2
              WHERE i.id = $1",
        )
        .bind(issuer.as_str())
        .bind(serial.as_str())
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(StatusLookup::UnknownIssuer) };
        if opt_text(&row, "status")?.is_none() {
            return Ok(StatusLookup::NotListed);
        }
        Ok(StatusLookup::Listed(CertificateStatusRecord {
            status: word(&row, "status")?,
            reason: opt_text(&row, "reason")?,
            since: instant(&row, "since")?,
        }))
    }
}
