//! The sealer: chains committed audit records and gives committed status
//! changes their stream positions, after commit, one batch per transaction.
//!
//! Exactly one sealer at a time across every process on the database: a
//! lease on the chain's head row, taken and renewed by the same statement
//! that locks the row for the batch, so two processes that both think they
//! hold it still seal one after the other, and one whose lease was taken
//! over seals nothing. A sealer killed mid-batch leaves its transaction
//! rolled back and its lease to expire: another takes over within a lease.
//!
//! Why a late commit cannot be skipped: the sealer reads only what has
//! committed (in one snapshot: PostgreSQL's repeatable read, SQLite's single
//! writer), appends it after everything sealed before, and commits its
//! batches one after another; a row committed after a batch's snapshot waits
//! for the next batch and is sealed after it. So sequence numbers and stream
//! positions are given, and become visible, in one increasing order, and a
//! follower that has read up to a position has read everything below it.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hotline_core::audit::{AuditFields, chain_hash};
use sqlx::{Any, Row, Transaction};

use crate::rows::{opt_instant, opt_text, text};
use crate::{Backend, Store, format_instant};

/// How many records and changes one batch takes at most.
#[derive(Debug, Clone, Copy)]
pub struct SealBatch {
    pub records: i64,
    pub changes: i64,
}

impl Default for SealBatch {
    fn default() -> Self {
        Self { records: 500, changes: 5_000 }
    }
}

/// What one call to [`Sealer::seal_batch`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sealed {
    /// Another process holds the lease.
    NotHolder,
    /// Sealed this many records and changes; `drained` when nothing committed was left.
    Batch { records: u64, changes: u64, drained: bool },
}

/// One process's sealer: its identity on the lease, and how long a lease lasts.
pub struct Sealer {
    store: Store,
    id: String,
    lease: Duration,
    batch: SealBatch,
    /// Until when (ms since the Unix epoch, by this process's clock) it last held the lease.
    held_until_ms: AtomicI64,
    /// Wakes the loop at once (a commit in this process).
    poke: tokio::sync::Notify,
    /// Batches begun, and (watched) batches ended, in this process: a batch
    /// begun after a commit seals it, if this process holds the lease.
    begun: AtomicU64,
    ended: tokio::sync::watch::Sender<u64>,
}

/// A record with its place in the chain.
struct Chained {
    seq: i64,
    fields: [String; 5],
    prev_hash: String,
    hash: String,
}

/// The head row as a batch found it.
struct Head {
    seq: i64,
    hash: String,
    position: i64,
}

impl Sealer {
    pub fn new(store: Store, lease: Duration) -> Self {
        Self::with_batch(store, lease, SealBatch::default())
    }

    pub fn with_batch(store: Store, lease: Duration, batch: SealBatch) -> Self {
        let id = format!("sealer-{}", uuid::Uuid::new_v4().simple());
        Self {
            store,
            id,
            lease,
            batch,
            held_until_ms: AtomicI64::new(0),
            poke: tokio::sync::Notify::new(),
            begun: AtomicU64::new(0),
            ended: tokio::sync::watch::channel(0).0,
        }
    }

    /// After a commit in this process: wakes the loop, and waits (at most
    /// `limit`) for a batch begun after now to end, so the commit is sealed
    /// when this returns if this process holds the lease. Many commits share
    /// one batch: none seals on its own.
    pub async fn sealed_after_now(&self, limit: Duration) {
        let target = self.begun.load(Ordering::SeqCst) + 1;
        let mut ended = self.ended.subscribe();
        self.poke.notify_one();
        let _ = tokio::time::timeout(limit, ended.wait_for(|n| *n >= target)).await;
    }

    /// This sealer's name on the lease.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether this sealer held the lease at its last batch, and still does by its clock.
    pub fn holds_lease(&self) -> bool {
        self.held_until_ms.load(Ordering::Relaxed) > Utc::now().timestamp_millis()
    }

