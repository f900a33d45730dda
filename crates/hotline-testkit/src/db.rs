//! A fresh, migrated database per test.

use hotline_store::{Backend, Store};
use sqlx::Connection;

/// Set by `cargo xtask test --sqlite`: no PostgreSQL on this machine.
pub const SQLITE_ONLY: &str = "HOTLINE_TEST_SQLITE_ONLY";

/// Where tests reach PostgreSQL as a role that may create databases.
pub fn pg_admin_url() -> String {
    std::env::var("HOTLINE_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database that exists for one test: dropped (PostgreSQL) or deleted (SQLite) afterwards.
pub struct TestDb {
    pub url: String,
    pub backend: Backend,
    pg_name: Option<String>,
    /// The server it was created on, to drop it there.
    admin: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Postgres => Self::postgres_at(&pg_admin_url()).await,
            Backend::Sqlite => {
                sqlx::any::install_default_drivers();
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("hotline.db").display());
                TestDb { url, backend, pg_name: None, admin: None, _dir: Some(dir) }
            }
        }
    }

    /// A fresh database on the PostgreSQL server at `admin` (a role that may create databases).
    pub async fn postgres_at(admin: &str) -> TestDb {
        sqlx::any::install_default_drivers();
        assert!(
            std::env::var_os(SQLITE_ONLY).is_none(),
            "this test needs PostgreSQL, which the SQLite-only loop leaves out by name: put `postgres` in \
             its path (both_backends! or postgres_only!) or run the README's test command"
        );
        let name = format!("hotline_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::AnyConnection::connect(admin).await.unwrap_or_else(|e| {
            panic!("PostgreSQL is not reachable at HOTLINE_TEST_PG_URL ({e}); run the README's test command")
        });
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        let url = match admin.rfind('/') {
            Some(i) => format!("{}/{name}", &admin[..i]),
            None => panic!("HOTLINE_TEST_PG_URL must name a database"),
        };
        TestDb { url, backend: Backend::Postgres, pg_name: Some(name), admin: Some(admin.to_owned()), _dir: None }
    }

    /// A connected, migrated store on this database.
    pub async fn store(&self) -> Store {
        let store = Store::connect(&self.url).await.unwrap();
        store.migrate().await.unwrap();
        store
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else { return };
        let admin = self.admin.take().unwrap_or_else(pg_admin_url);
        // Drop runs outside any runtime guarantee, so the clean-up gets its own thread and runtime.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async move {
                if let Ok(mut conn) = sqlx::AnyConnection::connect(&admin).await {
                    let _ =
                        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}
