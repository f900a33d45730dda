//! The suspension transaction: claim the idempotency key, find the holder and
//! what the report covers, hold every certificate still good, and record the
//! suspension, its outbox events, its audit record and the answer to replay,
//! all in one commit (invariants 1, 2 and 6).
//!
//! Each step is one statement, whatever the number of certificates: the
//! holder, their card and its certificates are found together, the
//! certificates held in one update, their links and outbox events written in
//! one insert each. A suspension is about a dozen round trips, where it was
//! twenty; none of them waits for a lock another suspension holds, unless
//! both report the same holder's items.

use chrono::{DateTime, NaiveDate, Utc};
use hotline_core::{
    CallId, CardStatus, Cause, CertificateStatus, DeviceId, HolderFingerprint, Item, Language, Medium, Mode,
    SuspensionState,
};
use rand::RngCore;
use sqlx::{Any, Row, Transaction};

use crate::audit::NewStatusChange;
use crate::error::bail;
use crate::idempotency::{self, IdempotencyClaim, Previous, SavedResponse};
use crate::ids::{CardId, CertificateId, HolderId};
use crate::outbox::{self, CaChange, ChangedCertificate, Event};
use crate::rows::{issuer, opt_text, serial};
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

/// What a report covers: the holder, the card if it is a card report, the certificates.
struct Covered {
    holder: HolderId,
    card: Option<CardId>,
    certificates: Vec<CertificateId>,
}

/// What holding the covered certificates changed.
struct Held {
    certificates: Vec<ChangedCertificate>,
    card: bool,
}

impl Held {
    fn nothing(&self) -> bool {
        self.certificates.is_empty() && !self.card
    }
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
        let covered = match covered(&mut tx, new).await? {
            Ok(covered) => covered,
            Err(refused) => return abandon(tx, refused).await,
        };
        let id = uuid::Uuid::now_v7().to_string();
        let held = hold(&mut tx, &covered, &id, &now).await?;
        let outcome = if held.nothing() {
            // A concurrent report got there first: it holds them, and this one names it.
            let Some(existing) = current_suspension(&mut tx, &covered.certificates).await? else {
                return abandon(tx, SuspendOutcome::NothingToSuspend).await;
            };
            SuspendOutcome::AlreadySuspended(view_of(&mut tx, &existing).await?)
        } else {
            let reference = record_suspension(&mut tx, new, &id, &covered, &held, &now).await?;
            audit_suspension(&mut tx, new, &id, &reference, &covered, &held, &now).await?;
            SuspendOutcome::Created(view_of(&mut tx, &id).await?)
        };
        idempotency::save(&mut tx, &new.idempotency, &render(&outcome)?).await?;
        tx.commit().await.map_err(crate::Error::from_commit)?;
        Ok(outcome)
    }
}

/// Ends a transaction that changes nothing. An explicit rollback releases its
/// locks now; a dropped transaction would keep them until sqlx flushes its
/// queued rollback, and meanwhile SQLite refuses other writers outright.
pub(crate) async fn abandon<T>(tx: Transaction<'static, Any>, outcome: T) -> crate::Result<T> {
    tx.rollback().await?;
    Ok(outcome)
}

/// The holder with this fingerprint and date of birth, matched together, so
/// a caller never learns which one was wrong.
pub(crate) async fn find_holder(
    tx: &mut Transaction<'static, Any>,
    holder: &HolderFingerprint,
    date_of_birth: NaiveDate,
) -> crate::Result<Option<i64>> {
    let id = sqlx::query_scalar("SELECT id FROM holders WHERE number_hmac = $1 AND date_of_birth = $2")
        .bind(holder.as_str())
        .bind(date_of_birth.format("%Y-%m-%d").to_string())
        .fetch_optional(&mut **tx)
        .await?;
    Ok(id)
}

