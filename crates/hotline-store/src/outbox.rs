//! Outbox events: one per certificate status change, written in the same
//! transaction as the change, for the CA sync worker to deliver.

use hotline_core::{CaAction, IssuerId, RevocationReason, Serial};
use sqlx::{Any, Transaction};

use crate::ids::CertificateId;

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

/// A certificate whose status a transaction changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChangedCertificate {
    pub id: CertificateId,
    pub issuer: IssuerId,
    pub serial: Serial,
}

/// One event for the CA: what to do with which certificate.
pub(crate) struct Event<'a> {
    pub certificate: &'a ChangedCertificate,
    pub change: CaChange,
}

pub(crate) async fn enqueue(
    tx: &mut Transaction<'static, Any>,
    cert: &ChangedCertificate,
    change: CaChange,
    suspension_id: Option<&str>,
    now: &str,
) -> crate::Result<String> {
    let events = [Event { certificate: cert, change }];
    Ok(enqueue_all(tx, &events, suspension_id, now).await?.remove(0))
}

/// Writes one outbox event per entry of `events` in one statement; their ids, in order.
pub(crate) async fn enqueue_all(
    tx: &mut Transaction<'static, Any>,
    events: &[Event<'_>],
    suspension_id: Option<&str>,
    now: &str,
) -> crate::Result<Vec<String>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = events.iter().map(|_| uuid::Uuid::now_v7().to_string()).collect();
    // The event's own six columns, then the three every event shares: $1 suspension, $2 now, $3 traceparent.
    let values: Vec<String> = (0..events.len())
        .map(|i| {
            let p = |k: usize| format!("${}", 3 + 6 * i + k);
            format!("({}, {}, {}, {}, {}, {}, $1, $2, $2, $3)", p(1), p(2), p(3), p(4), p(5), p(6))
        })
        .collect();
    let sql = format!(
        "INSERT INTO outbox (event_id, certificate_id, issuer, serial, action, reason, suspension_id, created_at, next_attempt_at, traceparent)
         VALUES {}",
        values.join(", ")
    );
    let mut insert = sqlx::query(&sql).bind(suspension_id).bind(now).bind(hotline_trace::current_traceparent());
    for (id, event) in ids.iter().zip(events) {
        insert = insert
            .bind(id)
            .bind(event.certificate.id.0)
            .bind(event.certificate.issuer.as_str())
            .bind(event.certificate.serial.as_str())
            .bind(event.change.action.as_str())
            .bind(event.change.reason.as_str());
    }
    insert.execute(&mut **tx).await?;
    Ok(ids)
}
