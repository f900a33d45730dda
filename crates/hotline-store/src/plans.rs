//! How the database plans the queries that must not grow with the tables'
//! history: the pages that read a national registry, and the outbox
//! queries the worker and on-call run every few seconds. Each is written so
//! that an index holds exactly the rows it wants, in the order it wants
//! them; the store's contract test reads these plans on both databases and
//! fails when one filters or sorts where it should seek.

use sqlx::Row;

use crate::{Backend, Store, changes, delivery, reconcile};

/// A query whose cost must stay that of what it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaledQuery {
    /// A page of the certificates not good (rebuilds, near-caches, reconciliation).
    SnapshotPage,
    /// A worker's claim of due outbox events.
    OutboxClaim,
    /// The backlog's counts and its oldest event (metrics, `/ops`, `outbox show`).
    OutboxBacklog,
    /// The latest dead letters.
    DeadLetters,
    /// The serials of an issuer still on their way to the CA, or delivered lately.
    InFlight,
    /// A follower's window of the change stream, each certificate read as it is now.
    StreamWindow,
}

enum Arg {
    Text(&'static str),
    Int(i64),
}

impl ScaledQuery {
    fn sql_and_args(self, backend: Backend) -> (String, Vec<Arg>) {
        const NOW: &str = "2026-12-05T12:00:00.000000Z";
        match self {
            Self::SnapshotPage => {
                (changes::snapshot_page(), vec![Arg::Text("jpki-auth"), Arg::Text("00"), Arg::Int(1000)])
            }
            Self::OutboxClaim => {
                (delivery::claim(backend), vec![Arg::Text("worker"), Arg::Text(NOW), Arg::Text(NOW), Arg::Int(64)])
            }
            Self::OutboxBacklog => (delivery::backlog(), vec![]),
            Self::DeadLetters => (delivery::latest_dead(), vec![Arg::Int(20)]),
            Self::InFlight => (reconcile::in_flight(), vec![Arg::Text("jpki-auth"), Arg::Text(NOW)]),
            Self::StreamWindow => {
                (changes::STREAM_WINDOW.to_owned(), vec![Arg::Int(0), Arg::Int(1_000_000), Arg::Int(1000)])
            }
        }
    }
}

impl Store {
    /// How the database plans `query` (PostgreSQL's `EXPLAIN`, SQLite's
    /// `EXPLAIN QUERY PLAN`), one line per row. Nothing is executed.
    pub async fn plan_of(&self, query: ScaledQuery) -> crate::Result<Vec<String>> {
        let (sql, args) = query.sql_and_args(self.backend());
        let mut conn = self.pool().acquire().await?;
        let (explain, column) = match self.backend() {
            Backend::Postgres => {
                // A test's small tables are read whole whatever the query; what
                // matters is which index could start the read, and whether it
                // gives the rows in order (a bitmap scan never does: at scale,
                // with a LIMIT, the planner takes the index in order).
                sqlx::query("SET enable_seqscan = off").execute(&mut *conn).await?;
                sqlx::query("SET enable_bitmapscan = off").execute(&mut *conn).await?;
                ("EXPLAIN", "QUERY PLAN")
            }
            Backend::Sqlite => ("EXPLAIN QUERY PLAN", "detail"),
        };
        let sql = format!("{explain} {sql}");
        let mut q = sqlx::query(&sql);
        for arg in args {
            q = match arg {
                Arg::Text(t) => q.bind(t),
                Arg::Int(i) => q.bind(i),
            };
        }
        let rows = q.fetch_all(&mut *conn).await;
        if self.backend() == Backend::Postgres {
            sqlx::query("RESET enable_seqscan").execute(&mut *conn).await?;
            sqlx::query("RESET enable_bitmapscan").execute(&mut *conn).await?;
        }
        rows?.iter().map(|r| Ok(r.try_get::<String, _>(column)?)).collect()
    }
}
