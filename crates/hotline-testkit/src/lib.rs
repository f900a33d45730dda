//! Test support shared by the store's contract suite and the end-to-end tests:
//! a fresh database per test on real PostgreSQL or SQLite, the API on a real
//! listener on port 0 with a clock the test controls, a seeded synthetic
//! registry and one token per role.
//!
//! PostgreSQL is reached through `HOTLINE_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); each test creates its own
//! database there and drops it when done. A test that needs a replicated
//! PostgreSQL starts its own ([`PatroniCluster`]: etcd, three Patroni nodes,
//! HAProxy). There is no mock anywhere.

mod app;
mod browser;
mod ca;
mod cluster;
mod db;
mod deployment;
pub mod drill;
mod faults;
mod registry;

pub use app::{TestApp, TestCache, TestOptions, day_instant, jst, night_instant};
pub use browser::Browser;
pub use ca::{CaSimServer, quick_worker_settings, workspace_binary};
pub use cluster::{Member, PatroniCluster};
pub use db::{TestDb, pg_admin_url};
pub use deployment::{Deployment, Process};
pub use faults::{PostgresServer, RedisServer, TcpProxy, redis_url, unique_prefix};
pub use hotline_store::Backend;
pub use registry::{Registry, render_reference};

/// Runs each named `async fn()` that needs PostgreSQL itself (a TCP proxy
/// in front of it, `SKIP LOCKED` between two workers), as
/// `postgres_only::<name>`. Every test that needs PostgreSQL has `postgres`
/// in its path, so the quick loop without it (`cargo xtask test --sqlite`)
/// leaves them out by name.
#[macro_export]
macro_rules! postgres_only {
    ($($name:ident),+ $(,)?) => {
        mod postgres_only {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name().await
                }
            )+
        }
    };
}

/// Runs each named `async fn(Backend)` once against PostgreSQL and once against SQLite.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::Backend::Postgres).await
                }
            )+
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::Backend::Sqlite).await
                }
            )+
        }
    };
}
