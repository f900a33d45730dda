//! Writes through a database outage: a suspension or release that meets an
//! outage (a failover, a switchover, a connection cut, a commit whose outcome
//! was not seen) is tried again, whole, with the same Idempotency-Key, until
//! it is answered or the request's write deadline passes.
//!
//! Retrying is safe because the key is claimed inside the transaction: an
//! attempt that did commit is answered by the next one as a replay of its
//! saved answer, one that did not is committed afresh. So a failover that
//! completes within the deadline is invisible to the operator, and one that
//! does not is `503 database_unavailable` with `Retry-After`, never a
//! suspension reported done or failed while its commit is in doubt
//! (invariant 1).

use std::future::Future;
use std::time::Duration;

use hotline_store::{Error, Outage, Store};
use tokio::time::Instant;

use crate::metrics::Metrics;

/// The first pause between attempts; each further one doubles, up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(50);
/// Long enough not to hammer a proxy with nowhere to route, short enough to
/// see the new primary within half a second of its arrival.
const MAX_PAUSE: Duration = Duration::from_millis(500);

/// One request's budget for its database work, shared by every step it takes.
pub(crate) struct WriteDeadline<'a> {
    store: &'a Store,
    metrics: &'a Metrics,
    until: Instant,
    /// Whether an earlier attempt of this request may have committed.
    in_doubt: bool,
}

impl<'a> WriteDeadline<'a> {
    /// A budget of `budget` from now.
    pub(crate) fn start(store: &'a Store, metrics: &'a Metrics, budget: Duration) -> Self {
        Self { store, metrics, until: Instant::now() + budget, in_doubt: false }
    }

    /// Whether an attempt of this request was cut off while it may have been
    /// committing: a replay the next attempt finds is then this request's own answer.
    pub(crate) fn was_in_doubt(&self) -> bool {
        self.in_doubt
    }

    /// Runs `attempt` until it succeeds, fails for a reason other than an
    /// outage, or the deadline leaves no time for another try; each attempt
    /// is bounded by what is left, so a database that hangs cannot hold it.
    pub(crate) async fn run<T, F, Fut>(&mut self, what: &'static str, mut attempt: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let mut pause = FIRST_PAUSE;
        loop {
            let left = self.until.saturating_duration_since(Instant::now());
            let error = match self.store.within(left, attempt()).await {
                Ok(done) => return Ok(done),
                Err(error) => error,
            };
            let Some(outage) = error.outage() else { return Err(error) };
            // A write cut off by the bound may have been committing: as in doubt as a failed COMMIT.
            self.in_doubt |= matches!(error, Error::InDoubt { .. }) || outage == Outage::Hung;
            self.metrics.write_outage(what, outage);
            if Instant::now() + pause >= self.until {
                return Err(if self.in_doubt { error.into_in_doubt() } else { error });
            }
            tracing::info!(what, outage = outage.as_str(), error = error.report(), "database outage; trying again");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }
}
