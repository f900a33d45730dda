//! Opening the pool: per-backend connection settings that make SQLite a safe
//! embedded database (WAL, full fsync, foreign keys, a busy timeout) and keep
//! PostgreSQL's connections on the primary through a failover
//! ([`crate::pool_hygiene`]).

use std::time::Duration;

use anyhow::Context;
use sqlx::Executor;
use sqlx::any::AnyPoolOptions;

use crate::{Backend, Store, pool_hygiene};

/// How long a caller waits for a connection: one from the pool, or a new one
/// (connecting, and being refused by a standby and trying again, included).
/// Past it the caller gets [`crate::Outage::NoConnection`].
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

impl Store {
    /// Connects to `url` (`postgres://…` or `sqlite:…`) for a one-shot command:
    /// no bound on a statement (an import, a migration, a rebuild may run long).
    /// SQLite files are created if missing.
    pub async fn connect(url: &str) -> crate::Result<Store> {
        Self::connect_with(url, None).await
    }

    /// Connects for a serving process (API, worker): every statement on
    /// PostgreSQL is bounded by [`crate::STATEMENT_TIMEOUT`].
    pub async fn connect_to_serve(url: &str) -> crate::Result<Store> {
        Self::connect_with(url, Some(pool_hygiene::STATEMENT_TIMEOUT)).await
    }

    async fn connect_with(url: &str, statement_timeout: Option<Duration>) -> crate::Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)
            .with_context(|| "the database URL must start with postgres:// or sqlite: (the URL itself is not shown: it may hold a password)")?;
        let options = AnyPoolOptions::new()
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // No ping before each use (a round trip per transaction): a connection that
            // died idle fails its first statement as an outage, which makes the pool drop
            // every connection as old as it (pool_hygiene) and the write try again.
            .test_before_acquire(false)
            .before_acquire(pool_hygiene::keep)
            .after_release(pool_hygiene::keep);
        let pool = match backend {
            Backend::Postgres => {
                options
                    .max_connections(16)
                    .after_connect(pool_hygiene::on_postgres_connect(statement_timeout))
                    .connect(url)
                    .await
            }
            Backend::Sqlite => {
                let url = if url.contains("mode=") {
                    url.to_owned()
                } else if url.contains('?') {
                    format!("{url}&mode=rwc")
                } else {
                    format!("{url}?mode=rwc")
                };
                options
                    .max_connections(8)
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            // synchronous=FULL: a commit is on disk before the API answers 2xx (invariant 1).
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                            )
                            .await
                            .map(|_| ())
                        })
                    })
                    .connect(&url)
                    .await
            }
        }
        .with_context(|| format!("could not connect to the {} database", backend.as_str()))?;
        Ok(Store { pool, backend, url: url.to_owned() })
    }
}
