//! Keeping the pool's connections on the primary through a failover.
//!
//! The service reaches PostgreSQL through a proxy that routes to whichever
//! server is primary now (HAProxy checking Patroni, a Kubernetes service), so
//! a failover changes the server behind the same address. A connection opened
//! before it may point at a server that is gone, hangs, or came back as a
//! read-only standby, and sqlx's own test on release (a ping) passes for the
//! last. So once an outage of that kind is seen ([`crate::Outage`]), every
//! connection opened before it is closed instead of reused, both when it is
//! handed out and when it comes back; a new connection that lands on a
//! standby is refused and tried again, within the pool's acquire bound.
//!
//! The instant is kept per process, where the error conversion can reach it
//! without a handle: a process serves one database, and one that holds
//! several (a test binary) only reconnects a little more.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnectionMetadata;
use sqlx::{AnyConnection, Executor};

/// The clock the instants below count from.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);
/// Connections opened before this many nanoseconds after [`EPOCH`] are not reused.
static DISTRUSTED_BEFORE: AtomicU64 = AtomicU64::new(0);

fn nanos_now() -> u64 {
    u64::try_from(EPOCH.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// An outage that may have moved the primary was seen: no connection opened before now is reused.
pub(crate) fn distrust_connections_opened_before_now() {
    DISTRUSTED_BEFORE.fetch_max(nanos_now(), Ordering::Relaxed);
}

/// Whether a connection of this age was opened after the last such outage.
fn trusted(age: Duration) -> bool {
    let age = u64::try_from(age.as_nanos()).unwrap_or(u64::MAX);
    nanos_now().saturating_sub(age) >= DISTRUSTED_BEFORE.load(Ordering::Relaxed)
}

/// `before_acquire` and `after_release`: keep a connection only if it is trusted.
pub(crate) fn keep(
    _conn: &mut AnyConnection,
    meta: PoolConnectionMetadata,
) -> futures::future::BoxFuture<'_, sqlx::Result<bool>> {
    let keep = trusted(meta.age);
    Box::pin(async move { Ok(keep) })
}

/// How long one statement of a serving process may run, waiting for locks
/// included, before the server cancels it (SQLSTATE 57014, an outage to the
/// caller, who retries within its deadline): a query the planner got wrong
/// or a lock held by a stuck transaction gives the operator a `503` it can
/// retry, and frees the connection. It never cuts short a `COMMIT` that waits
/// for the synchronous standby: PostgreSQL disarms the statement timeout
/// before it commits (measured: a commit waiting for a stopped standby under
/// a 500 ms timeout waited, and committed once the standby came back), so the
/// caller's own deadline ([`crate::Store::within`]) bounds that wait. The
/// one-shot commands (import, rebuild, migrations run alone) have no bound.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);

/// `after_connect` for PostgreSQL: the session's bound, if any, and a refusal
/// of a server that is in recovery (a standby), so the pool tries again.
pub(crate) fn on_postgres_connect(
    statement_timeout: Option<Duration>,
) -> impl for<'c> Fn(&'c mut AnyConnection, PoolConnectionMetadata) -> futures::future::BoxFuture<'c, sqlx::Result<()>>
+ Send
+ Sync
+ 'static {
    move |conn, _meta| {
        Box::pin(async move {
            if let Some(bound) = statement_timeout {
                conn.execute(format!("SET statement_timeout = {}", bound.as_millis()).as_str()).await?;
            }
            let standby: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()").fetch_one(&mut *conn).await?;
            if standby {
                return Err(sqlx::Error::Protocol("reached a standby where the primary was expected".into()));
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_opened_before_an_outage_is_not_trusted_and_one_opened_after_is() {
        std::thread::sleep(Duration::from_millis(5));
        distrust_connections_opened_before_now();
        assert!(!trusted(Duration::from_millis(3)), "opened 3 ms ago, before the outage");
        // Other tests may distrust too, but never later than now.
        assert!(trusted(Duration::ZERO), "opened now, after it");
    }
}
