//! What the store answers about a suspension: one read model, loaded by one
//! query, used by the API for its responses and by the transactions for the
//! answers they save for idempotent replay.

use chrono::{DateTime, Utc};
use hotline_core::{
    CaSync, Cause, CertificateKind, CertificateStatus, IdentityDocument, Item, Language, Medium, Mode, SuspensionState,
};
use sqlx::{Any, Executor};

use crate::rows::{instant, opt_instant, opt_text, text, word};

/// One certificate covered by a suspension, with its status now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateView {
    pub issuer: String,
    pub serial: String,
    pub kind: CertificateKind,
    pub medium: Medium,
    pub status: CertificateStatus,
}

/// A suspension as operators and clerks see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuspensionView {
    pub id: String,
    pub reference: String,
    pub state: SuspensionState,
    pub item: Item,
    pub cause: Cause,
    pub language: Language,
    pub call_id: String,
    pub device_id: Option<String>,
    pub police_report_number: Option<String>,
    pub decided_at: DateTime<Utc>,
    pub rules_version: String,
    pub mode: Mode,
    pub ca_sync: CaSync,
    /// When `ca_sync` became confirmed or failed; none while pending.
    pub ca_sync_at: Option<DateTime<Utc>>,
    pub released_at: Option<DateTime<Utc>>,
    pub verified_with: Option<String>,
    /// The identity documents the clerk checked at the release.
    pub documents_checked: Vec<IdentityDocument>,
    pub certificates: Vec<CertificateView>,
}

const VIEW_QUERY: &str = "
    SELECT s.id, s.reference, s.status, s.item, s.cause, s.language, s.call_id, s.device_id,
           s.police_report_number, s.decided_at, s.rules_version, s.mode, s.ca_sync, s.ca_sync_at,
           s.released_at, s.verified_with, s.documents_checked,
           c.issuer, c.serial, c.kind, c.medium, c.status AS cert_status
      FROM suspensions s
      LEFT JOIN suspension_certificates sc ON sc.suspension_id = s.id
      LEFT JOIN certificates c ON c.id = sc.certificate_id
     WHERE s.id = $1
     ORDER BY c.medium, c.kind, c.issuer, c.serial";

/// Loads a suspension and its certificates, or `None` if there is no such id.
pub(crate) async fn load<'c, E>(executor: E, id: &str) -> crate::Result<Option<SuspensionView>>
where
    E: Executor<'c, Database = Any>,
{
    let rows = sqlx::query(VIEW_QUERY).bind(id).fetch_all(executor).await?;
    let Some(first) = rows.first() else { return Ok(None) };
    let mut certificates = Vec::with_capacity(rows.len());
    for row in &rows {
        if let Some(issuer) = opt_text(row, "issuer")? {
            certificates.push(CertificateView {
                issuer,
                serial: text(row, "serial")?,
                kind: word(row, "kind")?,
                medium: word(row, "medium")?,
                status: word(row, "cert_status")?,
            });
        }
    }
    Ok(Some(SuspensionView {
        id: text(first, "id")?,
        reference: text(first, "reference")?,
        state: word::<SuspensionState>(first, "status")?,
        item: word(first, "item")?,
        cause: word(first, "cause")?,
        language: word(first, "language")?,
        call_id: text(first, "call_id")?,
        device_id: opt_text(first, "device_id")?,
        police_report_number: opt_text(first, "police_report_number")?,
        decided_at: instant(first, "decided_at")?,
        rules_version: text(first, "rules_version")?,
        mode: word::<Mode>(first, "mode")?,
        ca_sync: word::<CaSync>(first, "ca_sync")?,
        ca_sync_at: opt_instant(first, "ca_sync_at")?,
        released_at: opt_instant(first, "released_at")?,
        verified_with: opt_text(first, "verified_with")?,
        documents_checked: opt_text(first, "documents_checked")?
            .map(|words| {
                words.split(',').map(|w| w.parse().map_err(|e| anyhow::anyhow!("documents_checked: {e}"))).collect()
            })
            .transpose()?
            .unwrap_or_default(),
        certificates,
    }))
}

impl crate::Store {
    /// A suspension by id.
    pub async fn suspension(&self, id: &str) -> crate::Result<Option<SuspensionView>> {
        load(self.pool(), id).await
    }

    /// A suspension by the reference read to the caller (`K7M3-9QX2`).
    pub async fn suspension_by_reference(&self, reference: &str) -> crate::Result<Option<SuspensionView>> {
        let id: Option<String> = sqlx::query_scalar("SELECT id FROM suspensions WHERE reference = $1")
            .bind(reference)
            .fetch_optional(self.pool())
            .await?;
        match id {
            Some(id) => load(self.pool(), &id).await,
            None => Ok(None),
        }
    }
}
