//! The ordered stream of certificate status changes, for the revocation cache:
//! what changed after a position, where the stream ends, and a consistent
//! snapshot of every certificate that is not good, with the position it
//! reflects.
//!
//! Positions are given by the sealer after commit ([`crate::sealer`]), so a
//! follower never skips a change that commits late. A window of the stream
//! says which certificates changed; each is read as it is now, not as the
//! change left it, so reading a change again (after a rebuild, or by two
//! followers) never puts back an older state, and the order of two
//! certificates' changes within a window does not matter.

use chrono::{DateTime, Utc};
use hotline_core::{IssuerId, Serial, StatusRecord};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::reconcile::NOT_GOOD;
use crate::rows::{instant, issuer, opt_text, serial, status_record};
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

/// The certificates changed at positions after `$1`, up to `$2`, at most
/// `$3` positions, each as it is now: the stream's primary key in order, and
/// the certificates' (issuer, serial) key for each.
pub(crate) const STREAM_WINDOW: &str = "SELECT w.position, c.issuer, c.serial, c.status, c.reason, c.since
   FROM (SELECT position, issuer, serial FROM status_changes
          WHERE position > $1 AND position <= $2 ORDER BY position LIMIT $3) w
   LEFT JOIN certificates c ON c.issuer = w.issuer AND c.serial = w.serial
  ORDER BY w.position";

/// What a follower read after its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeWindow {
    /// The certificates changed at positions after the follower's, in order
    /// of position, each with its status now.
    pub changes: Vec<StatusChange>,
    /// The position the window ends at: the sealed head when it is complete.
    pub to: i64,
    /// When the window reaches the head: the instant every change committed
    /// before is in the stream up to `to`.
    pub complete_as_of: Option<DateTime<Utc>>,
}

impl Store {
    /// The certificates changed at positions after `position` (at most
    /// `limit` positions), as they are now, and how complete that is.
    pub async fn status_changes_after(&self, position: i64, limit: i64) -> crate::Result<ChangeWindow> {
        // Read the time first: what is committed before it is either sealed
        // by now (up to the head read next) or still waiting, which the same
        // statement sees.
        let read_at = Utc::now();
        let head = sqlx::query(
            "SELECT change_position, sealed_as_of,
                    CASE WHEN EXISTS (SELECT 1 FROM status_changes_pending) THEN 1 ELSE 0 END AS waiting
               FROM audit_head WHERE id = 1",
        )
        .fetch_one(self.pool())
        .await?;
        let (head_position, waiting): (i64, i64) = (head.try_get("change_position")?, head.try_get("waiting")?);
        // Nothing waiting: everything committed before the read is sealed. Otherwise as far as the sealer got.
        let complete_as_of = if waiting == 0 { read_at } else { instant(&head, "sealed_as_of")? };
        let rows =
            sqlx::query(STREAM_WINDOW).bind(position).bind(head_position).bind(limit).fetch_all(self.pool()).await?;
        let complete = (rows.len() as i64) < limit;
        let last = match rows.last() {
            Some(row) => row.try_get("position")?,
            None => position,
        };
        let mut changes = Vec::with_capacity(rows.len());
        for row in &rows {
            // A change of a certificate the registry no longer holds is nothing to apply.
            if opt_text(row, "issuer")?.is_some() {
                changes.push(change(row, None)?);
            }
        }
        Ok(ChangeWindow {
            changes,
            to: if complete { head_position.max(position) } else { last },
            complete_as_of: complete.then_some(complete_as_of),
        })
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
