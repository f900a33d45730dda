//! Lifting a suspension at the municipal counter: the user identification
//! certificates are taken off hold (removeFromCRL), the signature certificates
//! are revoked for good (they must be re-issued), and the card is active again.
//! One transaction, audited and outboxed like a suspension.

use chrono::{DateTime, Utc};
use hotline_core::{
    CaSync, CardStatus, CertificateKind, CertificateStatus, IdentityDocument, RevocationReason, SuspensionState,
};
use sqlx::{Any, Row, Transaction};

use crate::audit::NewStatusChange;
use crate::idempotency::{self, IdempotencyClaim, Previous, SavedResponse};
use crate::ids::{CardId, CertificateId};
use crate::outbox::{self, CaChange, ChangedCertificate, Event};
use crate::rows::{issuer, serial, word};
use crate::suspend::{abandon, placeholders};
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

/// A certificate the release takes off hold, and what it becomes.
struct Lifted {
    certificate: ChangedCertificate,
    card: Option<CardId>,
    status: CertificateStatus,
    reason: Option<RevocationReason>,
    change: CaChange,
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
        if !mark_released(&mut tx, release, &now).await? {
            let outcome = match views::load(&mut *tx, &release.suspension_id).await? {
                Some(view) if view.state == SuspensionState::Released => ReleaseOutcome::AlreadyReleased(view),
                _ => ReleaseOutcome::NotFound,
            };
            return abandon(tx, outcome).await;
        }
        let lifted = lift(&mut tx, &release.suspension_id, &now).await?;
        audit_release(&mut tx, release, &lifted, &now).await?;
        let view = views::load(&mut *tx, &release.suspension_id)
            .await?
            .ok_or_else(|| crate::error::unexpected!("suspension {} vanished", release.suspension_id))?;
        idempotency::save(&mut tx, &release.idempotency, &render(&view)?).await?;
        tx.commit().await.map_err(crate::Error::from_commit)?;
        Ok(ReleaseOutcome::Released(view))
    }
}

