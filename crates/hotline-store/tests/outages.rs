//! Outages as real PostgreSQL reports them, classified by the store's typed
//! error: a server that is read-only (a node that came back as a standby), a
//! session the server ended (a primary shutting down), a lock held past a
//! serving process's statement timeout. And the pool's part: a connection that met a read-only
//! server is not handed out again once the primary is back.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::time::Duration;

use hotline_core::Role;
use hotline_store::{Error, Outage, Store};
use hotline_testkit::TestDb;

/// Sets the test database read-only for new sessions, from the server's own `postgres` database.
async fn set_read_only(db: &TestDb, on: bool) {
    use sqlx::Connection;
    let name = db.url.rsplit('/').next().unwrap();
    let sql = if on {
        format!("ALTER DATABASE {name} SET default_transaction_read_only = on")
    } else {
        format!("ALTER DATABASE {name} RESET default_transaction_read_only")
    };
    let mut admin = sqlx::AnyConnection::connect(&hotline_testkit::pg_admin_url()).await.unwrap();
    sqlx::query(&sql).execute(&mut admin).await.unwrap();
    admin.close().await.unwrap();
}

async fn a_read_only_server_is_an_outage_and_its_connections_are_not_reused() {
    let db = TestDb::new(hotline_store::Backend::Postgres).await;
    db.store().await;
    set_read_only(&db, true).await;
    // Every session this store opens is read-only, as on a standby that took the primary's address.
    let store = Store::connect(&db.url).await.unwrap();
    let refused = store.create_token(Role::Operator, "while read-only").await.unwrap_err();
    assert!(matches!(refused, Error::Unavailable { outage: Outage::ReadOnly, .. }), "{refused:?}");
    assert!(refused.report().contains("read-only"), "the cause is kept for the log: {}", refused.report());
    // The primary is back: the pool must not hand out the read-only sessions it holds.
    set_read_only(&db, false).await;
    store.create_token(Role::Operator, "primary again").await.expect("a fresh connection, on the primary");
}

async fn a_session_the_server_ends_is_a_shutdown_outage() {
    let db = TestDb::new(hotline_store::Backend::Postgres).await;
    let store = db.store().await;
    let mut tx = store.pool().begin().await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *tx).await.unwrap();
    let ended: bool =
        sqlx::query_scalar("SELECT pg_terminate_backend($1)").bind(pid).fetch_one(store.pool()).await.unwrap();
    assert!(ended);
    let failed = sqlx::query("SELECT 1").execute(&mut *tx).await.unwrap_err();
    let outage = Error::from(failed).outage();
    assert!(
        matches!(outage, Some(Outage::ShuttingDown | Outage::ConnectionLost)),
        "57P01, or the closed socket after it: {outage:?}"
    );
    drop(tx);
    store.create_token(Role::Clerk, "after the session ended").await.expect("the pool opens a new one");
}

async fn a_lock_held_past_the_statement_timeout_is_a_statement_timeout_outage() {
    let db = TestDb::new(hotline_store::Backend::Postgres).await;
    db.store().await;
    let store = Store::connect_to_serve(&db.url).await.unwrap();
    let mut holder = store.pool().begin().await.unwrap();
    sqlx::query("LOCK TABLE api_tokens IN ACCESS EXCLUSIVE MODE").execute(&mut *holder).await.unwrap();
    let waited = store.create_token(Role::Validator, "behind a lock").await.unwrap_err();
    assert!(matches!(waited, Error::Unavailable { outage: Outage::StatementTimeout, .. }), "{waited:?}");
    holder.rollback().await.unwrap();
    store.create_token(Role::Validator, "lock gone").await.unwrap();
}

async fn a_database_that_does_not_answer_within_the_bound_is_hung() {
    let db = TestDb::new(hotline_store::Backend::Postgres).await;
    let store = db.store().await;
    let sleep = async { Ok(sqlx::query("SELECT pg_sleep(5)").execute(store.pool()).await.map(|_| ())?) };
    let hung = store.within(Duration::from_millis(200), sleep).await.unwrap_err();
    assert!(matches!(hung, Error::Unavailable { outage: Outage::Hung, .. }), "{hung:?}");
    store.create_token(Role::Validator, "answered").await.unwrap();
}

hotline_testkit::postgres_only!(
    a_read_only_server_is_an_outage_and_its_connections_are_not_reused,
    a_session_the_server_ends_is_a_shutdown_outage,
    a_lock_held_past_the_statement_timeout_is_a_statement_timeout_outage,
    a_database_that_does_not_answer_within_the_bound_is_hung,
);
