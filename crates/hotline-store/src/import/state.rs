//! What the registry holds of a chunk's holders: read in a few batched
//! queries per few hundred records, so that planning a chunk costs a handful
//! of round trips, not several per record.

use std::collections::HashMap;

use chrono::NaiveDate;
use hotline_core::{CardStatus, CertificateStatus, HolderFingerprint, Medium};
use sqlx::{AnyConnection, Row};

use super::ImportRecord;
use crate::rows::{opt_text, text, value_list, value_pairs, word};

/// Keys per query: under both databases' parameter limits.
const KEYS_PER_QUERY: usize = 400;

/// A certificate as the registry holds it.
#[derive(Debug, Clone)]
pub(super) struct Held {
    pub id: i64,
    pub issuer: hotline_core::IssuerId,
    pub serial: hotline_core::Serial,
    pub medium: Medium,
    pub card_id: Option<i64>,
    pub device_id: Option<String>,
    pub status: CertificateStatus,
}

/// One holder as registered; `id` is `None` for a holder not registered yet.
#[derive(Debug, Clone, Copy)]
pub(super) struct Holder<'a> {
    pub id: Option<i64>,
    pub date_of_birth: Option<NaiveDate>,
    /// The card not revoked, if any.
    pub current_card: Option<i64>,
    pub certificates: &'a [Held],
}

/// The registry's part that a chunk touches.
#[derive(Debug, Default)]
pub(super) struct Registry {
    holders: HashMap<String, (i64, NaiveDate)>,
    current_cards: HashMap<i64, i64>,
    held: HashMap<i64, Vec<Held>>,
    /// The holder of every (issuer, serial) of the chunk that is registered.
    pub owners: HashMap<(String, String), i64>,
}

impl Registry {
    pub fn holder(&self, fingerprint: &HolderFingerprint) -> Holder<'_> {
        match self.holders.get(fingerprint.as_str()) {
            None => Holder { id: None, date_of_birth: None, current_card: None, certificates: &[] },
            Some((id, dob)) => Holder {
                id: Some(*id),
                date_of_birth: Some(*dob),
                current_card: self.current_cards.get(id).copied(),
                certificates: self.held.get(id).map_or(&[], Vec::as_slice),
            },
        }
    }
}

/// Whose serials to look up the holders of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Owners {
    /// Every serial of every record.
    All,
    /// Only the serials new to a known holder. A holder not registered yet
    /// goes in bulk, and there a serial registered to someone else is a unique
    /// violation that sends the record down the path that reads [`Owners::All`].
    OfKnownHolders,
}

/// Reads what the registry holds of `records`' holders and serials.
pub(super) async fn read(
    conn: &mut AnyConnection,
    records: &[&ImportRecord],
    owners: Owners,
) -> crate::Result<Registry> {
    let mut registry = Registry::default();
    for chunk in records.chunks(KEYS_PER_QUERY) {
        let sql = format!(
            "SELECT id, number_hmac, date_of_birth FROM holders WHERE number_hmac IN ({})",
            value_list(chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for r in chunk {
            query = query.bind(r.fingerprint.as_str());
        }
        for row in query.fetch_all(&mut *conn).await? {
            let dob =
                NaiveDate::parse_from_str(&text(&row, "date_of_birth")?, "%Y-%m-%d").map_err(anyhow::Error::from)?;
            registry.holders.insert(text(&row, "number_hmac")?, (row.try_get("id")?, dob));
        }
    }
    let ids: Vec<i64> = registry.holders.values().map(|(id, _)| *id).collect();
    for chunk in ids.chunks(KEYS_PER_QUERY) {
        read_holdings(conn, chunk, &mut registry).await?;
    }
    let mut keys: Vec<(&str, &str)> = Vec::new();
    for record in records {
        let holder = registry.holders.get(record.fingerprint.as_str()).map(|(id, _)| *id);
        if owners == Owners::OfKnownHolders && holder.is_none() {
            continue;
        }
        let held = holder.and_then(|id| registry.held.get(&id)).map_or(&[][..], Vec::as_slice);
        keys.extend(
            record
                .certificates()
                .map(|c| (c.issuer.as_str(), c.serial.as_str()))
                .filter(|(i, s)| !held.iter().any(|h| h.issuer.as_str() == *i && h.serial.as_str() == *s)),
        );
    }
    for chunk in keys.chunks(KEYS_PER_QUERY) {
        let sql = format!(
            "SELECT issuer, serial, holder_id FROM certificates WHERE (issuer, serial) IN (VALUES {})",
            value_pairs(chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for (issuer, serial) in chunk {
            query = query.bind(*issuer).bind(*serial);
        }
        for row in query.fetch_all(&mut *conn).await? {
            let key = (text(&row, "issuer")?, text(&row, "serial")?);
            registry.owners.insert(key, row.try_get("holder_id")?);
        }
    }
    Ok(registry)
}

/// The certificates and the current card of the holders `ids`.
async fn read_holdings(conn: &mut AnyConnection, ids: &[i64], registry: &mut Registry) -> crate::Result<()> {
    let sql = format!(
        "SELECT id, holder_id, issuer, serial, medium, card_id, device_id, status FROM certificates WHERE holder_id IN ({})",
        value_list(ids.len())
    );
    let mut query = sqlx::query(&sql);
    for id in ids {
        query = query.bind(*id);
    }
    for row in query.fetch_all(&mut *conn).await? {
        let holder: i64 = row.try_get("holder_id")?;
        registry.held.entry(holder).or_default().push(Held {
            id: row.try_get("id")?,
            issuer: crate::rows::issuer(&row, "issuer")?,
            serial: crate::rows::serial(&row, "serial")?,
            medium: word(&row, "medium")?,
            card_id: row.try_get("card_id")?,
            device_id: opt_text(&row, "device_id")?,
            status: word(&row, "status")?,
        });
    }
    let n = ids.len();
    let sql = format!(
        "SELECT holder_id, MAX(id) AS id FROM cards WHERE holder_id IN ({}) AND status <> ${} GROUP BY holder_id",
        value_list(n),
        n + 1
    );
    let mut query = sqlx::query(&sql);
    for id in ids {
        query = query.bind(*id);
    }
    for row in query.bind(CardStatus::Revoked.as_str()).fetch_all(&mut *conn).await? {
        registry.current_cards.insert(row.try_get("holder_id")?, row.try_get("id")?);
    }
    Ok(())
}
