//! One record that changes something, applied in its own transaction: the
//! holder's state is read again inside it and the record planned again, so
//! whatever happened since the chunk was read (a suspension, another import)
//! is taken into account. Each revocation goes to the outbox for the CA and
//! to the change stream for the caches, under one audit record.

use hotline_core::{CardStatus, CertificateStatus, Medium};
use sqlx::{Any, Transaction};

use super::plan::{self, Plan};
use super::state::{self, Holder};
use super::{ImportRecord, ImportRun, Stance};
use crate::audit::{self, AuditEntry, NewStatusChange};
use crate::ids::CertificateId;
use crate::outbox::{self, CaChange, ChangedCertificate};
use crate::suspend::abandon;
use crate::{Store, format_instant};

/// What applying one record did.
pub(super) enum Applied {
    Unchanged,
    Refused(String),
    Changed { added_holder: bool, certificates_added: u64, revoked: u64 },
}

impl Store {
    pub(super) async fn apply_record(&self, record: &ImportRecord, run: &ImportRun<'_>) -> crate::Result<Applied> {
        let at = format_instant(run.at);
        let mut tx = self.begin_write().await?;
        let registry = state::read(&mut tx, &[record], state::Owners::All).await?;
        let holder = registry.holder(&record.fingerprint);
        let plan = match plan::plan(record, &holder, &registry.owners) {
            Err(why) => return abandon(tx, Applied::Refused(why)).await,
            Ok(plan) if plan.is_nothing() && holder.id.is_some() => return abandon(tx, Applied::Unchanged).await,
            Ok(plan) => plan,
        };
        let (holder_id, added_holder) = match holder.id {
            Some(id) => (id, false),
            None => (insert_holder(&mut tx, record).await?, true),
        };
        let card_id = if plan.new_card {
            Some(replace_card(&mut tx, holder_id, &holder, &at).await?)
        } else {
            holder.current_card
        };
        let Plan { register, mut revoke, new_card } = plan;
        let mut registered = Vec::with_capacity(register.len());
        for (c, device) in &register {
            let (medium, card) = match device {
                Some(_) => (Medium::Smartphone, None),
                None => (
                    Medium::Card,
                    Some(card_id.ok_or_else(|| anyhow::anyhow!("a card certificate with no card to go on"))?),
                ),
            };
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO certificates (holder_id, issuer, serial, kind, medium, card_id, device_id, status, since)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            )
            .bind(holder_id)
            .bind(c.issuer.as_str())
            .bind(c.serial.as_str())
            .bind(c.kind.as_str())
            .bind(medium.as_str())
            .bind(card)
            .bind(device.as_ref().map(|d| d.as_str().to_owned()))
            .bind(CertificateStatus::Good.as_str())
            .bind(&at)
            .fetch_one(&mut *tx)
            .await?;
            // Registered and revoked in one step: issued and revoked on the issuing side since the last file.
            if let Stance::Revoked(reason) = c.stance {
                revoke.insert(id, (c.issuer.clone(), c.serial.clone(), reason));
            }
            registered.push(serde_json::json!({"issuer": c.issuer.as_str(), "serial": c.serial.as_str()}));
        }
        let mut stream = Vec::with_capacity(revoke.len());
        let mut revoked = Vec::with_capacity(revoke.len());
        for (id, (issuer, serial, reason)) in revoke {
            sqlx::query(
                "UPDATE certificates SET status = $1, reason = $2, since = $3, suspension_id = NULL WHERE id = $4",
            )
            .bind(CertificateStatus::Revoked.as_str())
            .bind(reason.as_str())
            .bind(&at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            let changed = ChangedCertificate { id: CertificateId(id), issuer, serial };
            outbox::enqueue(&mut tx, &changed, CaChange::revoke(reason), None, &at).await?;
            revoked.push(serde_json::json!({
                "issuer": changed.issuer.as_str(), "serial": changed.serial.as_str(), "reason": reason.as_str(),
            }));
            stream.push(NewStatusChange {
                issuer: changed.issuer,
                serial: changed.serial,
                status: CertificateStatus::Revoked,
                reason: Some(reason),
            });
        }
        let details = serde_json::json!({
            "source": run.source,
            "line": record.line,
            "new_card": new_card,
            "registered": registered,
            "revoked": revoked,
        });
        let action = if added_holder { "registry.holder_added" } else { "registry.holder_changed" };
        let subject = format!("holder:{holder_id}");
        let entry = AuditEntry { at: &at, actor: run.actor, action, subject: &subject, details: details.to_string() };
        audit::append(&mut tx, &entry, &stream).await?;
        tx.commit().await.map_err(crate::Error::from_commit)?;
        Ok(Applied::Changed { added_holder, certificates_added: registered.len() as u64, revoked: stream.len() as u64 })
    }
}

async fn insert_holder(tx: &mut Transaction<'static, Any>, record: &ImportRecord) -> crate::Result<i64> {
    Ok(sqlx::query_scalar("INSERT INTO holders (number_hmac, date_of_birth) VALUES ($1, $2) RETURNING id")
        .bind(record.fingerprint.as_str())
        .bind(record.date_of_birth.format("%Y-%m-%d").to_string())
        .fetch_one(&mut **tx)
        .await?)
}

/// Revokes the holder's current card, if any, and registers the new one.
async fn replace_card(
    tx: &mut Transaction<'static, Any>,
    holder_id: i64,
    holder: &Holder<'_>,
    at: &str,
) -> crate::Result<i64> {
    if let Some(old) = holder.current_card {
        sqlx::query("UPDATE cards SET status = $1, status_since = $2 WHERE id = $3")
            .bind(CardStatus::Revoked.as_str())
            .bind(at)
            .bind(old)
            .execute(&mut **tx)
            .await?;
    }
    Ok(sqlx::query_scalar("INSERT INTO cards (holder_id, status, status_since) VALUES ($1, $2, $3) RETURNING id")
        .bind(holder_id)
        .bind(CardStatus::Active.as_str())
        .bind(at)
        .fetch_one(&mut **tx)
        .await?)
}
