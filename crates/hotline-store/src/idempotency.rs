//! Idempotency records: the first answer to a (token, Idempotency-Key) pair,
//! saved in the same transaction as the work it answers for.
//!
//! A request claims its key at the start of its transaction. On PostgreSQL a
//! concurrent request with the same key blocks on that claim until the first
//! commits, then finds the saved answer; on SQLite writers are serialised by
//! `BEGIN IMMEDIATE`. Either way the work happens once.

use sqlx::{Any, Row, Transaction};

use crate::Store;
use crate::error::bail;
use crate::rows::text;

/// The key a request presents and the keyed digest of what it asked.
#[derive(Debug, Clone)]
pub struct IdempotencyClaim {
    pub token_id: String,
    pub key: String,
    pub request_fingerprint: String,
}

/// An answer saved for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedResponse {
    pub status_code: u16,
    pub body: String,
}

/// What a key answered before.
#[derive(Debug)]
pub enum Previous {
    /// Nothing: the key is new (after a claim: this transaction owns it).
    None,
    /// The key was used before for the same request: its first answer.
    Replay(SavedResponse),
    /// The key was used before for a different request.
    Reused,
}

/// Claims a key inside the transaction that will answer for it.
pub(crate) async fn claim(
    tx: &mut Transaction<'static, Any>,
    claim: &IdempotencyClaim,
    now: &str,
) -> crate::Result<Previous> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency (token_id, idempotency_key, request_fingerprint, status_code, body, created_at)
         VALUES ($1, $2, $3, 0, '', $4) ON CONFLICT DO NOTHING",
    )
    .bind(&claim.token_id)
    .bind(&claim.key)
    .bind(&claim.request_fingerprint)
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(Previous::None);
    }
    match previous(&mut **tx, claim).await? {
        // The insert conflicted, so the row exists; finding none would mean losing the key's ownership.
        Previous::None => bail!("idempotency key conflicted but no record was found"),
        found => Ok(found),
    }
}

/// The record under a request's key, classified against the request.
async fn previous<'c, E>(executor: E, claim: &IdempotencyClaim) -> crate::Result<Previous>
where
    E: sqlx::Executor<'c, Database = Any>,
{
    let row = sqlx::query(
        "SELECT request_fingerprint, status_code, body FROM idempotency WHERE token_id = $1 AND idempotency_key = $2",
    )
    .bind(&claim.token_id)
    .bind(&claim.key)
    .fetch_optional(executor)
    .await?;
    let Some(row) = row else { return Ok(Previous::None) };
    if text(&row, "request_fingerprint")? != claim.request_fingerprint {
        return Ok(Previous::Reused);
    }
    let status_code: i64 = row.try_get("status_code")?;
    Ok(Previous::Replay(SavedResponse {
        status_code: u16::try_from(status_code).map_err(anyhow::Error::from)?,
        body: text(&row, "body")?,
    }))
}

pub(crate) async fn save(
    tx: &mut Transaction<'static, Any>,
    claim: &IdempotencyClaim,
    response: &SavedResponse,
) -> crate::Result<()> {
    sqlx::query("UPDATE idempotency SET status_code = $1, body = $2 WHERE token_id = $3 AND idempotency_key = $4")
        .bind(i64::from(response.status_code))
        .bind(&response.body)
        .bind(&claim.token_id)
        .bind(&claim.key)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Store {
    /// What a request's key already answered, read outside any transaction: the
    /// fast path for a retry, which then needs no rule decision and no lock.
    pub async fn previous_answer(&self, claim: &IdempotencyClaim) -> crate::Result<Previous> {
        previous(self.pool(), claim).await
    }
}
