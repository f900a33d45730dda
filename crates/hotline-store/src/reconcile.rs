//! What reconciliation needs from the registry: every certificate that should
//! be on an issuer's CRL, which certificates still have changes on their way
//! to the CA (so their absence proves nothing yet), and a way to send a
//! missing change again.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use hotline_core::CertificateStatus;
use sqlx::Row;

use crate::audit::{self, AuditEntry};
use crate::outbox::{self, CaAction, ChangedCertificate};
use crate::rows::{opt_text, text, word};
use crate::{Store, format_instant};

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
        let rows = sqlx::query("SELECT id, serial, status FROM certificates WHERE issuer = $1 AND status <> 'good'")
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
            "SELECT DISTINCT serial FROM outbox WHERE issuer = $1 AND (state <> 'done' OR done_at >= $2)",
        )
        .bind(issuer)
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
            "SELECT issuer, serial, status, suspension_id FROM certificates c
              WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.certificate_id = c.id AND o.state <> 'done')",
        )
        .bind(certificate_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let action = match word::<CertificateStatus>(&row, "status")? {
            CertificateStatus::Suspended => CaAction::Hold,
            CertificateStatus::Revoked => CaAction::Revoke,
            CertificateStatus::Good => {
                tx.rollback().await?;
                return Ok(None);
            }
        };
        let cert =
            ChangedCertificate { id: certificate_id, issuer: text(&row, "issuer")?, serial: text(&row, "serial")? };
        let suspension_id = opt_text(&row, "suspension_id")?;
        let event_id = outbox::enqueue(&mut tx, &cert, action, suspension_id.as_deref(), &now).await?;
        if let Some(sid) = &suspension_id {
            sqlx::query("UPDATE suspensions SET ca_sync = 'pending', ca_sync_at = NULL WHERE id = $1")
                .bind(sid)
                .execute(&mut *tx)
                .await?;
        }
        let details = serde_json::json!({
            "issuer": cert.issuer, "serial": cert.serial, "action": action.as_str(), "why": why,
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
