//! Loading the registry: holders, their cards and certificates, in batches of
//! multi-row inserts so that a synthetic national-scale registry loads in minutes.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use hotline_core::{CardStatus, CertificateKind, CertificateStatus, DeviceId, HolderFingerprint, Medium, Serial};
use sqlx::Row;

use crate::rows::text;
use crate::{Store, format_instant};

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

fn placeholders(rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| {
            let cells: Vec<String> = (1..=cols).map(|c| format!("${}", r * cols + c)).collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    /// Registers holders; a holder already registered (same fingerprint) is
    /// skipped with everything of theirs. Returns how many were added.
    pub async fn insert_holders(&self, holders: &[NewHolder], now: DateTime<Utc>) -> anyhow::Result<usize> {
        let now = format_instant(now);
        let mut added = 0;
        for chunk in holders.chunks(BATCH) {
            let mut tx = self.begin_write().await?;
            let sql = format!(
                "INSERT INTO holders (number_hmac, date_of_birth) VALUES {} ON CONFLICT (number_hmac) DO NOTHING RETURNING id, number_hmac",
                placeholders(chunk.len(), 2)
            );
            let mut q = sqlx::query(&sql);
            for h in chunk {
                q = q.bind(h.fingerprint.as_str()).bind(h.date_of_birth.format("%Y-%m-%d").to_string());
            }
            let mut ids: HashMap<String, i64> = HashMap::with_capacity(chunk.len());
            for row in q.fetch_all(&mut *tx).await? {
                ids.insert(text(&row, "number_hmac")?, row.try_get("id")?);
            }
            let fresh: Vec<(i64, &NewHolder)> =
                chunk.iter().filter_map(|h| ids.get(h.fingerprint.as_str()).map(|id| (*id, h))).collect();
            if fresh.is_empty() {
                tx.commit().await?;
                continue;
            }

            let sql = format!(
                "INSERT INTO cards (holder_id, status, status_since) VALUES {} RETURNING id, holder_id",
                placeholders(fresh.len(), 3)
            );
            let mut q = sqlx::query(&sql);
            for (holder_id, _) in &fresh {
                q = q.bind(*holder_id).bind(CardStatus::Active.as_str()).bind(&now);
            }
            let mut cards: HashMap<i64, i64> = HashMap::with_capacity(fresh.len());
            for row in q.fetch_all(&mut *tx).await? {
                cards.insert(row.try_get("holder_id")?, row.try_get("id")?);
            }

            // (holder_id, certificate, card_id, device_id)
            let mut certs: Vec<(i64, &NewCertificate, Option<i64>, Option<&str>)> = Vec::new();
            for (holder_id, h) in &fresh {
                let card_id = cards.get(holder_id).copied();
                certs.extend(h.card.iter().map(|c| (*holder_id, c, card_id, None)));
                for phone in &h.smartphones {
                    certs.extend(
                        phone.certificates.iter().map(|c| (*holder_id, c, None, Some(phone.device_id.as_str()))),
                    );
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
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            added += fresh.len();
        }
        Ok(added)
    }
}
