//! A first load of an empty registry on PostgreSQL, done the way
//! PostgreSQL's manual advises populating a database: one transaction takes
//! the registry's tables, drops their unique and secondary indexes and their
//! foreign keys, `COPY`s every record, and builds each again once at the end.
//! One sort per index replaces a descent per row, and one join per key
//! replaces a trigger per row. The schema changes are part of the
//! transaction, so a load that is killed rolls back whole, constraints and
//! all. Run again, it starts over.
//!
//! Two things cannot be settled while the file is being read. Both are
//! settled at the end, in the same transaction. The holders that appear
//! twice in the file, or share a serial with another holder, are set aside
//! whole, and their lines are handed back. The careful path applies them
//! after the commit, in the file's order, as an import into a registry that
//! is not empty would. The certificates the file says are revoked are
//! revoked in bulk, with their change stream, outbox and audit records, so
//! a running cache and the CA see them as they see any import's changes.

use hotline_core::{CaAction, CertificateStatus};
use sqlx::{Executor, Postgres, Row, Transaction};

use super::{ImportOutcome, ImportRecord, ImportRun, Stance, bulk_entry, new_holder};
use crate::audit::{self, AuditEntry};
use crate::error::bail;
use crate::registry_copy::{Reserve, copy, copy_holders, row};
use crate::{Backend, Store, format_instant};

/// The registry's tables a first load takes for itself.
const TABLES: &str = "holders, cards, certificates";

/// Memory for each index build and each foreign key's check: a sort or a hash that fits is one pass.
const BUILD_MEMORY: &str = "512MB";

/// A first load under way: an open transaction holding the registry's
/// tables, with what was dropped from them to be built again.
pub struct FirstLoad {
    tx: Transaction<'static, Postgres>,
    /// Statements that build the unique keys again.
    unique: Vec<String>,
    /// The other indexes, then the foreign keys.
    rest: Vec<String>,
}

/// What settling the first load did.
#[derive(Debug, Default)]
pub struct FirstLoadEnd {
    /// The lines of the holders set aside, in the file's order: apply them
    /// with [`Store::import`] now that the load is committed.
    pub set_aside: Vec<u64>,
    /// Holders and certificates loaded and then set aside (no longer in the registry).
    pub holders_set_aside: u64,
    pub certificates_set_aside: u64,
    /// Certificates revoked because the file said so.
    pub revoked: u64,
}

impl Store {
    /// Starts a first load. Refused unless the store is PostgreSQL and the
    /// registry is empty. The registry's tables are locked until the load
    /// commits or is dropped: run it before the service takes calls.
    pub async fn begin_first_load(&self) -> crate::Result<FirstLoad> {
        if self.backend() != Backend::Postgres {
            bail!(
                "a first load is PostgreSQL's bulk path; on SQLite, import without --first-load (it loads in chunks)"
            );
        }
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&self.url).await?;
        let mut tx = pool.begin().await?;
        tx.execute("SET LOCAL lock_timeout = '10s'").await?;
        tx.execute(format!("LOCK TABLE {TABLES} IN ACCESS EXCLUSIVE MODE").as_str()).await?;
        let occupied: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM holders) OR EXISTS (SELECT 1 FROM certificates)")
                .fetch_one(&mut *tx)
                .await?;
        if occupied {
            bail!(
                "the registry is not empty: a first load is for an empty one; import without --first-load, which skips what is registered and applies the rest"
            );
        }
        tx.execute(format!("SET LOCAL maintenance_work_mem = '{BUILD_MEMORY}'").as_str()).await?;
        // Each foreign key is checked by one join over the loaded rows: a hash table that fits is one pass.
        tx.execute(format!("SET LOCAL work_mem = '{BUILD_MEMORY}'").as_str()).await?;
        let (unique, rest) = drop_keys_and_indexes(&mut tx).await?;
        // Where each holder is in the file, and what the file says is revoked: both settled at the end.
        tx.execute(
            "CREATE TEMP TABLE first_load_lines (holder_id BIGINT NOT NULL, line BIGINT NOT NULL) ON COMMIT DROP",
        )
        .await?;
        tx.execute(
            "CREATE TEMP TABLE first_load_revoked (holder_id BIGINT NOT NULL, issuer TEXT NOT NULL, serial TEXT NOT NULL,
             reason TEXT NOT NULL) ON COMMIT DROP",
        )
        .await?;
        Ok(FirstLoad { tx, unique, rest })
    }
}

