//! The bulk path on PostgreSQL: holders, cards and certificates sent with
//! `COPY` straight into their tables, in one transaction. The ids are
//! reserved first from the tables' own sequences, so each certificate row
//! can name its holder and card without a round trip per row; the indexes and
//! constraints check every row as an `INSERT` would, and a key already taken
//! fails the whole transaction (the caller then takes the slower path).

use chrono::{DateTime, Utc};
use hotline_core::{CardStatus, CertificateStatus, Medium};
use sqlx::{Connection, PgConnection, Postgres};

use crate::audit::AuditEntry;
use crate::registry::Bulk;
use crate::{NewHolder, Store, format_instant};

/// A row of `COPY … FROM STDIN` text format: tab-separated, `\N` for NULL.
/// Every value is printable ASCII without tabs, so a backslash is all there is to escape.
pub(crate) fn row(out: &mut String, fields: &[Option<&str>]) {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push('\t');
        }
        match field {
            None => out.push_str("\\N"),
            Some(value) if value.contains('\\') => out.push_str(&value.replace('\\', "\\\\")),
            Some(value) => out.push_str(value),
        }
    }
    out.push('\n');
}

/// How the ids of new rows are taken from their table's sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reserve {
    /// One `nextval` per id: safe beside any other writer.
    EachId,
    /// The sequence moved past all of them in one step: only for a caller
    /// whose transaction holds the table, so no other writer takes ids
    /// meanwhile (the primary key would refuse an id taken twice).
    InOneStep,
}

async fn reserve_ids(tx: &mut PgConnection, table: &str, n: usize, how: Reserve) -> crate::Result<Vec<i64>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let sequence = format!("pg_get_serial_sequence('{table}', 'id')");
    match how {
        Reserve::EachId => {
            let sql = format!("SELECT nextval({sequence}) FROM generate_series(1, $1)");
            Ok(sqlx::query_scalar(&sql).bind(n as i64).fetch_all(&mut *tx).await?)
        }
        Reserve::InOneStep => {
            let sql = format!("SELECT setval({sequence}, nextval({sequence}) + $1 - 1)");
            let last: i64 = sqlx::query_scalar(&sql).bind(n as i64).fetch_one(&mut *tx).await?;
            Ok((last - n as i64 + 1..=last).collect())
        }
    }
}

pub(crate) async fn copy(tx: &mut PgConnection, statement: &str, rows: String) -> crate::Result<()> {
    let mut copy = tx.copy_in_raw(statement).await?;
    copy.send(rows.into_bytes()).await?;
    copy.finish().await?;
    Ok(())
}

/// Registers `holders`, none registered yet, and appends `audit` in the same transaction.
pub(crate) async fn register(
    store: &Store,
    holders: &[NewHolder],
    now: DateTime<Utc>,
    audit: Option<&AuditEntry<'_>>,
) -> crate::Result<Bulk> {
    let mut conn = PgConnection::connect(&store.url).await?;
    let mut tx = conn.begin().await?;
    copy_holders(&mut tx, holders, &format_instant(now), Reserve::EachId).await?;
    if let Some(entry) = audit {
        crate::audit::append_on::<Postgres>(&mut tx, entry, &[]).await?;
    }
    tx.commit().await.map_err(crate::Error::from_commit)?;
    Ok(Bulk::Added(holders.len()))
}

/// `COPY`s `holders` with their cards and certificates (all good, since
/// `now`) in the caller's transaction; returns the holders' ids, in order.
pub(crate) async fn copy_holders(
    conn: &mut PgConnection,
    holders: &[NewHolder],
    now: &str,
    reserve: Reserve,
) -> crate::Result<Vec<i64>> {
    let holder_ids = reserve_ids(conn, "holders", holders.len(), reserve).await?;
    let cards = holders.iter().filter(|h| !h.card.is_empty()).count();
    let card_ids = reserve_ids(conn, "cards", cards, reserve).await?;
    // Holding the table, the certificates' ids are taken in one step as well and sent with
    // the rows, which spares the sequence a call per row; beside other writers each row
    // takes its own from the column's default.
    let mut certificate_ids = match reserve {
        Reserve::InOneStep => {
            let n = holders
                .iter()
                .map(|h| h.card.len() + h.smartphones.iter().map(|p| p.certificates.len()).sum::<usize>())
                .sum();
            Some(reserve_ids(conn, "certificates", n, reserve).await?.into_iter())
        }
        Reserve::EachId => None,
    };
    let mut certificate_id = |rows: &mut String| {
        if let Some(id) = certificate_ids.as_mut().and_then(Iterator::next) {
            rows.push_str(&id.to_string());
            rows.push('\t');
        }
    };
    let (mut holder_rows, mut card_rows, mut certificate_rows) = (String::new(), String::new(), String::new());
    let mut cards = card_ids.iter();
    let (active, good) = (CardStatus::Active.as_str(), CertificateStatus::Good.as_str());
    for (h, id) in holders.iter().zip(&holder_ids) {
        let holder = id.to_string();
        let dob = h.date_of_birth.format("%Y-%m-%d").to_string();
        row(&mut holder_rows, &[Some(&holder), Some(h.fingerprint.as_str()), Some(&dob)]);
        if !h.card.is_empty() {
            let card = cards.next().map(i64::to_string);
            row(&mut card_rows, &[card.as_deref(), Some(&holder), Some(active), Some(now)]);
            for c in &h.card {
                let fields = [c.issuer.as_str(), c.serial.as_str(), c.kind.as_str(), Medium::Card.as_str()];
                certificate_id(&mut certificate_rows);
                row(&mut certificate_rows, &certificate(&holder, fields, card.as_deref(), None, good, now));
            }
        }
        for phone in &h.smartphones {
            for c in &phone.certificates {
                let fields = [c.issuer.as_str(), c.serial.as_str(), c.kind.as_str(), Medium::Smartphone.as_str()];
                let device = Some(phone.device_id.as_str());
                certificate_id(&mut certificate_rows);
                row(&mut certificate_rows, &certificate(&holder, fields, None, device, good, now));
            }
        }
    }
    copy(conn, "COPY holders (id, number_hmac, date_of_birth) FROM STDIN", holder_rows).await?;
    copy(conn, "COPY cards (id, holder_id, status, status_since) FROM STDIN", card_rows).await?;
    let columns = "holder_id, issuer, serial, kind, medium, card_id, device_id, status, since";
    let statement = match reserve {
        Reserve::InOneStep => format!("COPY certificates (id, {columns}) FROM STDIN"),
        Reserve::EachId => format!("COPY certificates ({columns}) FROM STDIN"),
    };
    copy(conn, &statement, certificate_rows).await?;
    Ok(holder_ids)
}

/// A certificate row's fields in `COPY certificates` column order.
fn certificate<'a>(
    holder: &'a str,
    [issuer, serial, kind, medium]: [&'a str; 4],
    card: Option<&'a str>,
    device: Option<&'a str>,
    status: &'a str,
    since: &'a str,
) -> [Option<&'a str>; 9] {
    [Some(holder), Some(issuer), Some(serial), Some(kind), Some(medium), card, device, Some(status), Some(since)]
}
