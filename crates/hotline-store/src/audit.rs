//! The append-only, hash-chained audit log, and the stream of status changes
//! that comes with it.
//!
//! A transaction appends its record and its changes unsealed
//! (`audit_pending`, `status_changes_pending`), as ordinary inserts that take
//! no lock anyone else waits for, so commits no longer queue behind one row.
//! The sealer ([`crate::sealer`]) chains them after commit.

use hotline_core::audit::{AuditFields, GENESIS, chain_hash};
use sqlx::{Any, Row, Transaction};

use crate::Store;
use crate::rows::{opt_instant, text};

/// A certificate's new status, to be given a stream position when it is sealed.
#[derive(Debug, Clone)]
pub(crate) struct NewStatusChange {
    pub issuer: hotline_core::IssuerId,
    pub serial: hotline_core::Serial,
    pub status: hotline_core::CertificateStatus,
    pub reason: Option<hotline_core::RevocationReason>,
}

/// One record to append. `details` is JSON and must never hold personal data.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    pub at: &'a str,
    pub actor: &'a str,
    pub action: &'a str,
    pub subject: &'a str,
    pub details: String,
}

/// Appends one audit record and the status changes it covers, unsealed, in
/// the caller's transaction: they commit with it or not at all.
pub(crate) async fn append(
    tx: &mut Transaction<'static, Any>,
    entry: &AuditEntry<'_>,
    changes: &[NewStatusChange],
) -> crate::Result<()> {
    append_on::<Any>(&mut **tx, entry, changes).await
}

/// [`append`] on a connection of any database, for the bulk import, which
/// holds a PostgreSQL connection of its own (`COPY` is not in `Any`).
pub(crate) async fn append_on<DB>(
    conn: &mut DB::Connection,
    entry: &AuditEntry<'_>,
    changes: &[NewStatusChange],
) -> crate::Result<()>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::query::<DB>("INSERT INTO audit_pending (at, actor, action, subject, details) VALUES ($1, $2, $3, $4, $5)")
        .bind(entry.at)
        .bind(entry.actor)
        .bind(entry.action)
        .bind(entry.subject)
        .bind(entry.details.as_str())
        .execute(&mut *conn)
        .await?;
    if changes.is_empty() {
        return Ok(());
    }
    // One statement for every change: a card's two certificates are one round trip.
    let values: Vec<String> = (0..changes.len())
        .map(|i| format!("(${}, ${}, ${}, ${}, ${})", 5 * i + 1, 5 * i + 2, 5 * i + 3, 5 * i + 4, 5 * i + 5))
        .collect();
    let sql = format!(
        "INSERT INTO status_changes_pending (issuer, serial, status, reason, since) VALUES {}",
        values.join(", ")
    );
    let mut insert = sqlx::query::<DB>(&sql);
    for change in changes {
        insert = insert
            .bind(change.issuer.as_str())
            .bind(change.serial.as_str())
            .bind(change.status.as_str())
            .bind(change.reason.map(|r| r.as_str()))
            .bind(entry.at);
    }
    insert.execute(&mut *conn).await?;
    Ok(())
}

/// The first place where the chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditBreak {
    /// The sequence number of the first bad or missing record.
    pub seq: i64,
    pub problem: String,
}

/// The outcome of a verification: how many sealed records were checked, the
/// first break, and the records still waiting to be sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    pub records: i64,
    pub first_break: Option<AuditBreak>,
    /// Records committed but not chained yet.
    pub unsealed: i64,
    /// When the oldest of them was recorded.
    pub oldest_unsealed: Option<chrono::DateTime<chrono::Utc>>,
}

const PAGE: i64 = 5_000;

impl Store {
    /// Walks the whole sealed chain in order and recomputes every hash; counts
    /// the records that wait to be sealed.
    pub async fn verify_audit(&self) -> crate::Result<AuditReport> {
        let (unsealed, oldest_unsealed) = self.unsealed_audit().await?;
        let report = self.verify_sealed_chain().await?;
        Ok(AuditReport { unsealed, oldest_unsealed, ..report })
    }

    /// How many audit records wait to be sealed, and when the oldest was recorded.
    pub async fn unsealed_audit(&self) -> crate::Result<(i64, Option<chrono::DateTime<chrono::Utc>>)> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n, MIN(at) AS oldest FROM audit_pending").fetch_one(self.pool()).await?;
        Ok((row.try_get("n")?, opt_instant(&row, "oldest")?))
    }

    async fn verify_sealed_chain(&self) -> crate::Result<AuditReport> {
        let mut expected_seq = 1i64;
        let mut prev = GENESIS.to_owned();
        loop {
            let rows = sqlx::query(
                "SELECT seq, at, actor, action, subject, details, prev_hash, hash
                   FROM audit_log WHERE seq >= $1 ORDER BY seq LIMIT $2",
            )
            .bind(expected_seq)
            .bind(PAGE)
            .fetch_all(self.pool())
            .await?;
            for row in &rows {
                let seq: i64 = row.try_get("seq")?;
                let broken = |problem: String| {
                    Ok(AuditReport {
                        records: expected_seq - 1,
                        first_break: Some(AuditBreak { seq: expected_seq, problem }),
                        unsealed: 0,
                        oldest_unsealed: None,
                    })
                };
                if seq != expected_seq {
                    return broken(format!("record {expected_seq} is missing (the next record is {seq})"));
                }
                if text(row, "prev_hash")? != prev {
                    return broken(format!("record {seq} does not chain to record {}", seq - 1));
                }
                let (at, actor, action, subject, details) = (
                    text(row, "at")?,
                    text(row, "actor")?,
                    text(row, "action")?,
                    text(row, "subject")?,
                    text(row, "details")?,
                );
                let fields =
                    AuditFields { seq, at: &at, actor: &actor, action: &action, subject: &subject, details: &details };
                let hash = chain_hash(&prev, &fields);
                if hash != text(row, "hash")? {
                    return broken(format!("record {seq} was altered: its content does not match its hash"));
                }
                prev = hash;
                expected_seq += 1;
            }
            if (rows.len() as i64) < PAGE {
                break;
            }
        }
        let checked = expected_seq - 1;
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_one(self.pool()).await?;
        let head_seq: i64 = head.try_get("seq")?;
        if head_seq != checked || text(&head, "hash")? != prev {
            return Ok(AuditReport {
                records: checked,
                first_break: Some(AuditBreak {
                    seq: checked + 1,
                    problem: format!(
                        "the chain ends at record {checked} but its head says {head_seq}: records were removed"
                    ),
                }),
                unsealed: 0,
                oldest_unsealed: None,
            });
        }
        Ok(AuditReport { records: checked, first_break: None, unsealed: 0, oldest_unsealed: None })
    }
}