/// Drops the foreign keys, unique keys and secondary indexes of the
/// registry's tables (the primary keys stay: ids come in order, so keeping
/// them costs little); returns the statements that make them again.
async fn drop_keys_and_indexes(tx: &mut Transaction<'static, Postgres>) -> crate::Result<(Vec<String>, Vec<String>)> {
    let tables = "('holders'::regclass, 'cards'::regclass, 'certificates'::regclass)";
    let constraints = sqlx::query(&format!(
        "SELECT conrelid::regclass::text AS tbl, quote_ident(conname) AS name, pg_get_constraintdef(oid) AS def, contype = 'u' AS is_unique
         FROM pg_constraint WHERE conrelid IN {tables} AND contype IN ('u', 'f') ORDER BY contype, conname"
    ))
    .fetch_all(&mut **tx)
    .await?;
    let indexes = sqlx::query(&format!(
        "SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS def FROM pg_index i
         WHERE i.indrelid IN {tables} AND NOT i.indisprimary
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid)
         ORDER BY 1"
    ))
    .fetch_all(&mut **tx)
    .await?;
    let (mut unique, mut foreign, mut plain) = (Vec::new(), Vec::new(), Vec::new());
    // Foreign keys first: a unique key cannot go while a key leans on it.
    let mut drops = Vec::new();
    for c in constraints.iter().rev() {
        let (table, name, def): (String, String, String) = (c.try_get("tbl")?, c.try_get("name")?, c.try_get("def")?);
        drops.push(format!("ALTER TABLE {table} DROP CONSTRAINT {name}"));
        let add = format!("ALTER TABLE {table} ADD CONSTRAINT {name} {def}");
        if c.try_get::<bool, _>("is_unique")? { unique.push(add) } else { foreign.push(add) }
    }
    for i in &indexes {
        let name: String = i.try_get("name")?;
        drops.push(format!("DROP INDEX {name}"));
        plain.push(i.try_get::<String, _>("def")?);
    }
    for statement in drops {
        tx.execute(statement.as_str()).await?;
    }
    plain.extend(foreign);
    Ok((unique, plain))
}

impl FirstLoad {
    /// Loads a chunk of records, every one of them new to the registry:
    /// holders, cards and certificates by `COPY`, with one audit record.
    pub async fn load(&mut self, records: &[ImportRecord], run: &ImportRun<'_>) -> crate::Result<ImportOutcome> {
        let mut outcome = ImportOutcome::default();
        let (Some(first), Some(last)) = (records.first(), records.last()) else { return Ok(outcome) };
        let at = format_instant(run.at);
        let holders: Vec<_> = records.iter().map(new_holder).collect();
        // The tables are this transaction's alone: their ids are taken in one step.
        let ids = copy_holders(&mut self.tx, &holders, &at, Reserve::InOneStep).await?;
        let (mut lines, mut revoked) = (String::new(), String::new());
        for (record, id) in records.iter().zip(&ids) {
            let (id, line) = (id.to_string(), record.line.to_string());
            row(&mut lines, &[Some(&id), Some(&line)]);
            for c in record.certificates() {
                if let Stance::Revoked(reason) = c.stance {
                    row(
                        &mut revoked,
                        &[Some(&id), Some(c.issuer.as_str()), Some(c.serial.as_str()), Some(reason.as_str())],
                    );
                }
            }
        }
        copy(&mut self.tx, "COPY first_load_lines (holder_id, line) FROM STDIN", lines).await?;
        copy(&mut self.tx, "COPY first_load_revoked (holder_id, issuer, serial, reason) FROM STDIN", revoked).await?;
        let entry = bulk_entry(run, &at, [first.line, last.line], holders.len(), true);
        audit::append_on::<Postgres>(&mut self.tx, &entry, &[]).await?;
        outcome.added = holders.len() as u64;
        outcome.certificates_added = records.iter().map(|r| r.certificates().count() as u64).sum();
        Ok(outcome)
    }