    /// Gives the lease up, if this sealer holds it, so another takes over at
    /// once rather than when it lapses (a one-shot command done, a process stopping).
    pub async fn release(&self) -> crate::Result<()> {
        sqlx::query("UPDATE audit_head SET sealer = NULL, sealer_until = NULL WHERE id = 1 AND sealer = $1")
            .bind(&self.id)
            .execute(self.store.pool())
            .await?;
        self.held_until_ms.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// Seals batches until nothing committed is left, or another holds the
    /// lease; returns how many changes were sealed.
    pub async fn seal_all(&self) -> crate::Result<u64> {
        let mut changes = 0;
        loop {
            match self.seal_batch().await? {
                Sealed::NotHolder => return Ok(changes),
                Sealed::Batch { changes: n, drained, .. } => {
                    changes += n;
                    if drained {
                        return Ok(changes);
                    }
                }
            }
        }
    }

    /// One batch: takes (or renews) the lease and seals what has committed, in one transaction.
    pub async fn seal_batch(&self) -> crate::Result<Sealed> {
        let started = Utc::now();
        let mut tx = match self.store.backend() {
            // One snapshot for the whole batch: what it reads is exactly what it moves.
            Backend::Postgres => self.store.pool().begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ").await?,
            Backend::Sqlite => self.store.pool().begin_with("BEGIN IMMEDIATE").await?,
        };
        let Some(head) = self.take_head(&mut tx, started).await? else {
            tx.rollback().await?;
            self.held_until_ms.store(0, Ordering::Relaxed);
            return Ok(Sealed::NotHolder);
        };
        let (records, hash) = self.seal_records(&mut tx, &head).await?;
        let changes = self.seal_changes(&mut tx, head.position).await?;
        let drained = (changes as i64) < self.batch.changes;
        sqlx::query(
            "UPDATE audit_head SET seq = $1, hash = $2, change_position = $3,
                    sealed_as_of = CASE WHEN $4 THEN $5 ELSE sealed_as_of END
              WHERE id = 1",
        )
        .bind(head.seq + records as i64)
        .bind(&hash)
        .bind(head.position + changes as i64)
        .bind(drained)
        .bind(format_instant(started))
        .execute(&mut *tx)
        .await?;
        tx.commit().await.map_err(crate::Error::from_commit)?;
        let until = started + chrono::Duration::from_std(self.lease).unwrap_or_default();
        self.held_until_ms.store(until.timestamp_millis(), Ordering::Relaxed);
        Ok(Sealed::Batch { records, changes, drained: drained && (records as i64) < self.batch.records })
    }

    /// Locks the head row if this sealer holds the lease or may take it,
    /// renewing it; `None` if another holds it.
    async fn take_head(&self, tx: &mut Transaction<'static, Any>, now: DateTime<Utc>) -> crate::Result<Option<Head>> {
        let until = now + chrono::Duration::from_std(self.lease).unwrap_or_default();
        let row = sqlx::query(
            "UPDATE audit_head SET sealer = $1, sealer_until = $2
              WHERE id = 1 AND (sealer IS NULL OR sealer = $1 OR sealer_until < $3)
              RETURNING seq, hash, change_position",
        )
        .bind(&self.id)
        .bind(format_instant(until))
        .bind(format_instant(now))
        .fetch_optional(&mut **tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Head {
            seq: row.try_get("seq")?,
            hash: text(&row, "hash")?,
            position: row.try_get("change_position")?,
        }))
    }

    /// Chains the committed records after the head, in one insert; returns how many and the last hash.
    async fn seal_records(&self, tx: &mut Transaction<'static, Any>, head: &Head) -> crate::Result<(u64, String)> {
        let rows =
            sqlx::query("SELECT id, at, actor, action, subject, details FROM audit_pending ORDER BY id LIMIT $1")
                .bind(self.batch.records)
                .fetch_all(&mut **tx)
                .await?;
        let Some(last) = rows.last() else { return Ok((0, head.hash.clone())) };
        let last_id: i64 = last.try_get("id")?;
        let mut prev = head.hash.clone();
        let mut sealed = Vec::with_capacity(rows.len());
        for (seq, row) in (head.seq + 1..).zip(&rows) {
            let fields = [
                text(row, "at")?,
                text(row, "actor")?,
                text(row, "action")?,
                text(row, "subject")?,
                text(row, "details")?,
            ];
            let [at, actor, action, subject, details] = &fields;
            let hash = chain_hash(&prev, &AuditFields { seq, at, actor, action, subject, details });
            sealed.push(Chained { seq, prev_hash: std::mem::replace(&mut prev, hash.clone()), hash, fields });
        }
        let values: Vec<String> = (0..sealed.len())
            .map(|i| {
                let p: Vec<String> = (1..=8).map(|k| format!("${}", 8 * i + k)).collect();
                format!("({})", p.join(", "))
            })
            .collect();
        let sql = format!(
            "INSERT INTO audit_log (seq, at, actor, action, subject, details, prev_hash, hash) VALUES {}",
            values.join(", ")
        );
        let mut insert = sqlx::query(&sql);
        for record in &sealed {
            insert = insert.bind(record.seq);
            for field in &record.fields {
                insert = insert.bind(field.as_str());
            }
            insert = insert.bind(record.prev_hash.as_str()).bind(record.hash.as_str());
        }
        insert.execute(&mut **tx).await?;
        sqlx::query("DELETE FROM audit_pending WHERE id <= $1").bind(last_id).execute(&mut **tx).await?;
        Ok((sealed.len() as u64, prev))
    }