/// What the report covers, found in one statement, or why nothing is.
async fn covered(
    tx: &mut Transaction<'static, Any>,
    new: &NewSuspension,
) -> crate::Result<Result<Covered, SuspendOutcome>> {
    let dob = new.date_of_birth.format("%Y-%m-%d").to_string();
    let rows = if new.item.suspends_card() {
        // The holder's newest card that is not revoked, and its certificates.
        sqlx::query(
            "SELECT h.id AS holder_id, c.id AS card_id, t.id AS certificate_id FROM holders h
               LEFT JOIN cards c ON c.id = (SELECT id FROM cards WHERE holder_id = h.id AND status <> $3
                                            ORDER BY id DESC LIMIT 1)
               LEFT JOIN certificates t ON t.card_id = c.id
              WHERE h.number_hmac = $1 AND h.date_of_birth = $2 ORDER BY t.id",
        )
        .bind(new.holder.as_str())
        .bind(&dob)
        .bind(CardStatus::Revoked.as_str())
        .fetch_all(&mut **tx)
        .await?
    } else {
        let device = new.device_id.as_ref().map(|d| d.as_str()).unwrap_or_default();
        sqlx::query(
            "SELECT h.id AS holder_id, NULL AS card_id, t.id AS certificate_id FROM holders h
               LEFT JOIN certificates t ON t.holder_id = h.id AND t.medium = $3 AND t.device_id = $4
              WHERE h.number_hmac = $1 AND h.date_of_birth = $2 ORDER BY t.id",
        )
        .bind(new.holder.as_str())
        .bind(&dob)
        .bind(Medium::Smartphone.as_str())
        .bind(device)
        .fetch_all(&mut **tx)
        .await?
    };
    let Some(first) = rows.first() else { return Ok(Err(SuspendOutcome::HolderNotFound)) };
    let holder = HolderId(first.try_get("holder_id")?);
    let card = first.try_get::<Option<i64>, _>("card_id")?.map(CardId);
    let mut certificates = Vec::with_capacity(rows.len());
    for row in &rows {
        if let Some(id) = row.try_get::<Option<i64>, _>("certificate_id")? {
            certificates.push(CertificateId(id));
        }
    }
    Ok(match (new.item.suspends_card(), card, certificates.is_empty()) {
        (true, None, _) => Err(SuspendOutcome::CardNotFound),
        (false, _, true) => Err(SuspendOutcome::DeviceNotFound),
        _ => Ok(Covered { holder, card, certificates }),
    })
}

/// `$first, $first+1, …`: `n` placeholders for an `IN (…)` list.
pub(crate) fn placeholders(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// Holds every covered certificate still good, in one conditional update (a
/// concurrent report that held one first wins it, and this one does not),
/// and the card if it is active.
async fn hold(tx: &mut Transaction<'static, Any>, covered: &Covered, id: &str, now: &str) -> crate::Result<Held> {
    let certificates = hold_certificates(tx, &covered.certificates, id, now).await?;
    let card = match covered.card {
        Some(card) => {
            sqlx::query("UPDATE cards SET status = $1, status_since = $2 WHERE id = $3 AND status = $4")
                .bind(CardStatus::Suspended.as_str())
                .bind(now)
                .bind(card.0)
                .bind(CardStatus::Active.as_str())
                .execute(&mut **tx)
                .await?
                .rows_affected()
                == 1
        }
        None => false,
    };
    Ok(Held { certificates, card })
}

/// The certificates of `covered` that were good, now held by suspension `id`, in id order.
async fn hold_certificates(
    tx: &mut Transaction<'static, Any>,
    covered: &[CertificateId],
    id: &str,
    now: &str,
) -> crate::Result<Vec<ChangedCertificate>> {
    if covered.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "UPDATE certificates SET status = $1, reason = $2, since = $3, suspension_id = $4
          WHERE status = $5 AND id IN ({}) RETURNING id, issuer, serial",
        placeholders(6, covered.len())
    );
    let mut update = sqlx::query(&sql)
        .bind(CertificateStatus::Suspended.as_str())
        .bind(CaChange::HOLD.reason.as_str())
        .bind(now)
        .bind(id)
        .bind(CertificateStatus::Good.as_str());
    for certificate in covered {
        update = update.bind(certificate.0);
    }
    let mut certificates = Vec::with_capacity(covered.len());
    for row in update.fetch_all(&mut **tx).await? {
        let id = CertificateId(row.try_get("id")?);
        certificates.push(ChangedCertificate { id, issuer: issuer(&row, "issuer")?, serial: serial(&row, "serial")? });
    }
    certificates.sort_by_key(|c| c.id);
    Ok(certificates)
}

