//! The suspension transaction: claim the idempotency key, find the holder and
//! what the report covers, hold every certificate still good, and record the
//! suspension, its outbox events, its audit record and the answer to replay,
//! all in one commit (invariants 1, 2 and 6).

use chrono::{DateTime, NaiveDate, Utc};
use hotline_core::{
    CallId, CardStatus, Cause, CertificateStatus, DeviceId, HolderFingerprint, Item, Language, Medium, Mode,
    SuspensionState,
};
use rand::RngCore;
use sqlx::{Any, Transaction};

use crate::audit::NewStatusChange;
use crate::error::bail;
use crate::idempotency::{self, IdempotencyClaim, Previous, SavedResponse};
use crate::outbox::{self, CaChange, ChangedCertificate};
use crate::rows::{opt_text, text};
use crate::{AuditEntry, Store, SuspensionView, audit, format_instant, views};

/// A report the rules accepted, with everything the transaction records.
#[derive(Debug, Clone)]
pub struct NewSuspension {
    pub holder: HolderFingerprint,
    pub date_of_birth: NaiveDate,
    pub item: Item,
    pub cause: Cause,
    pub language: Language,
    pub call_id: CallId,
    pub device_id: Option<DeviceId>,
    pub police_report_number: Option<String>,
    pub operator_token_id: String,
    pub decided_at: DateTime<Utc>,
    pub rules_version: String,
    pub mode: Mode,
    pub idempotency: IdempotencyClaim,
}

/// How a suspension request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SuspendOutcome {
    /// New suspension committed.
    Created(SuspensionView),
    /// Everything the report covers was already held, by this suspension.
    AlreadySuspended(SuspensionView),
    /// The same request was answered before: its first answer.
    Replay(SavedResponse),
    /// The key was used before for a different request.
    KeyReused,
    /// No holder has this number and date of birth.
    HolderNotFound,
    /// The holder has no card that is not revoked.
    CardNotFound,
    /// The holder has no certificates on this device.
    DeviceNotFound,
    /// Every certificate the report covers is revoked: nothing can be held.
    NothingToSuspend,
}

