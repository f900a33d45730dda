//! What reconciliation needs from the registry: every certificate that should
//! be on an issuer's CRL, which certificates still have changes on their way
//! to the CA (so their absence proves nothing yet), and a way to send a
//! missing change again.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use hotline_core::{CaSync, CertificateStatus, OutboxState, RevocationReason};
use sqlx::Row;

use crate::audit::{self, AuditEntry};
use crate::outbox::{self, CaChange, ChangedCertificate};
use crate::rows::{opt_text, opt_word, text, word};
use crate::{Store, format_instant};

/// The condition on `certificates` that the partial index `certificates_not_good`
/// (migration 0002) is written for: kept as literal text, since PostgreSQL uses a
/// partial index only for a query whose condition it can match to the index's.
pub(crate) const NOT_GOOD: &str = "status <> 'good'";

/// A certificate the registry holds or has revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedCertificate {
    pub id: i64,
    pub serial: String,
    pub status: CertificateStatus,
}

impl Store {
    /// Every certificate of `issuer` whose status is not good.
    pub async fn certificates_not_good(&self, issuer: &str) -> anyhow::Result<Vec<ListedCertificate>> {
        let rows =
            sqlx::query(&format!("SELECT id, serial, status FROM certificates WHERE issuer = $1 AND {NOT_GOOD}"))
                .bind(issuer)
                .fetch_all(self.pool())
                .await?;
        rows.iter()
            .map(|row| {
                Ok(ListedCertificate {
                    id: row.try_get("id")?,
                    serial: text(row, "serial")?,
                    status: word(row, "status")?,
                })
            })
            .collect()
    }

    /// Serials of `issuer` with an event not yet delivered, or delivered after
    /// `since`: a CRL fetched at `since` cannot be expected to show them.
    pub async fn serials_in_flight(&self, issuer: &str, since: DateTime<Utc>) -> anyhow::Result<HashSet<String>> {
        let serials: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT serial FROM outbox WHERE issuer = $1 AND (state <> $2 OR done_at >= $3)",
        )
        .bind(issuer)
        .bind(OutboxState::Done.as_str())
        .bind(format_instant(since))
        .fetch_all(self.pool())
        .await?;
        Ok(serials.into_iter().collect())
    }

    /// Queues the certificate's current status for the CA again, unless it
    /// became good meanwhile or already has an event on its way. Returns the
    /// new event id, if one was queued.
    pub async fn resend_status(
        &self,
        certificate_id: i64,
        why: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<String>> {
        let now = format_instant(now);
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT issuer, serial, status, reason, suspension_id FROM certificates c
              WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.certificate_id = c.id AND o.state <> $2)",
        )
        .bind(certificate_id)
        .bind(OutboxState::Done.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let change = match word::<CertificateStatus>(&row, "status")? {
            CertificateStatus::Suspended => CaChange::HOLD,
            // Sent again with the reason it was revoked for.
            CertificateStatus::Revoked => CaChange::revoke(
                opt_word::<RevocationReason>(&row, "reason")?
                    .filter(|r| r.is_permanent())
                    .unwrap_or(RevocationReason::Unspecified),
            ),
            CertificateStatus::Good => {
                tx.rollback().await?;
                return Ok(None);
            }
        };
        let cert =
            ChangedCertificate { id: certificate_id, issuer: text(&row, "issuer")?, serial: text(&row, "serial")? };
        let suspension_id = opt_text(&row, "suspension_id")?;
        let event_id = outbox::enqueue(&mut tx, &cert, change, suspension_id.as_deref(), &now).await?;
        if let Some(sid) = &suspension_id {
            sqlx::query("UPDATE suspensions SET ca_sync = $1, ca_sync_at = NULL WHERE id = $2")
                .bind(CaSync::Pending.as_str())
                .bind(sid)
                .execute(&mut *tx)
                .await?;
        }
        let details = serde_json::json!({
            "issuer": cert.issuer, "serial": cert.serial, "action": change.action.as_str(), "why": why,
        });
        let entry = AuditEntry {
            at: &now,
            actor: "ca-sync-worker",
            action: "outbox.resent",
            subject: &event_id,
            details: details.to_string(),
        };
        audit::append(&mut tx, &entry, &[]).await?;
        tx.commit().await?;
        Ok(Some(event_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partial_index_condition_names_the_vocabularys_good() {
        assert_eq!(NOT_GOOD, format!("status <> '{}'", CertificateStatus::Good));
        for migrations in ["postgres", "sqlite"] {
            let path = format!("{}/../../migrations/{migrations}/0002_status_changes.sql", env!("CARGO_MANIFEST_DIR"));
            let sql = std::fs::read_to_string(&path).unwrap();
            assert!(sql.contains(&format!("WHERE {NOT_GOOD};")), "{path} indexes the rows this condition reads");
        }
    }
}
