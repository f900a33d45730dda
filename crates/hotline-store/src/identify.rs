//! Identifying a caller: whether a holder has this Individual Number (as its
//! keyed fingerprint) and date of birth, and if so what an operator may
//! suspend for them: the card in use and the smartphones registered, each
//! with the suspension that holds it already, if any. Nothing else about the
//! holder leaves the store. Every look-up, found or not, is an audit record
//! (who, when, for which call), so look-ups without a call behind them show.

use chrono::{DateTime, NaiveDate, Utc};
use hotline_core::{CallId, CardStatus, CertificateStatus, HolderFingerprint, Medium};
use sqlx::{Any, Transaction};

use crate::rows::{instant, opt_text, text, word};
use crate::suspend::find_holder;
use crate::{AuditEntry, Store, audit, format_instant};

/// A look-up by an operator, for a call.
#[derive(Debug, Clone)]
pub struct Identification {
    pub holder: HolderFingerprint,
    pub date_of_birth: NaiveDate,
    pub call_id: CallId,
    pub operator_token_id: String,
    pub at: DateTime<Utc>,
}

/// What an operator learns about a holder found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentifiedHolder {
    /// The card not revoked, if the holder has one.
    pub card: Option<IdentifiedCard>,
    /// Smartphones with at least one certificate not revoked, by device id.
    pub smartphones: Vec<IdentifiedSmartphone>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentifiedCard {
    pub status: CardStatus,
    pub since: DateTime<Utc>,
    /// The reference of the suspension holding its certificates, if held.
    pub held_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentifiedSmartphone {
    pub device_id: String,
    /// Whether its certificates are suspended now.
    pub held: bool,
    pub held_by: Option<String>,
}

impl Store {
    /// Looks the holder up and records the look-up; `None` if no holder has this number and date of birth.
    pub async fn identify_holder(&self, lookup: &Identification) -> crate::Result<Option<IdentifiedHolder>> {
        let mut tx = self.begin_write().await?;
        let holder_id = find_holder(&mut tx, &lookup.holder, lookup.date_of_birth).await?;
        let found = match holder_id {
            Some(id) => {
                Some(IdentifiedHolder { card: card(&mut tx, id).await?, smartphones: smartphones(&mut tx, id).await? })
            }
            None => None,
        };
        let at = format_instant(lookup.at);
        let subject = holder_id.map_or_else(|| "holder:not_found".to_owned(), |id| format!("holder:{id}"));
        let entry = AuditEntry {
            at: &at,
            actor: &lookup.operator_token_id,
            action: "holder.identified",
            subject: &subject,
            details: serde_json::json!({"call_id": lookup.call_id.as_str(), "found": found.is_some()}).to_string(),
        };
        audit::append(&mut tx, &entry, &[]).await?;
        tx.commit().await.map_err(crate::Error::from_commit)?;
        Ok(found)
    }
}

async fn card(tx: &mut Transaction<'static, Any>, holder_id: i64) -> crate::Result<Option<IdentifiedCard>> {
    let row = sqlx::query(
        "SELECT id, status, status_since FROM cards WHERE holder_id = $1 AND status <> $2 ORDER BY id DESC LIMIT 1",
    )
    .bind(holder_id)
    .bind(CardStatus::Revoked.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let card_id: i64 = sqlx::Row::try_get(&row, "id")?;
    let held_by: Option<String> = sqlx::query_scalar(
        "SELECT s.reference FROM certificates c JOIN suspensions s ON s.id = c.suspension_id
          WHERE c.card_id = $1 AND c.status = $2 ORDER BY c.id LIMIT 1",
    )
    .bind(card_id)
    .bind(CertificateStatus::Suspended.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    Ok(Some(IdentifiedCard { status: word(&row, "status")?, since: instant(&row, "status_since")?, held_by }))
}

async fn smartphones(tx: &mut Transaction<'static, Any>, holder_id: i64) -> crate::Result<Vec<IdentifiedSmartphone>> {
    let rows = sqlx::query(
        "SELECT c.device_id, c.status, s.reference FROM certificates c LEFT JOIN suspensions s ON s.id = c.suspension_id
          WHERE c.holder_id = $1 AND c.medium = $2 AND c.status <> $3 ORDER BY c.device_id, c.id",
    )
    .bind(holder_id)
    .bind(Medium::Smartphone.as_str())
    .bind(CertificateStatus::Revoked.as_str())
    .fetch_all(&mut **tx)
    .await?;
    let mut phones: Vec<IdentifiedSmartphone> = Vec::new();
    for row in rows {
        let device_id = text(&row, "device_id")?;
        let status: CertificateStatus = word(&row, "status")?;
        let reference = opt_text(&row, "reference")?;
        let held = status == CertificateStatus::Suspended;
        match phones.last_mut() {
            Some(phone) if phone.device_id == device_id => {
                phone.held |= held;
                if held && phone.held_by.is_none() {
                    phone.held_by = reference;
                }
            }
            _ => phones.push(IdentifiedSmartphone { device_id, held, held_by: if held { reference } else { None } }),
        }
    }
    Ok(phones)
}