    /// Gives the committed changes the next stream positions, in the order of
    /// their ids, and moves them into the stream; returns how many.
    async fn seal_changes(&self, tx: &mut Transaction<'static, Any>, after: i64) -> crate::Result<u64> {
        let window = sqlx::query(
            "SELECT COUNT(*) AS n, COALESCE(MAX(id), 0) AS last FROM
               (SELECT id FROM status_changes_pending ORDER BY id LIMIT $1) w",
        )
        .bind(self.batch.changes)
        .fetch_one(&mut **tx)
        .await?;
        let (n, last): (i64, i64) = (window.try_get("n")?, window.try_get("last")?);
        if n == 0 {
            return Ok(0);
        }
        sqlx::query(
            "INSERT INTO status_changes (position, issuer, serial, status, reason, since)
             SELECT $1 + ROW_NUMBER() OVER (ORDER BY id), issuer, serial, status, reason, since
               FROM status_changes_pending WHERE id <= $2",
        )
        .bind(after)
        .bind(last)
        .execute(&mut **tx)
        .await?;
        sqlx::query("DELETE FROM status_changes_pending WHERE id <= $1").bind(last).execute(&mut **tx).await?;
        Ok(n as u64)
    }

    /// Seals whenever anything waits, checking every `interval` and at once
    /// when poked, until the process ends; `sealed` is notified after each
    /// turn that sealed changes, so followers can read them.
    pub async fn run(self: std::sync::Arc<Self>, interval: Duration, sealed: std::sync::Arc<tokio::sync::Notify>) {
        let mut failing = false;
        loop {
            let _ = tokio::time::timeout(interval, self.poke.notified()).await;
            match self.work().await {
                Ok(changes) => {
                    if failing {
                        tracing::info!(sealer = %self.id, "sealing again");
                        failing = false;
                    }
                    if changes > 0 {
                        sealed.notify_one();
                    }
                }
                Err(e) if !failing => {
                    tracing::warn!(error = e.report(), sealer = %self.id, "sealing failed; trying again");
                    failing = true;
                }
                Err(_) => {}
            }
        }
    }

    /// One turn of the loop, counted for [`Self::sealed_after_now`]: what
    /// committed before the turn began is sealed when it ends, if this
    /// process holds the lease.
    async fn work(&self) -> crate::Result<u64> {
        self.begun.fetch_add(1, Ordering::SeqCst);
        let sealed = self.turn().await;
        self.ended.send_modify(|n| *n += 1);
        sealed
    }

    /// Seals what waits, or renews a lease it holds before it lapses; a turn
    /// with nothing to do writes nothing.
    async fn turn(&self) -> crate::Result<u64> {
        let state = self.store.seal_state().await?;
        let now = Utc::now();
        // Another's lease, not lapsed: leave its row alone rather than queue on its lock.
        let others = state.holder.as_deref().is_some_and(|h| h != self.id) && state.until.is_some_and(|u| u >= now);
        if others {
            self.held_until_ms.store(0, Ordering::Relaxed);
            return Ok(0);
        }
        let renew_before = now.timestamp_millis() + (self.lease.as_millis() as i64) * 2 / 3;
        let due = self.holds_lease() && self.held_until_ms.load(Ordering::Relaxed) < renew_before;
        if due || state.waiting {
            return self.seal_all().await;
        }
        Ok(0)
    }
}

/// Whether anything waits to be sealed, and who holds the lease until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealState {
    pub waiting: bool,
    pub holder: Option<String>,
    pub until: Option<DateTime<Utc>>,
}

impl Store {
    /// Whether any committed record or change waits to be sealed, and the lease, in one read.
    pub async fn seal_state(&self) -> crate::Result<SealState> {
        let row = sqlx::query(
            "SELECT sealer, sealer_until,
                    CASE WHEN EXISTS (SELECT 1 FROM audit_pending) OR EXISTS (SELECT 1 FROM status_changes_pending)
                    THEN 1 ELSE 0 END AS waiting
               FROM audit_head WHERE id = 1",
        )
        .fetch_one(self.pool())
        .await?;
        let waiting: i64 = row.try_get("waiting")?;
        Ok(SealState {
            waiting: waiting == 1,
            holder: opt_text(&row, "sealer")?,
            until: opt_instant(&row, "sealer_until")?,
        })
    }
}
