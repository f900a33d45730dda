//! The CA sync worker's side of the outbox: leasing due events, settling
//! them after the CA answers, dead letters and re-queuing them.
//!
//! An event is claimed only when every earlier event of its certificate is
//! done, so the CA sees a certificate's changes in the order they were made.
//! A dead event therefore holds back the later events of its certificate
//! (and only those) until it is re-queued: sending a release after a hold
//! that never arrived would only be refused.

use chrono::{DateTime, Utc};
use hotline_core::{CaAction, CaSync, OutboxState, RevocationReason};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::audit::{self, AuditEntry};
use crate::rows::{instant, opt_instant, opt_text, text, word};
use crate::{Backend, Store, format_instant};

/// One outbox event, as leased to a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEvent {
    pub seq: i64,
    pub event_id: String,
    pub certificate_id: i64,
    pub issuer: String,
    pub serial: String,
    pub action: CaAction,
    pub reason: RevocationReason,
    pub suspension_id: Option<String>,
    /// Attempts so far, this one included.
    pub attempts: i64,
    pub created_at: DateTime<Utc>,
    /// The trace of the transaction that wrote the event, for its delivery to continue.
    pub traceparent: Option<String>,
}

/// A leased row that does not read as an event (say, a reason written by
/// hand that the vocabulary does not know). It is dead-lettered rather than
/// sent, and holds back nothing else but its certificate's later events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableEvent {
    pub seq: i64,
    pub event_id: String,
    pub suspension_id: Option<String>,
    pub attempts: i64,
    /// Why it does not read.
    pub error: String,
}

/// What one claim leased.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leased {
    /// In outbox order.
    pub events: Vec<OutboxEvent>,
    pub unreadable: Vec<UnreadableEvent>,
}

/// The outbox at a glance, for metrics and the status page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxSummary {
    pub pending: i64,
    pub dead: i64,
    /// When the oldest event not yet delivered was committed.
    pub oldest_pending: Option<DateTime<Utc>>,
}

/// An event the worker gave up on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub event_id: String,
    pub issuer: String,
    pub serial: String,
    pub action: CaAction,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub dead_at: Option<DateTime<Utc>>,
}

/// `state = '…'` for an outbox state, written into a query's text rather than
/// bound: the outbox's indexes (migration 0008) hold only the pending, the
/// dead or the done events, and the planner uses such a partial index only
/// for a condition it can match to the index's own.
pub(crate) fn in_state(state: OutboxState) -> String {
    format!("state = '{state}'")
}

/// The due events, in the order they fell due. The query reads the pending
/// events' index from its start in that order and stops at its batch, so a
/// claim costs the batch (and the events leased to others, still at the
/// front), never the history of delivered events; a certificate's events
/// still go in order, each waiting for the ones before it.
pub(crate) fn claimable() -> String {
    let (pending, done) = (in_state(OutboxState::Pending), OutboxState::Done);
    format!(
        "SELECT o.seq FROM outbox o
          WHERE o.{pending} AND o.next_attempt_at <= $2
            AND (o.leased_until IS NULL OR o.leased_until <= $2)
            AND NOT EXISTS (SELECT 1 FROM outbox e
                             WHERE e.certificate_id = o.certificate_id AND e.seq < o.seq AND e.state <> '{done}')
          ORDER BY o.next_attempt_at, o.seq
          LIMIT $4"
    )
}

/// The claim itself: leases the due events [`claimable`] finds.
pub(crate) fn claim(backend: Backend) -> String {
    let select = match backend {
        Backend::Postgres => format!("{} FOR UPDATE OF o SKIP LOCKED", claimable()),
        Backend::Sqlite => claimable(),
    };
    format!(
        "UPDATE outbox SET leased_by = $1, leased_until = $3, attempts = attempts + 1
          WHERE seq IN ({select})
         RETURNING seq, event_id, certificate_id, issuer, serial, action, reason, suspension_id, attempts, created_at, traceparent"
    )
}

