//! Outbox events: one per certificate status change, written in the same
//! transaction as the change, for the CA sync worker to deliver.

use sqlx::{Any, Transaction};

/// What the CA must do with a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CaAction {
    /// Put on hold (CRL reason certificateHold).
    Hold,
    /// Take off hold (CRL reason removeFromCRL).
    Release,
    /// Revoke for good.
    Revoke,
}

impl CaAction {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CaAction::Hold => "hold",
            CaAction::Release => "release",
            CaAction::Revoke => "revoke",
        }
    }

    /// The RFC 5280 reason that goes with the action.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            CaAction::Hold => "certificate_hold",
            CaAction::Release => "remove_from_crl",
            // The holder got the card back, but a signature certificate that left
            // their control is not trusted again: it is replaced by a new one.
            CaAction::Revoke => "superseded",
        }
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
    action: CaAction,
    suspension_id: Option<&str>,
    now: &str,
) -> anyhow::Result<String> {
    let event_id = uuid::Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO outbox (event_id, certificate_id, issuer, serial, action, reason, suspension_id, created_at, next_attempt_at, traceparent)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9)",
    )
    .bind(&event_id)
    .bind(cert.id)
    .bind(&cert.issuer)
    .bind(&cert.serial)
    .bind(action.as_str())
    .bind(action.reason())
    .bind(suspension_id)
    .bind(now)
    .bind(hotline_trace::current_traceparent())
    .execute(&mut **tx)
    .await?;
    Ok(event_id)
}
