//! Loading the registry: holders, their cards and certificates, in batches of
//! bulk (PostgreSQL's `COPY`, multi-row inserts on SQLite) so that a
//! national-scale registry loads in minutes.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use hotline_core::{CardStatus, CertificateKind, CertificateStatus, DeviceId, HolderFingerprint, Medium, Serial};
use sqlx::{Any, Row, Transaction};

use crate::audit::AuditEntry;
use crate::rows::text;
use crate::{Backend, Store, format_instant};

/// A certificate to register.
#[derive(Debug, Clone)]
pub struct NewCertificate {
    pub issuer: String,
    pub serial: Serial,
    pub kind: CertificateKind,
}

/// A smartphone with its certificates.
#[derive(Debug, Clone)]
pub struct NewSmartphone {
    pub device_id: DeviceId,
    pub certificates: Vec<NewCertificate>,
}

/// A holder to register with a card and any smartphones.
#[derive(Debug, Clone)]
pub struct NewHolder {
    pub fingerprint: HolderFingerprint,
    pub date_of_birth: NaiveDate,
    pub card: Vec<NewCertificate>,
    pub smartphones: Vec<NewSmartphone>,
}

/// Holders per statement: keeps every statement under both databases' parameter limits.
const BATCH: usize = 200;

/// Holders per bulk transaction when seeding.
const BULK: usize = 10_000;

/// What a bulk registration did: all added, or nothing because a key was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bulk {
    Added(usize),
    /// A fingerprint or a serial is registered already (or twice in the batch); nothing was written.
    Taken,
}