/// The backlog at a glance: each figure read from the index of its state.
pub(crate) fn backlog() -> String {
    let (pending, dead) = (in_state(OutboxState::Pending), in_state(OutboxState::Dead));
    format!(
        "SELECT (SELECT COUNT(*) FROM outbox WHERE {pending}) AS pending,
                (SELECT MIN(created_at) FROM outbox WHERE {pending}) AS oldest,
                (SELECT COUNT(*) FROM outbox WHERE {dead}) AS dead"
    )
}

/// The latest dead letters, newest first.
pub(crate) fn latest_dead() -> String {
    format!(
        "SELECT event_id, issuer, serial, action, attempts, last_error, dead_at FROM outbox
          WHERE {} ORDER BY seq DESC LIMIT $1",
        in_state(OutboxState::Dead)
    )
}

fn leased_row(row: &AnyRow) -> crate::Result<Result<OutboxEvent, UnreadableEvent>> {
    let seq: i64 = row.try_get("seq")?;
    let event_id = text(row, "event_id")?;
    let suspension_id = opt_text(row, "suspension_id")?;
    let attempts: i64 = row.try_get("attempts")?;
    let change = word::<CaAction>(row, "action").and_then(|a| Ok((a, word::<RevocationReason>(row, "reason")?)));
    let (action, reason) = match change {
        Ok(change) => change,
        Err(e) => return Ok(Err(UnreadableEvent { seq, event_id, suspension_id, attempts, error: format!("{e:#}") })),
    };
    Ok(Ok(OutboxEvent {
        seq,
        event_id,
        certificate_id: row.try_get("certificate_id")?,
        issuer: text(row, "issuer")?,
        serial: text(row, "serial")?,
        action,
        reason,
        suspension_id,
        attempts,
        created_at: instant(row, "created_at")?,
        traceparent: opt_text(row, "traceparent")?,
    }))
}

impl Store {
    /// Leases up to `limit` due events to `owner` until `until`, counting an attempt on each.
    ///
    /// On PostgreSQL rows another worker is claiming are skipped (`SKIP
    /// LOCKED`) rather than waited for; SQLite's write lock admits one claim
    /// at a time.
    pub async fn claim_outbox(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: i64,
    ) -> crate::Result<Leased> {
        let sql = claim(self.backend());
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(&sql)
            .bind(owner)
            .bind(format_instant(now))
            .bind(format_instant(until))
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await.map_err(crate::Error::from_commit)?;
        let mut leased = Leased::default();
        for row in &rows {
            match leased_row(row)? {
                Ok(event) => leased.events.push(event),
                Err(unreadable) => leased.unreadable.push(unreadable),
            }
        }
        leased.events.sort_by_key(|e| e.seq);
        Ok(leased)
    }

    /// Extends `owner`'s leases on the events `seqs` that are still pending to
    /// `until` (a heartbeat while they are being sent); returns how many.
    ///
    /// On PostgreSQL a row another transaction has locked is skipped, not
    /// waited for: it is being settled (its lease no longer matters), or it is
    /// renewed on the next beat. Waiting would hold the renewal behind a
    /// settling transaction, and every settle after it behind the renewal.
    pub async fn renew_leases(&self, owner: &str, seqs: &[i64], until: DateTime<Utc>) -> crate::Result<u64> {
        if seqs.is_empty() {
            return Ok(0);
        }
        let list: Vec<String> = (0..seqs.len()).map(|i| format!("${}", i + 4)).collect();
        let mine =
            format!("SELECT seq FROM outbox WHERE leased_by = $2 AND state = $3 AND seq IN ({})", list.join(", "));
        let mine = match self.backend() {
            Backend::Postgres => format!("{mine} FOR UPDATE SKIP LOCKED"),
            Backend::Sqlite => mine,
        };
        let sql = format!("UPDATE outbox SET leased_until = $1 WHERE seq IN ({mine})");
        let mut query = sqlx::query(&sql).bind(format_instant(until)).bind(owner).bind(OutboxState::Pending.as_str());
        for seq in seqs {
            query = query.bind(*seq);
        }
        Ok(query.execute(self.pool()).await?.rows_affected())
    }

