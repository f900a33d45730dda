//! The store: the only crate that knows SQL.
//!
//! One code path serves PostgreSQL (production) and SQLite (the embedded
//! default) through `sqlx::Any`: the SQL is written once in the subset both
//! understand, instants are RFC 3339 text, and the few differences (how a
//! write transaction begins, the migration files) are chosen by [`Backend`].
//! A suspension or a release is one transaction: registry changes, outbox
//! events, the audit record and the idempotency record commit together.

mod audit;
mod changes;
mod connect;
mod delivery;
mod error;
mod idempotency;
mod identify;
mod ids;
mod import;
mod migrate;
mod outbox;
mod plans;
mod pool_hygiene;
mod reconcile;
mod registry;
mod registry_copy;
mod release;
mod replication;
mod rows;
mod sealer;
mod sessions;
mod status;
mod suspend;
pub mod synthetic;
mod tokens;
mod views;

use sqlx::AnyPool;

pub use audit::{AuditBreak, AuditEntry, AuditReport};
pub use changes::{ChangeWindow, StatusChange};
pub use connect::ACQUIRE_TIMEOUT;
pub use delivery::{DeadLetter, Leased, OutboxEvent, OutboxSummary, UnreadableEvent};
pub use error::{Error, Outage, Result};
pub use idempotency::{IdempotencyClaim, Previous, SavedResponse};
pub use identify::{Identification, IdentifiedCard, IdentifiedHolder, IdentifiedSmartphone};
pub use import::{
    FirstLoad, FirstLoadEnd, ImportCertificate, ImportOutcome, ImportRecord, ImportRun, ImportSmartphone, Refusal,
    Stance,
};
pub use plans::ScaledQuery;
pub use pool_hygiene::STATEMENT_TIMEOUT;
pub use reconcile::ListedCertificate;
pub use registry::{NewCertificate, NewHolder, NewSmartphone};
pub use release::{Release, ReleaseOutcome};
pub use replication::Replication;
pub use rows::{format_instant, parse_instant};
pub use sealer::{SealBatch, SealState, Sealed, Sealer};
pub use suspend::{NewSuspension, SuspendOutcome};
pub use tokens::{TokenRecord, hash_secret, secret_digest};
pub use views::{CertificateView, SuspensionView};

/// Which database the store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    /// Chooses the backend from a database URL's scheme.
    pub fn from_url(url: &str) -> Option<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }

    /// The name OpenTelemetry's conventions give the database (`db.system.name`).
    pub fn system_name(self) -> &'static str {
        match self {
            Backend::Postgres => "postgresql",
            Backend::Sqlite => "sqlite",
        }
    }
}

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Kept for the bulk path, which needs a PostgreSQL connection of its own (`COPY`).
    url: String,
}

impl std::fmt::Debug for Store {
    // Written by hand: the URL may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("backend", &self.backend).finish_non_exhaustive()
    }
}

impl Store {
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for the rare caller (tests, tools) that needs raw SQL.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Runs `work` for at most `limit`: past it the database is taken to hang
    /// ([`Outage::Hung`]), the work is dropped and no connection opened before
    /// is reused. A write dropped this way may have been committing: its
    /// outcome is known only to a retry with the same idempotency key.
    pub async fn within<T>(
        &self,
        limit: std::time::Duration,
        work: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(limit, work).await {
            Ok(done) => done,
            Err(elapsed) => Err(Error::unavailable(Outage::Hung, elapsed)),
        }
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Begins a transaction that will write.
    ///
    /// SQLite upgrades a deferred transaction's read lock to a write lock only
    /// if no other writer got there first, and otherwise fails at once with
    /// "database is locked"; `BEGIN IMMEDIATE` takes the write lock up front so
    /// concurrent writers wait (up to the busy timeout) instead of failing.
    async fn begin_write(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Any>> {
        match self.backend {
            Backend::Postgres => self.pool.begin().await,
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
        }
    }

    /// Row counts of every table, for tests that prove a refused request stored nothing
    /// and for operators who want a quick look.
    pub async fn table_counts(&self) -> crate::Result<Vec<(&'static str, i64)>> {
        let mut counts = Vec::with_capacity(TABLES.len());
        for table in TABLES {
            let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(&self.pool).await?;
            counts.push((*table, n));
        }
        Ok(counts)
    }
}

/// Every table the migrations create.
pub const TABLES: &[&str] = &[
    "issuers",
    "holders",
    "cards",
    "api_tokens",
    "suspensions",
    "certificates",
    "suspension_certificates",
    "outbox",
    "idempotency",
    "audit_log",
    "audit_head",
    "audit_pending",
    "status_changes_pending",
    "status_changes",
    "console_sessions",
];