/// Marks the suspension released, if it is suspended (a second release changes nothing).
async fn mark_released(tx: &mut Transaction<'static, Any>, release: &Release, now: &str) -> crate::Result<bool> {
    let updated = sqlx::query(
        "UPDATE suspensions SET status = $1, released_at = $2, released_by_token_id = $3,
                verified_with = $4, release_note = $5, ca_sync = $6, ca_sync_at = NULL, documents_checked = $9
          WHERE id = $7 AND status = $8",
    )
    .bind(SuspensionState::Released.as_str())
    .bind(now)
    .bind(&release.clerk_token_id)
    .bind(&release.verified_with)
    .bind(release.note.clone())
    .bind(CaSync::Pending.as_str())
    .bind(&release.suspension_id)
    .bind(SuspensionState::Suspended.as_str())
    .bind(documents_text(&release.documents_checked))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// What becomes of a held certificate at the counter: the user
/// identification certificate resumes; the signature certificate, which left
/// the holder's control, is not trusted again: it is replaced by a new one.
fn lifting(kind: CertificateKind) -> (CertificateStatus, Option<RevocationReason>, CaChange) {
    match kind {
        CertificateKind::UserIdentification => (CertificateStatus::Good, None, CaChange::RELEASE),
        CertificateKind::Signature => (
            CertificateStatus::Revoked,
            Some(RevocationReason::Superseded),
            CaChange::revoke(RevocationReason::Superseded),
        ),
    }
}

/// Takes the suspension's certificates off hold (one update per outcome),
/// tells the CA of each (one insert), and reactivates their cards.
async fn lift(tx: &mut Transaction<'static, Any>, suspension: &str, now: &str) -> crate::Result<Vec<Lifted>> {
    let rows = sqlx::query(
        "SELECT c.id, c.issuer, c.serial, c.kind, c.card_id FROM certificates c
           JOIN suspension_certificates sc ON sc.certificate_id = c.id
          WHERE sc.suspension_id = $1 AND c.suspension_id = $1 AND c.status = $2
          ORDER BY c.id",
    )
    .bind(suspension)
    .bind(CertificateStatus::Suspended.as_str())
    .fetch_all(&mut **tx)
    .await?;
    let mut lifted = Vec::with_capacity(rows.len());
    for row in &rows {
        let (status, reason, change) = lifting(word::<CertificateKind>(row, "kind")?);
        let certificate = ChangedCertificate {
            id: CertificateId(row.try_get("id")?),
            issuer: issuer(row, "issuer")?,
            serial: serial(row, "serial")?,
        };
        let card = row.try_get::<Option<i64>, _>("card_id")?.map(CardId);
        lifted.push(Lifted { certificate, card, status, reason, change });
    }
    for (status, reason) in
        [(CertificateStatus::Good, None), (CertificateStatus::Revoked, Some(RevocationReason::Superseded))]
    {
        let ids: Vec<i64> = lifted.iter().filter(|l| l.status == status).map(|l| l.certificate.id.0).collect();
        if ids.is_empty() {
            continue;
        }
        let sql = format!(
            "UPDATE certificates SET status = $1, reason = $2, since = $3, suspension_id = NULL WHERE id IN ({})",
            placeholders(4, ids.len())
        );
        let mut update = sqlx::query(&sql).bind(status.as_str()).bind(reason.map(RevocationReason::as_str)).bind(now);
        for id in ids {
            update = update.bind(id);
        }
        update.execute(&mut **tx).await?;
    }
    let events: Vec<Event<'_>> =
        lifted.iter().map(|l| Event { certificate: &l.certificate, change: l.change }).collect();
    outbox::enqueue_all(tx, &events, Some(suspension), now).await?;
    if lifted.is_empty() {
        // Nothing for the CA to do: there is nothing to wait for.
        sqlx::query("UPDATE suspensions SET ca_sync = $1, ca_sync_at = $2 WHERE id = $3")
            .bind(CaSync::Confirmed.as_str())
            .bind(now)
            .bind(suspension)
            .execute(&mut **tx)
            .await?;
    }
    reactivate_cards(tx, &lifted, now).await?;
    Ok(lifted)
}

async fn reactivate_cards(tx: &mut Transaction<'static, Any>, lifted: &[Lifted], now: &str) -> crate::Result<()> {
    let mut cards: Vec<i64> = lifted.iter().filter_map(|l| l.card.map(|c| c.0)).collect();
    cards.sort_unstable();
    cards.dedup();
    if cards.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "UPDATE cards SET status = $1, status_since = $2 WHERE status = $3 AND id IN ({})",
        placeholders(4, cards.len())
    );
    let mut update = sqlx::query(&sql).bind(CardStatus::Active.as_str()).bind(now).bind(CardStatus::Suspended.as_str());
    for card in cards {
        update = update.bind(card);
    }
    update.execute(&mut **tx).await?;
    Ok(())
}

/// The release's audit record and the stream's changes it covers.
async fn audit_release(
    tx: &mut Transaction<'static, Any>,
    release: &Release,
    lifted: &[Lifted],
    now: &str,
) -> crate::Result<()> {
    let certificates: Vec<serde_json::Value> = lifted
        .iter()
        .map(|l| {
            let c = &l.certificate;
            serde_json::json!({"issuer": c.issuer.as_str(), "serial": c.serial.as_str(), "status": l.status.as_str()})
        })
        .collect();
    let details = serde_json::json!({
        "verified_with": release.verified_with,
        "documents_checked": release.documents_checked,
        "note": release.note,
        "certificates": certificates,
    });
    let entry = AuditEntry {
        at: now,
        actor: &release.clerk_token_id,
        action: "suspension.released",
        subject: &release.suspension_id,
        details: details.to_string(),
    };
    let stream: Vec<NewStatusChange> = lifted
        .iter()
        .map(|l| NewStatusChange {
            issuer: l.certificate.issuer.clone(),
            serial: l.certificate.serial.clone(),
            status: l.status,
            reason: l.reason,
        })
        .collect();
    audit::append(tx, &entry, &stream).await
}

/// The documents as stored: their words, comma-separated; none as NULL.
fn documents_text(documents: &[IdentityDocument]) -> Option<String> {
    (!documents.is_empty()).then(|| documents.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(","))
}