fn placeholders(rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| {
            let cells: Vec<String> = (1..=cols).map(|c| format!("${}", r * cols + c)).collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `e` is a unique constraint refusing a row (the key is taken).
pub(crate) fn is_unique_violation(e: &crate::Error) -> bool {
    let crate::Error::Unexpected(e) = e else { return false };
    e.chain().any(|cause| {
        cause.downcast_ref::<sqlx::Error>().is_some_and(|e| match e {
            sqlx::Error::Database(db) => db.is_unique_violation(),
            _ => false,
        })
    })
}

impl Store {
    /// Registers holders; a holder already registered (same fingerprint) is
    /// skipped with everything of theirs. Returns how many were added.
    pub async fn insert_holders(&self, holders: &[NewHolder], now: DateTime<Utc>) -> crate::Result<usize> {
        let mut added = 0;
        for chunk in holders.chunks(BULK) {
            added += match self.register(chunk, now, None).await? {
                Bulk::Added(n) => n,
                // Some are registered already: the slower path that skips them.
                Bulk::Taken => {
                    let mut tx = self.begin_write().await?;
                    let n = insert_batched(&mut tx, chunk, now).await?;
                    tx.commit().await.map_err(crate::Error::from_commit)?;
                    n
                }
            };
        }
        Ok(added)
    }

    /// Registers holders none of which is registered, with `audit` recorded
    /// in the same transaction, all or nothing: PostgreSQL's `COPY`, batched
    /// multi-row inserts on SQLite.
    pub(crate) async fn register(
        &self,
        holders: &[NewHolder],
        now: DateTime<Utc>,
        audit: Option<&AuditEntry<'_>>,
    ) -> crate::Result<Bulk> {
        if holders.is_empty() {
            return Ok(Bulk::Added(0));
        }
        let written = match self.backend() {
            Backend::Postgres => crate::registry_copy::register(self, holders, now, audit).await,
            Backend::Sqlite => self.register_batched(holders, now, audit).await,
        };
        match written {
            Ok(bulk) => Ok(bulk),
            Err(e) if is_unique_violation(&e) => Ok(Bulk::Taken),
            Err(e) => Err(e),
        }
    }

    async fn register_batched(
        &self,
        holders: &[NewHolder],
        now: DateTime<Utc>,
        audit: Option<&AuditEntry<'_>>,
    ) -> crate::Result<Bulk> {
        let mut tx = self.begin_write().await?;
        if insert_batched(&mut tx, holders, now).await? < holders.len() {
            return crate::suspend::abandon(tx, Bulk::Taken).await;
        }
        if let Some(entry) = audit {
            crate::audit::append(&mut tx, entry, &[]).await?;
        }
        tx.commit().await.map_err(crate::Error::from_commit)?;
        Ok(Bulk::Added(holders.len()))
    }
}

/// Inserts holders in multi-row statements, skipping those registered already; returns how many were added.
async fn insert_batched(
    tx: &mut Transaction<'static, Any>,
    holders: &[NewHolder],
    now: DateTime<Utc>,
) -> crate::Result<usize> {
    let now = format_instant(now);
    let mut added = 0;
    for chunk in holders.chunks(BATCH) {
        let sql = format!(
            "INSERT INTO holders (number_hmac, date_of_birth) VALUES {} ON CONFLICT (number_hmac) DO NOTHING RETURNING id, number_hmac",
            placeholders(chunk.len(), 2)
        );
        let mut q = sqlx::query(&sql);
        for h in chunk {
            q = q.bind(h.fingerprint.as_str()).bind(h.date_of_birth.format("%Y-%m-%d").to_string());
        }
        let mut ids: HashMap<String, i64> = HashMap::with_capacity(chunk.len());
        for row in q.fetch_all(&mut **tx).await? {
            ids.insert(text(&row, "number_hmac")?, row.try_get("id")?);
        }
        // Only holders with a card get one: a record may list smartphones alone.
        let fresh: Vec<(i64, &NewHolder)> =
            chunk.iter().filter_map(|h| ids.get(h.fingerprint.as_str()).map(|id| (*id, h))).collect();
        let carded: Vec<i64> = fresh.iter().filter(|(_, h)| !h.card.is_empty()).map(|(id, _)| *id).collect();
        let mut cards: HashMap<i64, i64> = HashMap::with_capacity(carded.len());
        if !carded.is_empty() {
            let sql = format!(
                "INSERT INTO cards (holder_id, status, status_since) VALUES {} RETURNING id, holder_id",
                placeholders(carded.len(), 3)
            );
            let mut q = sqlx::query(&sql);
            for holder_id in &carded {
                q = q.bind(*holder_id).bind(CardStatus::Active.as_str()).bind(&now);
            }
            for row in q.fetch_all(&mut **tx).await? {
                cards.insert(row.try_get("holder_id")?, row.try_get("id")?);
            }
        }

        // (holder_id, certificate, card_id, device_id)
        let mut certs: Vec<(i64, &NewCertificate, Option<i64>, Option<&str>)> = Vec::new();
        for (holder_id, h) in &fresh {
            let card_id = cards.get(holder_id).copied();
            certs.extend(h.card.iter().map(|c| (*holder_id, c, card_id, None)));
            for phone in &h.smartphones {
                certs.extend(phone.certificates.iter().map(|c| (*holder_id, c, None, Some(phone.device_id.as_str()))));
            }
        }
        for part in certs.chunks(BATCH) {
            let sql = format!(
                "INSERT INTO certificates (holder_id, issuer, serial, kind, medium, card_id, device_id, status, since) VALUES {}",
                placeholders(part.len(), 9)
            );
            let mut q = sqlx::query(&sql);
            for (holder_id, c, card_id, device_id) in part {
                let medium = if card_id.is_some() { Medium::Card } else { Medium::Smartphone };
                q = q
                    .bind(*holder_id)
                    .bind(&c.issuer)
                    .bind(c.serial.as_str())
                    .bind(c.kind.as_str())
                    .bind(medium.as_str())
                    .bind(*card_id)
                    .bind(device_id.map(str::to_owned))
                    .bind(CertificateStatus::Good.as_str())
                    .bind(&now);
            }
            q.execute(&mut **tx).await?;
        }
        added += fresh.len();
    }
    Ok(added)
}