    /// Marks an event delivered; its suspension is confirmed once all its events are.
    /// Returns false if the event was already settled (another worker got there first).
    #[tracing::instrument(name = "transaction outbox_done", skip_all, fields(otel.kind = "client", db.system.name = self.backend().system_name()))]
    pub async fn outbox_done(&self, event: &OutboxEvent, now: DateTime<Utc>) -> crate::Result<bool> {
        let now = format_instant(now);
        let mut tx = self.begin_write().await?;
        lock_suspension(&mut tx, event.suspension_id.as_deref()).await?;
        let done = sqlx::query(
            "UPDATE outbox SET state = $3, done_at = $2, leased_by = NULL, leased_until = NULL, last_error = NULL
              WHERE seq = $1 AND state = $4",
        )
        .bind(event.seq)
        .bind(&now)
        .bind(OutboxState::Done.as_str())
        .bind(OutboxState::Pending.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if let (true, Some(sid)) = (done, &event.suspension_id) {
            sqlx::query(
                "UPDATE suspensions SET ca_sync = $3, ca_sync_at = $2
                  WHERE id = $1 AND ca_sync = $4
                    AND NOT EXISTS (SELECT 1 FROM outbox WHERE suspension_id = $1 AND state <> $5)",
            )
            .bind(sid)
            .bind(&now)
            .bind(CaSync::Confirmed.as_str())
            .bind(CaSync::Pending.as_str())
            .bind(OutboxState::Done.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await.map_err(crate::Error::from_commit)?;
        Ok(done)
    }

    /// Gives the event back with an error, to be tried again at `next_attempt`.
    #[tracing::instrument(name = "transaction outbox_retry_later", skip_all, fields(otel.kind = "client", db.system.name = self.backend().system_name()))]
    pub async fn outbox_retry_later(
        &self,
        event: &OutboxEvent,
        next_attempt: DateTime<Utc>,
        error: &str,
    ) -> crate::Result<()> {
        sqlx::query(
            "UPDATE outbox SET next_attempt_at = $2, last_error = $3, leased_by = NULL, leased_until = NULL
              WHERE seq = $1 AND state = $4",
        )
        .bind(event.seq)
        .bind(format_instant(next_attempt))
        .bind(error)
        .bind(OutboxState::Pending.as_str())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Dead-letters an event: kept with its error, audited, and its suspension marked failed.
    #[tracing::instrument(name = "transaction outbox_dead", skip_all, fields(otel.kind = "client", db.system.name = self.backend().system_name()))]
    pub async fn outbox_dead(&self, event: &OutboxEvent, now: DateTime<Utc>, error: &str) -> crate::Result<bool> {
        let details = serde_json::json!({
            "issuer": event.issuer,
            "serial": event.serial,
            "action": event.action.as_str(),
            "attempts": event.attempts,
            "error": error,
        });
        let dead = Dead { seq: event.seq, event_id: &event.event_id, suspension_id: event.suspension_id.as_deref() };
        self.dead_letter(&dead, now, error, details).await
    }

    /// Dead-letters a leased row that does not read as an event.
    pub async fn outbox_dead_unreadable(&self, event: &UnreadableEvent, now: DateTime<Utc>) -> crate::Result<bool> {
        let error = format!("the outbox row does not read as an event: {}", event.error);
        let details = serde_json::json!({"attempts": event.attempts, "error": error});
        let dead = Dead { seq: event.seq, event_id: &event.event_id, suspension_id: event.suspension_id.as_deref() };
        self.dead_letter(&dead, now, &error, details).await
    }

    async fn dead_letter(
        &self,
        dead: &Dead<'_>,
        now: DateTime<Utc>,
        error: &str,
        details: serde_json::Value,
    ) -> crate::Result<bool> {
        let now = format_instant(now);
        let mut tx = self.begin_write().await?;
        lock_suspension(&mut tx, dead.suspension_id).await?;
        let settled = sqlx::query(
            "UPDATE outbox SET state = $4, dead_at = $2, last_error = $3, leased_by = NULL, leased_until = NULL
              WHERE seq = $1 AND state = $5",
        )
        .bind(dead.seq)
        .bind(&now)
        .bind(error)
        .bind(OutboxState::Dead.as_str())
        .bind(OutboxState::Pending.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !settled {
            tx.rollback().await?;
            return Ok(false);
        }
        if let Some(sid) = dead.suspension_id {
            sqlx::query("UPDATE suspensions SET ca_sync = $3, ca_sync_at = $2 WHERE id = $1")
                .bind(sid)
                .bind(&now)
                .bind(CaSync::Failed.as_str())
                .execute(&mut *tx)
                .await?;
        }
        let entry = AuditEntry {
            at: &now,
            actor: "ca-sync-worker",
            action: "outbox.dead_lettered",
            subject: dead.event_id,
            details: details.to_string(),
        };
        audit::append(&mut tx, &entry, &[]).await?;
        tx.commit().await.map_err(crate::Error::from_commit)?;
        Ok(true)
    }

    /// Puts every dead letter back in the queue, due now; returns how many.
    pub async fn retry_dead_letters(&self, actor: &str, now: DateTime<Utc>) -> crate::Result<u64> {
        let now = format_instant(now);
        let mut tx = self.begin_write().await?;
        let dead = in_state(OutboxState::Dead);
        let ids: Vec<String> = sqlx::query_scalar(&format!("SELECT event_id FROM outbox WHERE {dead} ORDER BY seq"))
            .fetch_all(&mut *tx)
            .await?;
        if ids.is_empty() {
            tx.rollback().await?;
            return Ok(0);
        }
        sqlx::query(&format!(
            "UPDATE suspensions SET ca_sync = $1, ca_sync_at = NULL
              WHERE id IN (SELECT suspension_id FROM outbox WHERE {dead} AND suspension_id IS NOT NULL)"
        ))
        .bind(CaSync::Pending.as_str())
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "UPDATE outbox SET state = $1, attempts = 0, next_attempt_at = $2, dead_at = NULL WHERE {dead}"
        ))
        .bind(OutboxState::Pending.as_str())
        .bind(&now)
        .execute(&mut *tx)
        .await?;
        let entry = AuditEntry {
            at: &now,
            actor,
            action: "outbox.dead_letters_requeued",
            subject: "outbox",
            details: serde_json::json!({"events": ids}).to_string(),
        };
        audit::append(&mut tx, &entry, &[]).await?;
        tx.commit().await.map_err(crate::Error::from_commit)?;
        Ok(ids.len() as u64)
    }

    pub async fn outbox_summary(&self) -> crate::Result<OutboxSummary> {
        let row = sqlx::query(&backlog()).fetch_one(self.pool()).await?;
        Ok(OutboxSummary {
            pending: row.try_get("pending")?,
            dead: row.try_get("dead")?,
            oldest_pending: opt_instant(&row, "oldest")?,
        })
    }

    /// The most recent dead letters, newest first.
    pub async fn dead_letters(&self, limit: i64) -> crate::Result<Vec<DeadLetter>> {
        let rows = sqlx::query(&latest_dead()).bind(limit).fetch_all(self.pool()).await?;
        rows.iter()
            .map(|row| {
                Ok(DeadLetter {
                    event_id: text(row, "event_id")?,
                    issuer: text(row, "issuer")?,
                    serial: text(row, "serial")?,
                    action: word(row, "action")?,
                    attempts: row.try_get("attempts")?,
                    last_error: opt_text(row, "last_error")?,
                    dead_at: opt_instant(row, "dead_at")?,
                })
            })
            .collect()
    }
}

/// The outbox row being dead-lettered.
struct Dead<'a> {
    seq: i64,
    event_id: &'a str,
    suspension_id: Option<&'a str>,
}

/// Locks the suspension's row before its events are settled, so two workers
/// settling its last two events cannot each miss the other's and leave it
/// pending for ever.
async fn lock_suspension(tx: &mut Transaction<'static, Any>, suspension_id: Option<&str>) -> crate::Result<()> {
    if let Some(sid) = suspension_id {
        sqlx::query("UPDATE suspensions SET ca_sync = ca_sync WHERE id = $1").bind(sid).execute(&mut **tx).await?;
    }
    Ok(())
}
