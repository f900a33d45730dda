//! Lifting a suspension at the municipal counter: the user identification
//! certificates are taken off hold (removeFromCRL), the signature certificates
//! are revoked for good (they must be re-issued), and the card is active again.
//! One transaction, audited and outboxed like a suspension.

use chrono::{DateTime, Utc};
use hotline_core::{
    CaSync, CardStatus, CertificateKind, CertificateStatus, IdentityDocument, RevocationReason, SuspensionState,
};
use sqlx::Row;

use crate::audit::NewStatusChange;
use crate::idempotency::{self, IdempotencyClaim, Previous, SavedResponse};
use crate::outbox::{self, CaChange, ChangedCertificate};
use crate::rows::{text, word};
use crate::suspend::abandon;
use crate::{AuditEntry, Store, SuspensionView, audit, format_instant, views};

/// A clerk's release of one suspension.
#[derive(Debug, Clone)]
pub struct Release {
    pub suspension_id: String,
    pub clerk_token_id: String,
    /// The identity document the clerk checked, as the clerk names it, if
    /// not (only) by a word of the vocabulary.
    pub verified_with: Option<String>,
    /// The identity documents the clerk checked, from the vocabulary.
    pub documents_checked: Vec<IdentityDocument>,
    pub note: Option<String>,
    pub at: DateTime<Utc>,
    pub idempotency: IdempotencyClaim,
}

/// How a release request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseOutcome {
    Released(SuspensionView),
    Replay(SavedResponse),
    KeyReused,
    NotFound,
    /// Released before (under another key): nothing changes.
    AlreadyReleased(SuspensionView),
}

impl Store {
    /// Runs the release transaction; `render` gives the answer saved for replay.
    #[tracing::instrument(name = "transaction release", skip_all, fields(otel.kind = "client", db.system.name = self.backend().system_name()))]
    pub async fn release<F>(&self, release: &Release, render: F) -> crate::Result<ReleaseOutcome>
    where
        F: FnOnce(&SuspensionView) -> anyhow::Result<SavedResponse>,
    {
        let now = format_instant(release.at);
        let mut tx = self.begin_write().await?;
        match idempotency::claim(&mut tx, &release.idempotency, &now).await? {
            Previous::None => {}
            Previous::Replay(saved) => return abandon(tx, ReleaseOutcome::Replay(saved)).await,
            Previous::Reused => return abandon(tx, ReleaseOutcome::KeyReused).await,
        }
        let updated = sqlx::query(
            "UPDATE suspensions SET status = $1, released_at = $2, released_by_token_id = $3,
                    verified_with = $4, release_note = $5, ca_sync = $6, ca_sync_at = NULL, documents_checked = $9
              WHERE id = $7 AND status = $8",
        )
        .bind(SuspensionState::Released.as_str())
        .bind(&now)
        .bind(&release.clerk_token_id)
        .bind(&release.verified_with)
        .bind(release.note.clone())
        .bind(CaSync::Pending.as_str())
        .bind(&release.suspension_id)
        .bind(SuspensionState::Suspended.as_str())
        .bind(documents_text(&release.documents_checked))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            let outcome = match views::load(&mut *tx, &release.suspension_id).await? {
                Some(view) if view.state == SuspensionState::Released => ReleaseOutcome::AlreadyReleased(view),
                _ => ReleaseOutcome::NotFound,
            };
            return abandon(tx, outcome).await;
        }

        let held = sqlx::query(
            "SELECT c.id, c.issuer, c.serial, c.kind, c.card_id FROM certificates c
               JOIN suspension_certificates sc ON sc.certificate_id = c.id
              WHERE sc.suspension_id = $1 AND c.suspension_id = $1 AND c.status = $2
              ORDER BY c.id",
        )
        .bind(&release.suspension_id)
        .bind(CertificateStatus::Suspended.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let mut changes = Vec::with_capacity(held.len());
        let mut stream = Vec::with_capacity(held.len());
        let mut cards = Vec::new();
        for row in &held {
            let cert = ChangedCertificate {
                id: row.try_get("id")?,
                issuer: text(row, "issuer")?,
                serial: text(row, "serial")?,
            };
            let (status, reason, change) = match word::<CertificateKind>(row, "kind")? {
                CertificateKind::UserIdentification => (CertificateStatus::Good, None, CaChange::RELEASE),
                // The holder got the card back, but a signature certificate that left
                // their control is not trusted again: it is replaced by a new one.
                CertificateKind::Signature => (
                    CertificateStatus::Revoked,
                    Some(RevocationReason::Superseded),
                    CaChange::revoke(RevocationReason::Superseded),
                ),
            };
            sqlx::query(
                "UPDATE certificates SET status = $1, reason = $2, since = $3, suspension_id = NULL WHERE id = $4",
            )
            .bind(status.as_str())
            .bind(reason.map(RevocationReason::as_str))
            .bind(&now)
            .bind(cert.id)
            .execute(&mut *tx)
            .await?;
            outbox::enqueue(&mut tx, &cert, change, Some(&release.suspension_id), &now).await?;
            if let Some(card_id) = row.try_get::<Option<i64>, _>("card_id")? {
                cards.push(card_id);
            }
            changes.push(serde_json::json!({"issuer": cert.issuer, "serial": cert.serial, "status": status.as_str()}));
            stream.push(NewStatusChange { issuer: cert.issuer, serial: cert.serial, status, reason });
        }
        if held.is_empty() {
            // Nothing for the CA to do: there is nothing to wait for.
            sqlx::query("UPDATE suspensions SET ca_sync = $1, ca_sync_at = $2 WHERE id = $3")
                .bind(CaSync::Confirmed.as_str())
                .bind(&now)
                .bind(&release.suspension_id)
                .execute(&mut *tx)
                .await?;
        }
        cards.dedup();
        for card_id in cards {
            sqlx::query("UPDATE cards SET status = $1, status_since = $2 WHERE id = $3 AND status = $4")
                .bind(CardStatus::Active.as_str())
                .bind(&now)
                .bind(card_id)
                .bind(CardStatus::Suspended.as_str())
                .execute(&mut *tx)
                .await?;
        }
        let details = serde_json::json!({
            "verified_with": release.verified_with,
            "documents_checked": release.documents_checked,
            "note": release.note,
            "certificates": changes,
        });
        let entry = AuditEntry {
            at: &now,
            actor: &release.clerk_token_id,
            action: "suspension.released",
            subject: &release.suspension_id,
            details: details.to_string(),
        };
        let view = views::load(&mut *tx, &release.suspension_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("suspension {} vanished", release.suspension_id))?;
        idempotency::save(&mut tx, &release.idempotency, &render(&view)?).await?;
        // The append locks the chain's head until commit, so it is the last write.
        audit::append(&mut tx, &entry, &stream).await?;
        tx.commit().await.map_err(crate::Error::from_commit)?;
        Ok(ReleaseOutcome::Released(view))
    }
}

/// The documents as stored: their words, comma-separated; none as NULL.
fn documents_text(documents: &[IdentityDocument]) -> Option<String> {
    (!documents.is_empty()).then(|| documents.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(","))
}
