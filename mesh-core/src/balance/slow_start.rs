//! Slow start (Istio's `loadBalancer.warmup`, Envoy's `slow_start_config`): an endpoint that
//! joined the cluster less than a window ago takes only part of its weight, growing with its age,
//! so a cold instance is not handed its full share at once.
//!
//! Envoy (`EdfLoadBalancerBase::applySlowStartFactor`, load_balancer_impl.cc) scales the weight
//! of a healthy endpoint in its window by
//! `max(min_weight_percent / 100, time_factor ^ (1 / aggression))`, where
//! `time_factor = max(age, 1 ms) / window`, and the age counts from when the endpoint was first
//! seen healthy (with no active health checking, when it joined). Only ROUND_ROBIN and
//! LEAST_REQUEST take it (and mesh's PEAK_EWMA, which stands in for LEAST_REQUEST).
//!
//! mesh's picks are lock-free over tables built once per config version, so the time-varying
//! factor is applied by rejection: the policy proposes an endpoint as usual and the proposal is
//! kept with probability equal to its factor, else the policy proposes again. Proposals in
//! proportion to `weight` kept with probability `factor` give picks in proportion to
//! `weight × factor`, Envoy's effective weight. When no endpoint is in its window (Envoy's
//! `noHostsAreInSlowStart`) nothing is drawn and the pick costs one comparison.

use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use super::stats::EndpointStats;
use crate::model::SlowStart;

/// Proposals tried before the last one is taken anyway. Factors are at least
/// `min_weight_percent`, and any endpoint out of its window is always kept, so this bound is
/// reached only when every endpoint is new and the minimum is tiny; then all factors are nearly
/// equal and taking the last proposal hardly biases the pick.
const MAX_PROPOSALS: usize = 64;

/// A cluster's slow-start settings, ready for picks.
#[derive(Debug, Clone)]
pub(crate) struct Ramp {
    window: Duration,
    inverse_aggression: f64,
    min_factor: f64,
    /// After this instant no endpoint of this balancer version is in its window.
    until: Instant,
}

impl Ramp {
    /// The ramp for endpoints `stats` (`None` when there are none).
    pub(crate) fn new(config: &SlowStart, stats: &[std::sync::Arc<EndpointStats>]) -> Option<Self> {
        let latest = stats.iter().map(|s| s.added()).max()?;
        let aggression = if config.aggression > 0.0 && config.aggression.is_finite() {
            config.aggression
        } else {
            1.0
        };
        Some(Self {
            window: config.window,
            inverse_aggression: 1.0 / aggression,
            min_factor: (config.min_weight_percent / 100.0).clamp(0.0, 1.0),
            until: latest + config.window,
        })
    }

    /// Whether some endpoint may be in its window at `now`.
    #[inline]
    pub(crate) fn active(&self, now: Instant) -> bool {
        now < self.until
    }

    /// The share of its weight an endpoint that joined at `added` takes at `now`.
    pub(crate) fn factor(&self, added: Instant, now: Instant) -> f64 {
        let age = now.saturating_duration_since(added);
        if age >= self.window {
            return 1.0;
        }
        let time_factor =
            age.max(Duration::from_millis(1)).as_secs_f64() / self.window.as_secs_f64();
        let scaled = if self.inverse_aggression == 1.0 {
            time_factor
        } else {
            time_factor.powf(self.inverse_aggression)
        };
        scaled.max(self.min_factor).min(1.0)
    }

    /// Runs `propose` until a proposal is kept by its factor (at most [`MAX_PROPOSALS`] times).
    #[inline]
    pub(crate) fn pick<R: Rng + ?Sized>(
        &self,
        stats: &[std::sync::Arc<EndpointStats>],
        now: Instant,
        rng: &mut R,
        mut propose: impl FnMut(&mut R) -> Option<u32>,
    ) -> Option<u32> {
        let mut last = None;
        for _ in 0..MAX_PROPOSALS {
            let i = propose(rng)?;
            let factor = self.factor(stats[i as usize].added(), now);
            if factor >= 1.0 || rng.random::<f64>() < factor {
                return Some(i);
            }
            last = Some(i);
        }
        last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(aggression: f64, min_weight_percent: f64, now: Instant) -> Ramp {
        Ramp {
            window: Duration::from_secs(100),
            inverse_aggression: 1.0 / aggression,
            min_factor: min_weight_percent / 100.0,
            until: now,
        }
    }

    /// Envoy's formula (`applySlowStartFactor`): linear with aggression 1, `tf^(1/a)` otherwise,
    /// never under the minimum, 1 once the window is over.
    #[test]
    fn factor_follows_envoy() {
        let t0 = Instant::now();
        let r = ramp(1.0, 10.0, t0);
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert!((r.factor(t0, at(50)) - 0.5).abs() < 1e-9);
        assert!((r.factor(t0, at(5)) - 0.1).abs() < 1e-9, "minimum 10 %");
        assert!((r.factor(t0, at(1)) - 0.1).abs() < 1e-9);
        assert_eq!(r.factor(t0, at(100)), 1.0);
        assert_eq!(r.factor(t0, at(500)), 1.0);
        let r = ramp(2.0, 0.0, t0);
        assert!((r.factor(t0, at(25)) - 0.5).abs() < 1e-9, "0.25^(1/2)");
        // An age under 1 ms counts as 1 ms.
        let r = ramp(1.0, 0.0, t0);
        assert!((r.factor(t0, t0) - 1e-5).abs() < 1e-12);
    }
}
