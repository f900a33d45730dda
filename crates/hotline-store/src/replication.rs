//! Whether the database the service writes to is durable on two servers right
//! now: the standbys streaming from the primary, and how many of them are
//! synchronous (a commit is acknowledged only once one has it). Read from the
//! primary's `pg_stat_replication`, which shows a standby's `sync_state` only
//! to a role with `pg_monitor` (or `pg_read_all_stats`): without it the count
//! is unknown, never a guess.

use sqlx::Row;

use crate::{Backend, Store};

/// The primary's standbys, as it sees them now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replication {
    /// Standbys streaming from the primary.
    pub standbys: i64,
    /// Of those, the ones a commit waits for (`sync` or `quorum`); `None`
    /// when this role may not see their state.
    pub synchronous: Option<i64>,
}

impl Store {
    /// The primary's replication; `None` on SQLite, which has none.
    pub async fn replication(&self) -> crate::Result<Option<Replication>> {
        if self.backend() == Backend::Sqlite {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT COUNT(*) AS standbys,
                    COUNT(*) FILTER (WHERE sync_state IN ('sync', 'quorum')) AS synchronous,
                    COUNT(*) FILTER (WHERE sync_state IS NULL) AS hidden
               FROM pg_stat_replication",
        )
        .fetch_one(self.pool())
        .await?;
        let (standbys, synchronous, hidden): (i64, i64, i64) =
            (row.try_get("standbys")?, row.try_get("synchronous")?, row.try_get("hidden")?);
        Ok(Some(Replication { standbys, synchronous: (hidden == 0).then_some(synchronous) }))
    }
}
