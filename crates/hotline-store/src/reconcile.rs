//! What reconciliation needs from the registry: every certificate that should
//! be on an issuer's CRL (in pages, however many there are), which
//! certificates still have changes on their way to the CA (so their absence
//! proves nothing yet), and a way to send a missing change again.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use hotline_core::{CaSync, CertificateStatus, OutboxState, RevocationReason};
use sqlx::Row;

use crate::audit::{self, AuditEntry};
use crate::changes::snapshot_page;
use crate::delivery::in_state;
use crate::ids::CertificateId;
use crate::outbox::{self, CaChange, ChangedCertificate};
use crate::rows;
use crate::rows::{opt_text, opt_word, text, word};
use crate::{Store, format_instant};

/// The condition on `certificates` that the partial index `certificates_not_good`
/// (migration 0002) is written for: kept as literal text, since PostgreSQL uses a
/// partial index only for a query whose condition it can match to the index's.
pub(crate) const NOT_GOOD: &str = "status <> 'good'";

/// A certificate the registry holds or has revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedCertificate {
    pub serial: String,
    pub status: CertificateStatus,
}

/// Serials of an issuer with an event on its way to the CA (pending, or
/// dead and waiting for people), or delivered at or after `$2`. Three parts,
/// each read from the outbox index of its state, so the question costs the
/// backlog and the recent deliveries, not the outbox's history.
pub(crate) fn in_flight() -> String {
    let [pending, dead, done] = [OutboxState::Pending, OutboxState::Dead, OutboxState::Done].map(in_state);
    format!(
        "SELECT serial FROM outbox WHERE {pending} AND issuer = $1
         UNION SELECT serial FROM outbox WHERE {dead} AND issuer = $1
         UNION SELECT serial FROM outbox WHERE {done} AND done_at >= $2 AND issuer = $1"
    )
}

impl Store {
    /// Up to `limit` certificates of `issuer` that are not good, after the
    /// serial `after` (`""` for the first page), in key order. The page is the
    /// snapshot's: it seeks to its key in the partial index of certificates
    /// not good, so paging through an issuer reads each of its rows once.
    /// A page shorter than `limit` is the last.
    pub async fn certificates_not_good_page(
        &self,
        issuer: &str,
        after: &str,
        limit: i64,
    ) -> crate::Result<Vec<ListedCertificate>> {
        let rows = sqlx::query(&snapshot_page()).bind(issuer).bind(after).bind(limit).fetch_all(self.pool()).await?;
        let mut listed = Vec::with_capacity(rows.len());
        for row in &rows {
            // Rows past the issuer's last belong to the next issuer: this page is its last.
            if text(row, "issuer")? != issuer {
                break;
            }
            listed.push(ListedCertificate { serial: text(row, "serial")?, status: word(row, "status")? });
        }
        Ok(listed)
    }

    /// Serials of `issuer` with an event not yet delivered, or delivered at or
    /// after `since`: a CRL issued at `since` cannot be expected to show them.
    pub async fn serials_in_flight(&self, issuer: &str, since: DateTime<Utc>) -> crate::Result<HashSet<String>> {
        let serials: Vec<String> =
            sqlx::query_scalar(&in_flight()).bind(issuer).bind(format_instant(since)).fetch_all(self.pool()).await?;
        Ok(serials.into_iter().collect())
    }

    /// Queues the certificate's current status for the CA again, unless it
    /// became good meanwhile or already has an event on its way. Returns the
    /// new event id, if one was queued.
    pub async fn resend_status(
        &self,
        issuer: &str,
        serial: &str,
        why: &str,
        now: DateTime<Utc>,
    ) -> crate::Result<Option<String>> {
        let now = format_instant(now);
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT id, issuer, serial, status, reason, suspension_id FROM certificates c
              WHERE issuer = $1 AND serial = $2
                AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.certificate_id = c.id AND o.state <> $3)",
        )
        .bind(issuer)
        .bind(serial)
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
        let cert = ChangedCertificate {
            id: CertificateId(row.try_get("id")?),
            issuer: rows::issuer(&row, "issuer")?,
            serial: rows::serial(&row, "serial")?,
        };
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
            "issuer": cert.issuer.as_str(), "serial": cert.serial.as_str(), "action": change.action.as_str(), "why": why,
        });
        let entry = AuditEntry {
            at: &now,
            actor: "ca-sync-worker",
            action: "outbox.resent",
            subject: &event_id,
            details: details.to_string(),
        };
        audit::append(&mut tx, &entry, &[]).await?;
        tx.commit().await.map_err(crate::Error::from_commit)?;
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
            let path =
                format!("{}/../../migrations/{migrations}/0009_covering_snapshot.sql", env!("CARGO_MANIFEST_DIR"));
            let sql = std::fs::read_to_string(&path).unwrap();
            assert!(sql.contains(&format!("WHERE {NOT_GOOD};")), "{path} indexes the rows this condition reads");
        }
    }
}
