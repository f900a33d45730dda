//! Telling each lapse of a cache tier once: the metrics count the answers
//! that fell back, the log says when and how stale.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

/// Whether a cache tier is past its freshness bound, so that each lapse, and
/// the tier's return, are logged once. A tier behind one that answers is not
/// asked, so it may recover and lapse again unseen: a lapse is told by the
/// marker it stopped at, not by the last answer having been fresh.
#[derive(Default)]
pub(super) struct Passing {
    /// The `as_of` (ms) of the marker of the lapse told last; 0 while the tier is fresh.
    told_as_of: AtomicI64,
}

impl Passing {
    /// Notes a stale answer; true (and logged) if this lapse was not told yet.
    pub(super) fn stale(&self, source: &str, as_of: DateTime<Utc>, age: Duration, bound: Duration) -> bool {
        let as_of = as_of.timestamp_millis();
        let new_lapse = self.told_as_of.swap(as_of, Ordering::Relaxed) != as_of;
        if new_lapse {
            tracing::warn!(
                source,
                age_ms = age.as_millis() as u64,
                bound_ms = bound.as_millis() as u64,
                "a cache tier is past its freshness bound; its answers come from the next source"
            );
        }
        new_lapse
    }

    /// Notes a fresh answer; true (and logged) if the tier was stale until now.
    pub(super) fn fresh(&self, source: &str) -> bool {
        // One load per answer while fresh; the swap only on the way back.
        let back = self.told_as_of.load(Ordering::Relaxed) != 0 && self.told_as_of.swap(0, Ordering::Relaxed) != 0;
        if back {
            tracing::info!(source, "a cache tier is within its freshness bound again");
        }
        back
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_lapse_of_a_tier_and_its_return_are_told_once() {
        let passing = Passing::default();
        let (bound, age) = (Duration::from_secs(2), Duration::from_secs(3));
        let marker = |ms| DateTime::<Utc>::from_timestamp_millis(ms).unwrap();
        assert!(!passing.fresh("cache"), "fresh from the start: nothing to tell");
        assert!(passing.stale("cache", marker(1_000), age, bound), "the first stale answer is told");
        assert!(!passing.stale("cache", marker(1_000), age, bound), "the ones after it, at the same marker, are not");
        assert!(passing.fresh("cache"), "the first fresh answer after them is told");
        assert!(!passing.fresh("cache"), "the ones after it are not");
        assert!(passing.stale("cache", marker(9_000), age, bound), "a second lapse is told again");
        assert!(
            passing.stale("cache", marker(15_000), age, bound),
            "a lapse at a later marker is told, though no fresh answer was seen between (the tier was not asked)"
        );
    }
}