/// Inserts the suspension under a reference no other has, its certificate
/// links and its outbox events; returns the reference.
async fn record_suspension(
    tx: &mut Transaction<'static, Any>,
    new: &NewSuspension,
    id: &str,
    covered: &Covered,
    held: &Held,
    now: &str,
) -> crate::Result<String> {
    let reference = insert_suspension(tx, new, id, covered.holder, now).await?;
    if !held.certificates.is_empty() {
        let sql = format!(
            "INSERT INTO suspension_certificates (suspension_id, certificate_id) VALUES {}",
            (0..held.certificates.len()).map(|i| format!("($1, ${})", i + 2)).collect::<Vec<_>>().join(", ")
        );
        let mut links = sqlx::query(&sql).bind(id);
        for certificate in &held.certificates {
            links = links.bind(certificate.id.0);
        }
        links.execute(&mut **tx).await?;
        let events: Vec<Event<'_>> =
            held.certificates.iter().map(|certificate| Event { certificate, change: CaChange::HOLD }).collect();
        outbox::enqueue_all(tx, &events, Some(id), now).await?;
    }
    Ok(reference)
}

/// The suspension's row under a fresh reference. Collisions of 40 random
/// bits are rare but not negligible over a national registry's lifetime: a
/// reference taken already inserts nothing, and another is drawn.
async fn insert_suspension(
    tx: &mut Transaction<'static, Any>,
    new: &NewSuspension,
    id: &str,
    holder: HolderId,
    now: &str,
) -> crate::Result<String> {
    for _ in 0..8 {
        let mut bytes = [0u8; 5];
        rand::rng().fill_bytes(&mut bytes);
        let reference = hotline_core::Reference::from_random(bytes).to_string();
        let inserted = sqlx::query(
            "INSERT INTO suspensions (id, reference, holder_id, item, cause, language, call_id, device_id,
                 police_report_number, operator_token_id, rules_version, mode, decided_at, status)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
             ON CONFLICT (reference) DO NOTHING",
        )
        .bind(id)
        .bind(&reference)
        .bind(holder.0)
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
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(reference);
        }
    }
    bail!("could not find a free reference in 8 draws")
}

/// The audit record of a new suspension and the stream's changes it covers.
async fn audit_suspension(
    tx: &mut Transaction<'static, Any>,
    new: &NewSuspension,
    id: &str,
    reference: &str,
    covered: &Covered,
    held: &Held,
    now: &str,
) -> crate::Result<()> {
    let details = serde_json::json!({
        "reference": reference,
        "holder_id": covered.holder.0,
        "item": new.item.as_str(),
        "cause": new.cause.as_str(),
        "language": new.language.as_str(),
        "call_id": new.call_id.as_str(),
        "rules_version": new.rules_version,
        "mode": new.mode.as_str(),
        "certificates": held.certificates.iter()
            .map(|c| serde_json::json!({"issuer": c.issuer.as_str(), "serial": c.serial.as_str()}))
            .collect::<Vec<_>>(),
    });
    let entry = AuditEntry {
        at: now,
        actor: &new.operator_token_id,
        action: "suspension.created",
        subject: id,
        details: details.to_string(),
    };
    let changes: Vec<NewStatusChange> = held
        .certificates
        .iter()
        .map(|c| NewStatusChange {
            issuer: c.issuer.clone(),
            serial: c.serial.clone(),
            status: CertificateStatus::Suspended,
            reason: Some(CaChange::HOLD.reason),
        })
        .collect();
    audit::append(tx, &entry, &changes).await
}

async fn view_of(tx: &mut Transaction<'static, Any>, id: &str) -> crate::Result<SuspensionView> {
    views::load(&mut **tx, id).await?.ok_or_else(|| crate::error::unexpected!("suspension {id} vanished"))
}

/// The suspension holding any of these certificates now (read after the
/// conditional update, so it sees a concurrent suspension that committed first).
async fn current_suspension(
    tx: &mut Transaction<'static, Any>,
    certificates: &[CertificateId],
) -> crate::Result<Option<String>> {
    if certificates.is_empty() {
        return Ok(None);
    }
    let sql = format!(
        "SELECT suspension_id FROM certificates WHERE status = $1 AND suspension_id IS NOT NULL AND id IN ({})
          ORDER BY id LIMIT 1",
        placeholders(2, certificates.len())
    );
    let mut query = sqlx::query(&sql).bind(CertificateStatus::Suspended.as_str());
    for certificate in certificates {
        query = query.bind(certificate.0);
    }
    let row = query.fetch_optional(&mut **tx).await?;
    Ok(row.map(|r| opt_text(&r, "suspension_id")).transpose()?.flatten())
}
