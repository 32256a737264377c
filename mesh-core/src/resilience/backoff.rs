//! Envoy's fully jittered exponential backoff between retries.
//!
//! Envoy (<https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/router_filter#x-envoy-max-retries>):
//! "the first retry will be delayed randomly between 0-24ms, the 2nd between 0-74ms, the 3rd
//! between 0-174ms and so on", i.e. uniform in `[0, (2^n − 1) × base)` for the *n*-th retry,
//! with the upper bound capped at the maximum interval (default 10 × base). The defaults are
//! 25 ms and 250 ms. Full jitter keeps retrying clients from synchronising into waves.

use std::time::Duration;

use rand::Rng;

use crate::model::RetryPolicy;

/// Fully jittered exponential backoff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
}

impl Default for Backoff {
    /// Envoy's defaults: 25 ms base, 250 ms maximum.
    fn default() -> Self {
        Self::new(Duration::from_millis(25), Duration::from_millis(250))
    }
}

impl Backoff {
    /// Backoff with base interval `base`, capped at `max` (raised to `base` if lower, as Envoy
    /// requires `max >= base`). A zero base is taken as 1 ms, Envoy's minimum.
    pub fn new(base: Duration, max: Duration) -> Self {
        let base = base.max(Duration::from_millis(1));
        Self {
            base,
            max: max.max(base),
        }
    }

    /// The backoff of a route's retry policy.
    pub fn from_policy(policy: &RetryPolicy) -> Self {
        Self::new(policy.backoff_base, policy.backoff_max)
    }

    /// The exclusive upper bound of the delay before retry `retry` (1 for the first retry):
    /// `min((2^retry − 1) × base, max)`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let n = retry.clamp(1, 63);
        let factor = (1u64 << n) - 1;
        let ceiling = self.base.as_nanos().saturating_mul(u128::from(factor));
        Duration::from_nanos(u64::try_from(ceiling.min(self.max.as_nanos())).unwrap_or(u64::MAX))
    }

    /// A delay drawn uniformly in `[0, ceiling(retry))`.
    pub fn delay<R: Rng + ?Sized>(&self, retry: u32, rng: &mut R) -> Duration {
        let ceiling = u64::try_from(self.ceiling(retry).as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rng.random_range(0..ceiling.max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn ceilings_follow_envoy() {
        let b = Backoff::default();
        assert_eq!(b.ceiling(1), Duration::from_millis(25));
        assert_eq!(b.ceiling(2), Duration::from_millis(75));
        assert_eq!(b.ceiling(3), Duration::from_millis(175));
        assert_eq!(b.ceiling(4), Duration::from_millis(250));
        assert_eq!(b.ceiling(1000), Duration::from_millis(250));
    }

    #[test]
    fn delays_stay_in_bounds_and_spread() {
        let b = Backoff::default();
        let mut rng = SmallRng::seed_from_u64(3);
        for retry in 1..8 {
            let ceiling = b.ceiling(retry);
            let delays: Vec<Duration> = (0..2000).map(|_| b.delay(retry, &mut rng)).collect();
            assert!(delays.iter().all(|d| *d < ceiling));
            // Full jitter: both halves of the range are used.
            assert!(delays.iter().any(|d| *d < ceiling / 4));
            assert!(delays.iter().any(|d| *d > ceiling * 3 / 4));
        }
    }

    #[test]
    fn max_below_base_is_raised() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_millis(10));
        assert_eq!(b.ceiling(5), Duration::from_millis(100));
    }
}
