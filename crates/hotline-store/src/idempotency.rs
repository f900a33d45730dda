//! Idempotency records: the first answer to a (token, Idempotency-Key) pair,
//! saved in the same transaction as the work it answers for.
//!
//! A request claims its key at the start of its transaction. On PostgreSQL a
//! concurrent request with the same key blocks on that claim until the first
//! commits, then finds the saved answer; on SQLite writers are serialised by
//! `BEGIN IMMEDIATE`. Either way the work happens once.

use sqlx::{Any, Row, Transaction};

use crate::Store;
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

/// What a claim found.
pub(crate) enum Claimed {
    /// The key is new: this transaction owns it.
    Fresh,
    /// The key was used before for the same request: its first answer.
    Replay(SavedResponse),
    /// The key was used before for a different request.
    Reused,
}

pub(crate) async fn claim(
    tx: &mut Transaction<'static, Any>,
    claim: &IdempotencyClaim,
    now: &str,
) -> anyhow::Result<Claimed> {
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
        return Ok(Claimed::Fresh);
    }
    let row = sqlx::query(
        "SELECT request_fingerprint, status_code, body FROM idempotency WHERE token_id = $1 AND idempotency_key = $2",
    )
    .bind(&claim.token_id)
    .bind(&claim.key)
    .fetch_one(&mut **tx)
    .await?;
    classify(&row, claim)
}

fn classify(row: &sqlx::any::AnyRow, claim: &IdempotencyClaim) -> anyhow::Result<Claimed> {
    if text(row, "request_fingerprint")? != claim.request_fingerprint {
        return Ok(Claimed::Reused);
    }
    let status_code: i64 = row.try_get("status_code")?;
    Ok(Claimed::Replay(SavedResponse { status_code: u16::try_from(status_code)?, body: text(row, "body")? }))
}

pub(crate) async fn save(
    tx: &mut Transaction<'static, Any>,
    claim: &IdempotencyClaim,
    response: &SavedResponse,
) -> anyhow::Result<()> {
    sqlx::query("UPDATE idempotency SET status_code = $1, body = $2 WHERE token_id = $3 AND idempotency_key = $4")
        .bind(i64::from(response.status_code))
        .bind(&response.body)
        .bind(&claim.token_id)
        .bind(&claim.key)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// What a request's key already answered, read outside any transaction: the
/// fast path for a retry, which then needs no rule decision and no lock.
pub enum Previous {
    None,
    Replay(SavedResponse),
    Reused,
}

impl Store {
    pub async fn previous_answer(&self, claim: &IdempotencyClaim) -> anyhow::Result<Previous> {
        let row = sqlx::query(
            "SELECT request_fingerprint, status_code, body FROM idempotency WHERE token_id = $1 AND idempotency_key = $2",
        )
        .bind(&claim.token_id)
        .bind(&claim.key)
        .fetch_optional(self.pool())
        .await?;
        Ok(match row {
            None => Previous::None,
            Some(row) => match classify(&row, claim)? {
                Claimed::Replay(saved) => Previous::Replay(saved),
                Claimed::Reused => Previous::Reused,
                Claimed::Fresh => Previous::None,
            },
        })
    }
}