impl Store {
    /// Runs the suspension transaction. `render` turns a `Created` or
    /// `AlreadySuspended` outcome into the answer saved for replay.
    #[tracing::instrument(name = "transaction suspend", skip_all, fields(otel.kind = "client", db.system.name = self.backend().system_name()))]
    pub async fn suspend<F>(&self, new: &NewSuspension, render: F) -> crate::Result<SuspendOutcome>
    where
        F: FnOnce(&SuspendOutcome) -> anyhow::Result<SavedResponse>,
    {
        let now = format_instant(new.decided_at);
        let mut tx = self.begin_write().await?;
        match idempotency::claim(&mut tx, &new.idempotency, &now).await? {
            Previous::None => {}
            Previous::Replay(saved) => return abandon(tx, SuspendOutcome::Replay(saved)).await,
            Previous::Reused => return abandon(tx, SuspendOutcome::KeyReused).await,
        }
        let Some(holder_id) = find_holder(&mut tx, &new.holder, new.date_of_birth).await? else {
            return abandon(tx, SuspendOutcome::HolderNotFound).await;
        };
        let (card_id, targets) = if new.item.suspends_card() {
            let Some(card_id) = active_card(&mut tx, holder_id).await? else {
                return abandon(tx, SuspendOutcome::CardNotFound).await;
            };
            (Some(card_id), card_certificates(&mut tx, card_id).await?)
        } else {
            let device = new.device_id.as_ref().map(|d| d.as_str()).unwrap_or_default();
            let targets = smartphone_certificates(&mut tx, holder_id, device).await?;
            if targets.is_empty() {
                return abandon(tx, SuspendOutcome::DeviceNotFound).await;
            }
            (None, targets)
        };

        let id = uuid::Uuid::now_v7().to_string();
        let mut held = Vec::with_capacity(targets.len());
        for &target in &targets {
            // Conditional: a concurrent report that held this certificate first wins,
            // and this one sees zero rows instead of holding it twice.
            let row = sqlx::query(
                "UPDATE certificates SET status = $1, reason = $2, since = $3, suspension_id = $4
                  WHERE id = $5 AND status = $6 RETURNING issuer, serial",
            )
            .bind(CertificateStatus::Suspended.as_str())
            .bind(CaChange::HOLD.reason.as_str())
            .bind(&now)
            .bind(&id)
            .bind(target)
            .bind(CertificateStatus::Good.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = row {
                held.push(ChangedCertificate {
                    id: target,
                    issuer: text(&row, "issuer")?,
                    serial: text(&row, "serial")?,
                });
            }
        }
        let card_held = match card_id {
            Some(card_id) => {
                sqlx::query("UPDATE cards SET status = $1, status_since = $2 WHERE id = $3 AND status = $4")
                    .bind(CardStatus::Suspended.as_str())
                    .bind(&now)
                    .bind(card_id)
                    .bind(CardStatus::Active.as_str())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1
            }
            None => false,
        };

        let (outcome, audit_details) = if held.is_empty() && !card_held {
            let Some(existing) = current_suspension(&mut tx, &targets).await? else {
                return abandon(tx, SuspendOutcome::NothingToSuspend).await;
            };
            let view = views::load(&mut *tx, &existing)
                .await?
                .ok_or_else(|| anyhow::anyhow!("suspension {existing} vanished"))?;
            (SuspendOutcome::AlreadySuspended(view), None)
        } else {
            let details = self.record_suspension(&mut tx, new, &id, holder_id, &held, &now).await?;
            let view = views::load(&mut *tx, &id).await?.ok_or_else(|| anyhow::anyhow!("suspension {id} vanished"))?;
            (SuspendOutcome::Created(view), Some(details))
        };
        idempotency::save(&mut tx, &new.idempotency, &render(&outcome)?).await?;
        // The append locks the chain's head until commit, so it is the last write.
        if let Some(details) = audit_details {
            let entry = AuditEntry {
                at: &now,
                actor: &new.operator_token_id,
                action: "suspension.created",
                subject: &id,
                details,
            };
            let changes: Vec<NewStatusChange> = held
                .iter()
                .map(|c| NewStatusChange {
                    issuer: c.issuer.clone(),
                    serial: c.serial.clone(),
                    status: CertificateStatus::Suspended,
                    reason: Some(CaChange::HOLD.reason),
                })
                .collect();
            audit::append(&mut tx, &entry, &changes).await?;
        }
        tx.commit().await.map_err(crate::Error::from_commit)?;
        Ok(outcome)
    }

    /// Inserts the suspension, its certificate links and outbox events; returns the audit details.
    async fn record_suspension(
        &self,
        tx: &mut Transaction<'static, Any>,
        new: &NewSuspension,
        id: &str,
        holder_id: i64,
        held: &[ChangedCertificate],
        now: &str,
    ) -> crate::Result<String> {
        let reference = fresh_reference(tx).await?;
        sqlx::query(
            "INSERT INTO suspensions (id, reference, holder_id, item, cause, language, call_id, device_id,
                 police_report_number, operator_token_id, rules_version, mode, decided_at, status)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(id)
        .bind(&reference)
        .bind(holder_id)
        .bind(new.item.as_str())
        .bind(new.cause.as_str())
        .bind(new.language.as_str())
        .bind(new.call_id.as_str())
        .bind(new.device_id.as_ref().map(|d| d.as_str().to_owned()))
        .bind(new.police_report_number.clone())
        .bind(&new.operator_token_id)
        .bind(&new.rules_version)
        .bind(new.mode.as_str())
        .bind(now)
        .bind(SuspensionState::Suspended.as_str())
        .execute(&mut **tx)
        .await?;
        for cert in held {
            sqlx::query("INSERT INTO suspension_certificates (suspension_id, certificate_id) VALUES ($1, $2)")
                .bind(id)
                .bind(cert.id)
                .execute(&mut **tx)
                .await?;
            outbox::enqueue(tx, cert, CaChange::HOLD, Some(id), now).await?;
        }
        let details = serde_json::json!({
            "reference": reference,
            "holder_id": holder_id,
            "item": new.item.as_str(),
            "cause": new.cause.as_str(),
            "language": new.language.as_str(),
            "call_id": new.call_id.as_str(),
            "rules_version": new.rules_version,
            "mode": new.mode.as_str(),
            "certificates": held.iter().map(|c| serde_json::json!({"issuer": c.issuer, "serial": c.serial})).collect::<Vec<_>>(),
        });
        Ok(details.to_string())
    }
}

/// Ends a transaction that changes nothing. An explicit rollback releases its
/// locks now; a dropped transaction would keep them until sqlx flushes its
/// queued rollback, and meanwhile SQLite refuses other writers outright.
pub(crate) async fn abandon<T>(tx: Transaction<'static, Any>, outcome: T) -> crate::Result<T> {
    tx.rollback().await?;
    Ok(outcome)
}

pub(crate) async fn find_holder(
    tx: &mut Transaction<'static, Any>,
    holder: &HolderFingerprint,
    date_of_birth: NaiveDate,
) -> crate::Result<Option<i64>> {
    // Number and date of birth are matched together, so a caller never learns which one was wrong.
    let id = sqlx::query_scalar("SELECT id FROM holders WHERE number_hmac = $1 AND date_of_birth = $2")
        .bind(holder.as_str())
        .bind(date_of_birth.format("%Y-%m-%d").to_string())
        .fetch_optional(&mut **tx)
        .await?;
    Ok(id)
}

async fn active_card(tx: &mut Transaction<'static, Any>, holder_id: i64) -> crate::Result<Option<i64>> {
    let id = sqlx::query_scalar("SELECT id FROM cards WHERE holder_id = $1 AND status <> $2 ORDER BY id DESC LIMIT 1")
        .bind(holder_id)
        .bind(CardStatus::Revoked.as_str())
        .fetch_optional(&mut **tx)
        .await?;
    Ok(id)
}

/// The ids of a card's certificates.
async fn card_certificates(tx: &mut Transaction<'static, Any>, card_id: i64) -> crate::Result<Vec<i64>> {
    let sql = "SELECT id FROM certificates WHERE card_id = $1 ORDER BY id";
    Ok(sqlx::query_scalar(sql).bind(card_id).fetch_all(&mut **tx).await?)
}

/// The ids of the certificates on one of the holder's smartphones.
async fn smartphone_certificates(
    tx: &mut Transaction<'static, Any>,
    holder_id: i64,
    device_id: &str,
) -> crate::Result<Vec<i64>> {
    let sql = "SELECT id FROM certificates WHERE holder_id = $1 AND medium = $2 AND device_id = $3 ORDER BY id";
    let query = sqlx::query_scalar(sql).bind(holder_id).bind(Medium::Smartphone.as_str()).bind(device_id);
    Ok(query.fetch_all(&mut **tx).await?)
}

/// The suspension holding any of these certificates now (read after the
/// conditional updates, so it sees a concurrent suspension that committed first).
async fn current_suspension(tx: &mut Transaction<'static, Any>, targets: &[i64]) -> crate::Result<Option<String>> {
    for &target in targets {
        let row = sqlx::query("SELECT suspension_id FROM certificates WHERE id = $1 AND status = $2")
            .bind(target)
            .bind(CertificateStatus::Suspended.as_str())
            .fetch_optional(&mut **tx)
            .await?;
        if let Some(sid) = row.map(|r| opt_text(&r, "suspension_id")).transpose()?.flatten() {
            return Ok(Some(sid));
        }
    }
    Ok(None)
}

/// A reference no other suspension has. Collisions of 40 random bits are rare
/// but not negligible over a national registry's lifetime, so they are retried.
async fn fresh_reference(tx: &mut Transaction<'static, Any>) -> crate::Result<String> {
    for _ in 0..8 {
        let mut bytes = [0u8; 5];
        rand::rng().fill_bytes(&mut bytes);
        let candidate = hotline_core::Reference::from_random(bytes).to_string();
        let taken: Option<String> = sqlx::query_scalar("SELECT reference FROM suspensions WHERE reference = $1")
            .bind(&candidate)
            .fetch_optional(&mut **tx)
            .await?;
        if taken.is_none() {
            return Ok(candidate);
        }
    }
    bail!("could not find a free reference in 8 draws")
}
