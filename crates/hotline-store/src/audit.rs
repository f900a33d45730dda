//! The append-only, hash-chained audit log.
//!
//! Appends lock the single `audit_head` row, so records get consecutive
//! sequence numbers and each one chains to the one committed before it, even
//! under concurrent transactions. The append is the last write of a
//! transaction, to hold that lock as briefly as possible.

use hotline_core::audit::{AuditFields, GENESIS, chain_hash};
use sqlx::{Any, Row, Transaction};

use crate::Store;
use crate::rows::text;

/// A certificate's new status, to be given a stream position by [`append`].
#[derive(Debug, Clone)]
pub(crate) struct NewStatusChange {
    pub issuer: String,
    pub serial: String,
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

/// Appends one audit record and the status changes it covers.
///
/// Incrementing the head both locks it (until commit) and allocates the
/// record's sequence number and the changes' stream positions; the head still
/// holds the previous record's hash. Because the lock is held until commit,
/// records and changes commit in the order of their numbers.
pub(crate) async fn append(
    tx: &mut Transaction<'static, Any>,
    entry: &AuditEntry<'_>,
    changes: &[NewStatusChange],
) -> crate::Result<i64> {
    append_on::<Any>(&mut **tx, entry, changes).await
}

/// [`append`] on a connection of any database, for the bulk import, which
/// holds a PostgreSQL connection of its own (`COPY` is not in `Any`).
pub(crate) async fn append_on<DB>(
    conn: &mut DB::Connection,
    entry: &AuditEntry<'_>,
    changes: &[NewStatusChange],
) -> crate::Result<i64>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q str: sqlx::ColumnIndex<DB::Row>,
{
    let head = reserve::<DB>(conn, changes.len() as i64).await?;
    for (position, change) in (head.first_position..).zip(changes) {
        sqlx::query::<DB>(
            "INSERT INTO status_changes (position, issuer, serial, status, reason, since) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(position)
        .bind(change.issuer.as_str())
        .bind(change.serial.as_str())
        .bind(change.status.as_str())
        .bind(change.reason.map(|r| r.as_str()))
        .bind(entry.at)
        .execute(&mut *conn)
        .await?;
    }
    seal::<DB>(conn, &head, entry).await
}

/// The head taken for one record: its sequence number, the hash it chains
/// from, and the first of the stream positions reserved for its changes.
pub(crate) struct Reserved {
    seq: i64,
    prev_hash: String,
    pub first_position: i64,
}

/// Takes the head (locked until commit) for one record covering `changes` status changes.
pub(crate) async fn reserve<DB>(conn: &mut DB::Connection, changes: i64) -> crate::Result<Reserved>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q str: sqlx::ColumnIndex<DB::Row>,
{
    let head = sqlx::query::<DB>(
        "UPDATE audit_head SET seq = seq + 1, change_position = change_position + $1 WHERE id = 1
         RETURNING seq, hash, change_position",
    )
    .bind(changes)
    .fetch_one(&mut *conn)
    .await?;
    let last_position: i64 = head.try_get("change_position")?;
    Ok(Reserved {
        seq: head.try_get("seq")?,
        prev_hash: head.try_get("hash")?,
        first_position: last_position - changes + 1,
    })
}

/// Appends the record the head was taken for, chained to the one before.
pub(crate) async fn seal<DB>(conn: &mut DB::Connection, head: &Reserved, entry: &AuditEntry<'_>) -> crate::Result<i64>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let fields = AuditFields {
        seq: head.seq,
        at: entry.at,
        actor: entry.actor,
        action: entry.action,
        subject: entry.subject,
        details: &entry.details,
    };
    let hash = chain_hash(&head.prev_hash, &fields);
    sqlx::query::<DB>(
        "INSERT INTO audit_log (seq, at, actor, action, subject, details, prev_hash, hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(head.seq)
    .bind(entry.at)
    .bind(entry.actor)
    .bind(entry.action)
    .bind(entry.subject)
    .bind(entry.details.as_str())
    .bind(head.prev_hash.as_str())
    .bind(hash.as_str())
    .execute(&mut *conn)
    .await?;
    sqlx::query::<DB>("UPDATE audit_head SET hash = $1 WHERE id = 1").bind(hash.as_str()).execute(&mut *conn).await?;
    Ok(head.seq)
}

/// The first place where the chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditBreak {
    /// The sequence number of the first bad or missing record.
    pub seq: i64,
    pub problem: String,
}

/// The outcome of a verification: how many records were checked, and the first break.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    pub records: i64,
    pub first_break: Option<AuditBreak>,
}

const PAGE: i64 = 5_000;

impl Store {
    /// Walks the whole chain in order and recomputes every hash.
    pub async fn verify_audit(&self) -> crate::Result<AuditReport> {
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
            });
        }
        Ok(AuditReport { records: checked, first_break: None })
    }
}
