//! Outbox events: one per certificate status change, written in the same
//! transaction as the change, for the CA sync worker to deliver.

use hotline_core::{CaAction, RevocationReason};
use sqlx::{Any, Transaction};

/// What the CA must do with one certificate, with the reason it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CaChange {
    pub action: CaAction,
    pub reason: RevocationReason,
}

impl CaChange {
    pub(crate) const HOLD: CaChange = CaChange { action: CaAction::Hold, reason: RevocationReason::CertificateHold };
    pub(crate) const RELEASE: CaChange =
        CaChange { action: CaAction::Release, reason: RevocationReason::RemoveFromCrl };

    pub(crate) fn revoke(reason: RevocationReason) -> CaChange {
        CaChange { action: CaAction::Revoke, reason }
    }
}

pub(crate) struct ChangedCertificate {
    pub id: i64,
    pub issuer: String,
    pub serial: String,
}

pub(crate) async fn enqueue(
    tx: &mut Transaction<'static, Any>,
    cert: &ChangedCertificate,
    change: CaChange,
    suspension_id: Option<&str>,
    now: &str,
) -> crate::Result<String> {
    let event_id = uuid::Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO outbox (event_id, certificate_id, issuer, serial, action, reason, suspension_id, created_at, next_attempt_at, traceparent)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9)",
    )
    .bind(&event_id)
    .bind(cert.id)
    .bind(&cert.issuer)
    .bind(&cert.serial)
    .bind(change.action.as_str())
    .bind(change.reason.as_str())
    .bind(suspension_id)
    .bind(now)
    .bind(hotline_trace::current_traceparent())
    .execute(&mut **tx)
    .await?;
    Ok(event_id)
}