    /// Builds the unique keys (setting aside the holders that break them),
    /// revokes what the file says is revoked, builds the other indexes and
    /// the foreign keys, and commits. `step` is told each stage as it starts.
    pub async fn finish(mut self, run: &ImportRun<'_>, step: impl Fn(&'static str)) -> crate::Result<FirstLoadEnd> {
        let mut end = FirstLoadEnd::default();
        step("building the unique keys");
        if !self.try_unique_keys().await? {
            step("setting aside the holders listed twice or sharing a serial");
            self.set_aside(run, &mut end).await?;
            if !self.try_unique_keys().await? {
                bail!("the unique keys still fail once the holders breaking them are set aside");
            }
        }
        step("revoking what the file says is revoked");
        end.revoked = self.revoke(run).await?;
        step("building the other indexes and the foreign keys");
        for statement in &self.rest {
            self.tx.execute(statement.as_str()).await?;
        }
        step("updating the planner's statistics");
        self.tx.execute(format!("ANALYZE {TABLES}").as_str()).await?;
        step("committing");
        self.tx.commit().await.map_err(crate::Error::from_commit)?;
        Ok(end)
    }

    /// Builds the unique keys in a savepoint; false (and nothing built) when a key is taken twice.
    async fn try_unique_keys(&mut self) -> crate::Result<bool> {
        let mut attempt = sqlx::Connection::begin(&mut *self.tx).await?;
        for statement in &self.unique {
            match attempt.execute(statement.as_str()).await {
                Ok(_) => {}
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    attempt.rollback().await?;
                    return Ok(false);
                }
                Err(e) => return Err(e.into()),
            }
        }
        attempt.commit().await.map_err(crate::Error::from_commit)?;
        Ok(true)
    }

    /// Removes every holder whose fingerprint is loaded twice or who has a
    /// serial another loaded holder has too, with all their rows; their
    /// lines go to `end` for the careful path.
    async fn set_aside(&mut self, run: &ImportRun<'_>, end: &mut FirstLoadEnd) -> crate::Result<()> {
        self.tx
            .execute(
                "CREATE TEMP TABLE first_load_set_aside ON COMMIT DROP AS
                 SELECT h.id FROM holders h WHERE h.number_hmac IN (
                     SELECT number_hmac FROM holders GROUP BY number_hmac HAVING count(*) > 1
                     UNION
                     SELECT o.number_hmac FROM certificates c JOIN holders o ON o.id = c.holder_id
                     WHERE (c.issuer, c.serial) IN (
                         SELECT issuer, serial FROM certificates GROUP BY issuer, serial HAVING count(*) > 1))",
            )
            .await?;
        end.set_aside = sqlx::query_scalar::<_, i64>(
            "SELECT l.line FROM first_load_lines l JOIN first_load_set_aside s ON s.id = l.holder_id ORDER BY l.line",
        )
        .fetch_all(&mut *self.tx)
        .await?
        .into_iter()
        .map(|line| line as u64)
        .collect();
        let gone = |table: &str| {
            format!(
                "DELETE FROM {table} WHERE {} IN (SELECT id FROM first_load_set_aside)",
                if table == "holders" { "id" } else { "holder_id" }
            )
        };
        end.certificates_set_aside = self.tx.execute(gone("certificates").as_str()).await?.rows_affected();
        self.tx.execute(gone("cards").as_str()).await?;
        end.holders_set_aside = self.tx.execute(gone("holders").as_str()).await?.rows_affected();
        let at = format_instant(run.at);
        let details = serde_json::json!({
            "source": run.source, "holders_set_aside": end.holders_set_aside, "lines": end.set_aside,
        });
        let entry = AuditEntry {
            at: &at,
            actor: run.actor,
            action: "registry.first_load_set_aside",
            subject: "registry",
            details: details.to_string(),
        };
        audit::append_on::<Postgres>(&mut self.tx, &entry, &[]).await?;
        Ok(())
    }

    /// Revokes the loaded certificates the file lists as revoked, each with
    /// its change in the stream and its event in the outbox, under one audit
    /// record; returns how many.
    async fn revoke(&mut self, run: &ImportRun<'_>) -> crate::Result<u64> {
        let at = format_instant(run.at);
        let matching = "FROM certificates c JOIN first_load_revoked r
                        ON r.holder_id = c.holder_id AND r.issuer = c.issuer AND r.serial = c.serial";
        let revoked = sqlx::query(
            "UPDATE certificates SET status = $1, reason = r.reason, since = $2
             FROM first_load_revoked r
             WHERE r.holder_id = certificates.holder_id AND r.issuer = certificates.issuer AND r.serial = certificates.serial",
        )
        .bind(CertificateStatus::Revoked.as_str())
        .bind(&at)
        .execute(&mut *self.tx)
        .await?
        .rows_affected();
        if revoked == 0 {
            return Ok(0);
        }
        sqlx::query(&format!(
            "INSERT INTO status_changes_pending (issuer, serial, status, reason, since)
             SELECT c.issuer, c.serial, c.status, c.reason, $1 {matching} ORDER BY c.id"
        ))
        .bind(&at)
        .execute(&mut *self.tx)
        .await?;
        // The event ids are random (v4) here rather than time-ordered: the outbox is ordered by its own sequence.
        sqlx::query(&format!(
            "INSERT INTO outbox (event_id, certificate_id, issuer, serial, action, reason, created_at, next_attempt_at)
             SELECT gen_random_uuid()::text, c.id, c.issuer, c.serial, $1, c.reason, $2, $2 {matching} ORDER BY c.id"
        ))
        .bind(CaAction::Revoke.as_str())
        .bind(&at)
        .execute(&mut *self.tx)
        .await?;
        let details = serde_json::json!({"source": run.source, "revoked": revoked, "first_load": true});
        let entry = AuditEntry {
            at: &at,
            actor: run.actor,
            action: "registry.first_load_revoked",
            subject: "registry",
            details: details.to_string(),
        };
        audit::append_on::<Postgres>(&mut self.tx, &entry, &[]).await?;
        Ok(revoked)
    }
}
