//! Reconnect backoff: jittered exponential, as gRPC's connection backoff
//! (<https://github.com/grpc/grpc/blob/master/doc/connection-backoff.md>): 1 s initial, ×1.6,
//! at most 120 s, ±20 % jitter, back to the initial delay once a stream got a response.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Backoff settings. The defaults are gRPC's; tests inject short ones.
#[derive(Clone, Debug, PartialEq)]
pub struct Backoff {
    /// First delay.
    pub initial: Duration,
    /// Growth per failed attempt.
    pub multiplier: f64,
    /// Largest delay.
    pub max: Duration,
    /// Jitter as a fraction of the delay (0.2: ±20 %).
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            multiplier: 1.6,
            max: Duration::from_secs(120),
            jitter: 0.2,
        }
    }
}

/// The delays of successive attempts.
#[derive(Debug)]
pub(crate) struct BackoffState {
    config: Backoff,
    current: Duration,
    rng: SmallRng,
}

impl BackoffState {
    pub(crate) fn new(config: Backoff, seed: u64) -> Self {
        Self {
            current: config.initial,
            config,
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    /// The next delay (jittered), growing the base for the one after.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let base = self.current;
        self.current = base
            .mul_f64(self.config.multiplier.max(1.0))
            .min(self.config.max);
        let j = self.config.jitter.clamp(0.0, 1.0);
        let factor = if j > 0.0 {
            self.rng.random_range(1.0 - j..=1.0 + j)
        } else {
            1.0
        };
        base.mul_f64(factor)
    }

    /// Back to the initial delay (a stream received a response).
    pub(crate) fn reset(&mut self) {
        self.current = self.config.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_by_1_6_up_to_the_cap_with_bounded_jitter() {
        let mut b = BackoffState::new(Backoff::default(), 7);
        let mut base = 1.0f64;
        for _ in 0..20 {
            let d = b.next_delay().as_secs_f64();
            assert!(
                d >= base * 0.8 - 1e-9 && d <= base * 1.2 + 1e-9,
                "{d} vs {base}"
            );
            base = (base * 1.6).min(120.0);
        }
        b.reset();
        let d = b.next_delay().as_secs_f64();
        assert!((0.8..=1.2).contains(&d));
    }

    /// Two workloads' clients draw different delays: the seed comes from the OS, not a
    /// constant (a fixed seed made a fleet reconnect in lockstep).
    #[test]
    fn two_clients_jitter_differently() {
        let workload = mesh_core::Workload::new("default", "a");
        let target = || crate::bootstrap::XdsTarget::Tcp("127.0.0.1:1".into());
        let a = super::super::XdsClientConfig::new(target(), &workload);
        let b = super::super::XdsClientConfig::new(target(), &workload);
        assert_ne!(a.seed, b.seed);
        let delays = |seed| {
            let mut s = BackoffState::new(Backoff::default(), seed);
            (0..4).map(|_| s.next_delay()).collect::<Vec<_>>()
        };
        assert_ne!(delays(a.seed), delays(b.seed));
        assert_eq!(delays(a.seed), delays(a.seed), "an injected seed replays");
        assert_eq!(a.seed(9).seed, 9);
    }
}
