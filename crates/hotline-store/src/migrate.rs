//! Schema migrations, embedded in the binary so that a deployment needs no
//! files beside it. Each applied migration is recorded with a checksum; a
//! migration edited after it was applied is refused rather than ignored.

use anyhow::Context;

use crate::error::bail;
use sha2::{Digest, Sha256};

use crate::{Backend, Store};

struct Migration {
    version: i64,
    name: &'static str,
    postgres: &'static str,
    sqlite: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "registry_and_suspensions",
        postgres: include_str!("../../../migrations/postgres/0001_registry_and_suspensions.sql"),
        sqlite: include_str!("../../../migrations/sqlite/0001_registry_and_suspensions.sql"),
    },
    Migration {
        version: 2,
        name: "status_changes",
        postgres: include_str!("../../../migrations/postgres/0002_status_changes.sql"),
        sqlite: include_str!("../../../migrations/sqlite/0002_status_changes.sql"),
    },
    Migration {
        version: 3,
        name: "ca_delivery",
        postgres: include_str!("../../../migrations/postgres/0003_ca_delivery.sql"),
        sqlite: include_str!("../../../migrations/sqlite/0003_ca_delivery.sql"),
    },
    Migration {
        version: 4,
        name: "outbox_trace_context",
        postgres: include_str!("../../../migrations/postgres/0004_outbox_trace_context.sql"),
        sqlite: include_str!("../../../migrations/sqlite/0004_outbox_trace_context.sql"),
    },
    Migration {
        version: 5,
        name: "bulk_registry",
        postgres: include_str!("../../../migrations/postgres/0005_bulk_registry.sql"),
        sqlite: include_str!("../../../migrations/sqlite/0005_bulk_registry.sql"),
    },
    Migration {
        version: 6,
        name: "console",
        postgres: include_str!("../../../migrations/postgres/0006_console.sql"),
        sqlite: include_str!("../../../migrations/sqlite/0006_console.sql"),
    },
    Migration {
        version: 7,
        name: "byte_order_keys",
        postgres: include_str!("../../../migrations/postgres/0007_byte_order_keys.sql"),
        sqlite: include_str!("../../../migrations/sqlite/0007_byte_order_keys.sql"),
    },
    Migration {
        version: 8,
        name: "outbox_queues",
        postgres: include_str!("../../../migrations/postgres/0008_outbox_queues.sql"),
        sqlite: include_str!("../../../migrations/sqlite/0008_outbox_queues.sql"),
    },
    Migration {
        version: 9,
        name: "covering_snapshot",
        postgres: include_str!("../../../migrations/postgres/0009_covering_snapshot.sql"),
        sqlite: include_str!("../../../migrations/sqlite/0009_covering_snapshot.sql"),
    },
    Migration {
        version: 10,
        name: "sealed_after_commit",
        postgres: include_str!("../../../migrations/postgres/0010_sealed_after_commit.sql"),
        sqlite: include_str!("../../../migrations/sqlite/0010_sealed_after_commit.sql"),
    },
];

impl Store {
    /// Applies every migration not yet applied, each in its own transaction.
    pub async fn migrate(&self) -> crate::Result<usize> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version BIGINT PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at TEXT NOT NULL)",
        )
        .execute(self.pool())
        .await
        .context("could not create schema_migrations")?;
        let mut applied = 0;
        for m in MIGRATIONS {
            let sql = match self.backend() {
                Backend::Postgres => m.postgres,
                Backend::Sqlite => m.sqlite,
            };
            let checksum = hex::encode(Sha256::digest(sql.as_bytes()));
            let mut tx = self.begin_write().await?;
            if self.backend() == Backend::Postgres {
                // A serving process bounds its statements; a migration (an index over the registry) takes what it takes.
                sqlx::query("SET LOCAL statement_timeout = 0").execute(&mut *tx).await?;
            }
            let existing: Option<String> =
                sqlx::query_scalar("SELECT checksum FROM schema_migrations WHERE version = $1")
                    .bind(m.version)
                    .fetch_optional(&mut *tx)
                    .await?;
            match existing {
                Some(c) if c == checksum => {
                    tx.rollback().await?;
                    continue;
                }
                Some(_) => bail!("migration {} ({}) was changed after it was applied", m.version, m.name),
                None => {}
            }
            sqlx::raw_sql(sql)
                .execute(&mut *tx)
                .await
                .with_context(|| format!("migration {} ({}) failed", m.version, m.name))?;
            sqlx::query("INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)")
                .bind(m.version)
                .bind(m.name)
                .bind(&checksum)
                .bind(crate::format_instant(chrono::Utc::now()))
                .execute(&mut *tx)
                .await?;
            tx.commit().await.map_err(crate::Error::from_commit)?;
            applied += 1;
        }
        Ok(applied)
    }
}
