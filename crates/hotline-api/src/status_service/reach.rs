//! Whether the store is worth asking: once it failed to answer a validator,
//! one query a second asks it again and the rest are answered at once from
//! the caches' last confirmed state, instead of each waiting out the store's
//! bound while a failover runs.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

/// How often a store that failed is asked again.
pub(super) const PROBE_EVERY: Duration = Duration::from_secs(1);

#[derive(Default)]
pub(super) struct StoreReach {
    /// Set when the store failed to answer, cleared when it answers again.
    failing: AtomicBool,
    /// While failing: when (ms since the Unix epoch) the next query may ask it.
    next_probe_ms: AtomicI64,
}

impl StoreReach {
    /// Whether a query at `now_ms` asks the store: always while it answers;
    /// while it fails, one query per [`PROBE_EVERY`] (the first to claim the turn).
    pub(super) fn may_ask(&self, now_ms: i64) -> bool {
        if !self.failing.load(Ordering::Relaxed) {
            return true;
        }
        let next = self.next_probe_ms.load(Ordering::Relaxed);
        now_ms >= next
            && self
                .next_probe_ms
                .compare_exchange(next, now_ms + probe_ms(), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// The store failed to answer at `now_ms`.
    pub(super) fn failed(&self, now_ms: i64) {
        self.next_probe_ms.store(now_ms + probe_ms(), Ordering::Relaxed);
        if !self.failing.swap(true, Ordering::Relaxed) {
            tracing::warn!("the store cannot answer validators; asking it once a second, answering from the caches");
        }
    }

    /// The store answered.
    pub(super) fn answered(&self) {
        if self.failing.load(Ordering::Relaxed) && self.failing.swap(false, Ordering::Relaxed) {
            tracing::info!("the store answers validators again");
        }
    }
}

fn probe_ms() -> i64 {
    PROBE_EVERY.as_millis() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_store_is_asked_by_one_query_a_second_until_it_answers() {
        let reach = StoreReach::default();
        assert!(reach.may_ask(0) && reach.may_ask(0), "a store that answers is asked by every query");
        reach.failed(1_000);
        assert!(!reach.may_ask(1_500), "within a second of the failure, nobody asks");
        assert!(reach.may_ask(2_000), "a second later, one query asks");
        assert!(!reach.may_ask(2_000), "and only one");
        assert!(!reach.may_ask(2_999));
        assert!(reach.may_ask(3_000), "the next second, the next");
        reach.answered();
        assert!(reach.may_ask(3_001) && reach.may_ask(3_001), "answered again: every query asks");
    }
}
