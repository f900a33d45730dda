//! Exponential backoff with full jitter: the n-th retry waits a uniformly
//! random time between zero and min(cap, base × 2ⁿ⁻¹), so workers retrying
//! after the same outage spread out instead of arriving together.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Backoff {
    /// The longest wait after `attempts` failed attempts.
    pub fn ceiling(&self, attempts: i64) -> Duration {
        let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        self.base.saturating_mul(1u32 << doublings).min(self.cap)
    }

    /// A random wait in `0..=ceiling(attempts)`.
    pub fn delay(&self, attempts: i64) -> Duration {
        let ceiling = self.ceiling(attempts);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(0..=millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Backoff = Backoff { base: Duration::from_millis(100), cap: Duration::from_secs(5) };

    #[test]
    fn the_ceiling_doubles_then_stops_at_the_cap() {
        assert_eq!(B.ceiling(1), Duration::from_millis(100));
        assert_eq!(B.ceiling(2), Duration::from_millis(200));
        assert_eq!(B.ceiling(4), Duration::from_millis(800));
        assert_eq!(B.ceiling(7), Duration::from_secs(5));
        assert_eq!(B.ceiling(1_000), Duration::from_secs(5));
    }

    #[test]
    fn delays_are_jittered_within_the_ceiling() {
        let delays: Vec<_> = (0..200).map(|_| B.delay(3)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(400)));
        // Full jitter: not all the same, and some well below the ceiling.
        assert!(delays.iter().any(|d| *d < Duration::from_millis(200)));
        assert!(delays.iter().any(|d| *d != delays[0]));
    }
}
