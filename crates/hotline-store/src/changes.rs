//! The ordered stream of certificate status changes, for the revocation cache:
//! what changed after a position, where the stream ends, and a consistent
//! snapshot of every certificate that is not good, with the position it
//! reflects.

use hotline_core::{IssuerId, Serial, StatusRecord};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::reconcile::NOT_GOOD;
use crate::rows::{issuer, serial, status_record};
use crate::{Backend, Store};

/// A certificate's status as of a stream position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    /// Position in the stream; for snapshot entries, the snapshot's position.
    pub position: i64,
    pub issuer: IssuerId,
    pub serial: Serial,
    pub record: StatusRecord,
}

fn change(row: &AnyRow, position: Option<i64>) -> crate::Result<StatusChange> {
    Ok(StatusChange {
        position: match position {
            Some(p) => p,
            None => row.try_get("position")?,
        },
        issuer: issuer(row, "issuer")?,
        serial: serial(row, "serial")?,
        record: status_record(row)?,
    })
}

/// One page of the snapshot: the certificates not good after (`$1`, `$2`) in
/// key order. The row comparison is what makes it a seek: both databases
/// start the partial index `certificates_not_good` at the key and read on,
/// so every row is read once however deep the page. (Written as
/// `issuer > $1 OR (issuer = $1 AND serial > $2)` it is a filter, and each
/// page rescans the index from its start: a rebuild quadratic in its size.)
pub(crate) fn snapshot_page() -> String {
    format!(
        "SELECT issuer, serial, status, reason, since FROM certificates
          WHERE {NOT_GOOD} AND (issuer, serial) > ($1, $2)
          ORDER BY issuer, serial LIMIT $3"
    )
}

impl Store {
    /// Changes with positions after `position`, in order, at most `limit`.
    pub async fn status_changes_after(&self, position: i64, limit: i64) -> crate::Result<Vec<StatusChange>> {
        let rows = sqlx::query(
            "SELECT position, issuer, serial, status, reason, since FROM status_changes
              WHERE position > $1 ORDER BY position LIMIT $2",
        )
        .bind(position)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| change(r, None)).collect()
    }

    /// The position of the last committed change (0 before the first).
    pub async fn status_head(&self) -> crate::Result<i64> {
        Ok(sqlx::query_scalar("SELECT change_position FROM audit_head WHERE id = 1").fetch_one(self.pool()).await?)
    }

    /// Every certificate that is not good, sent to `pages` in pages of `page`
    /// entries, all read from one snapshot; returns the stream position that
    /// snapshot reflects. Every entry carries that position. Fails if the
    /// receiver goes away.
    pub async fn status_snapshot(
        &self,
        page: i64,
        pages: tokio::sync::mpsc::Sender<Vec<StatusChange>>,
    ) -> crate::Result<i64> {
        // One read-only transaction: PostgreSQL's repeatable read, SQLite's WAL
        // snapshot (taken at the first read), so the position and the pages agree.
        let begin = match self.backend() {
            Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            Backend::Sqlite => "BEGIN",
        };
        let mut tx = self.pool().begin_with(begin).await?;
        let position: i64 =
            sqlx::query_scalar("SELECT change_position FROM audit_head WHERE id = 1").fetch_one(&mut *tx).await?;
        let page_query = snapshot_page();
        let (mut after_issuer, mut after_serial) = (String::new(), String::new());
        loop {
            let rows =
                sqlx::query(&page_query).bind(&after_issuer).bind(&after_serial).bind(page).fetch_all(&mut *tx).await?;
            let entries: Vec<StatusChange> =
                rows.iter().map(|r| change(r, Some(position))).collect::<Result<_, _>>()?;
            let full = entries.len() as i64 == page;
            if let Some(last) = entries.last() {
                last.issuer.as_str().clone_into(&mut after_issuer);
                last.serial.as_str().clone_into(&mut after_serial);
            }
            if !entries.is_empty() {
                pages.send(entries).await.map_err(|_| anyhow::anyhow!("the snapshot's reader stopped"))?;
            }
            if !full {
                break;
            }
        }
        tx.rollback().await?;
        Ok(position)
    }
}
