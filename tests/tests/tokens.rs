//! Remembered tokens: once a token's freshness has passed, one request re-reads
//! it while the others go on with the remembered record, and a revocation is
//! seen by the first request after that re-read.
//!
//! PostgreSQL only: the test holds a re-read inside the database with `LOCK
//! TABLE`, which SQLite does not have; the cache itself does not depend on the
//! backend.

use std::sync::Arc;
use std::time::Duration;

use hotline_api::TokenCache;
use hotline_core::Role;
use hotline_store::{Store, TokenRecord};
use hotline_testkit::{Backend, TestDb};
use sqlx::{AnyConnection, Connection};
use tokio::task::JoinHandle;

const FRESH: Duration = Duration::from_millis(50);

/// A store, a validator token's secret, and a cache that has just read it.
async fn remembered() -> (TestDb, Store, String, TokenCache) {
    let db = TestDb::new(Backend::Postgres).await;
    let store = db.store().await;
    let (_, secret) = store.create_token(Role::Validator, "validator").await.unwrap();
    let cache = TokenCache::with_freshness(FRESH);
    assert!(cache.find(&store, &secret).await.unwrap().is_some(), "a live token is found");
    (db, store, secret, cache)
}

/// Locks the token table in another session, so a re-read waits until the lock goes.
async fn lock_tokens(db: &TestDb) -> AnyConnection {
    let mut conn = AnyConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
    sqlx::query("LOCK TABLE api_tokens IN ACCESS EXCLUSIVE MODE").execute(&mut conn).await.unwrap();
    conn
}

/// Waits until some session is waiting for a lock on the token table.
async fn until_a_read_waits(store: &Store) {
    for _ in 0..500 {
        let waiting: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM pg_locks WHERE relation = 'api_tokens'::regclass AND NOT granted")
                .fetch_one(store.pool())
                .await
                .unwrap();
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no re-read of the token reached the database");
}

/// Revokes the token in the locking session and lets the waiting re-read go.
async fn revoke_and_unlock(mut conn: AnyConnection) {
    sqlx::query("UPDATE api_tokens SET revoked_at = '2026-01-01T00:00:00Z'").execute(&mut conn).await.unwrap();
    sqlx::query("COMMIT").execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
}

/// A remembered token past its freshness, one request re-reading it and held
/// inside the database by the returned lock.
struct Rereading {
    db: TestDb,
    store: Store,
    secret: String,
    cache: Arc<TokenCache>,
    lock: AnyConnection,
    reread: JoinHandle<Option<Arc<TokenRecord>>>,
}

async fn rereading() -> Rereading {
    let (db, store, secret, cache) = remembered().await;
    let cache = Arc::new(cache);
    tokio::time::sleep(FRESH * 2).await;
    let lock = lock_tokens(&db).await;
    let reread = tokio::spawn({
        let (cache, store, secret) = (cache.clone(), store.clone(), secret.clone());
        async move { cache.find(&store, &secret).await.unwrap() }
    });
    until_a_read_waits(&store).await;
    Rereading { db, store, secret, cache, lock, reread }
}

async fn while_one_request_rereads_a_token_the_others_go_on_with_the_remembered_one() {
    let Rereading { db: _db, store, secret, cache, lock, reread } = rereading().await;
    // Without the one re-read, this request would wait behind the lock as well.
    let meanwhile = tokio::time::timeout(Duration::from_secs(5), cache.find(&store, &secret))
        .await
        .expect("a second request waited for the re-read instead of using the remembered token");
    assert!(meanwhile.unwrap().is_some(), "the remembered token stands while it is re-read");
    revoke_and_unlock(lock).await;
    assert!(reread.await.unwrap().is_none(), "the re-read sees the revocation");
    assert!(cache.find(&store, &secret).await.unwrap().is_none(), "after the re-read, the token is refused");
}

async fn an_abandoned_reread_leaves_the_next_request_to_reread() {
    let Rereading { db: _db, store, secret, cache, lock, reread } = rereading().await;
    // The request's deadline passes, or its client goes away, while it re-reads.
    reread.abort();
    assert!(reread.await.unwrap_err().is_cancelled());
    revoke_and_unlock(lock).await;
    assert!(
        cache.find(&store, &secret).await.unwrap().is_none(),
        "the next request re-read the token and saw the revocation, instead of trusting a re-read that never ends"
    );
}

hotline_testkit::postgres_only!(
    while_one_request_rereads_a_token_the_others_go_on_with_the_remembered_one,
    an_abandoned_reread_leaves_the_next_request_to_reread,
);
