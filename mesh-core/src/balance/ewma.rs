//! Peak-EWMA latency: an exponentially weighted moving average that jumps to any higher sample.
//!
//! The estimator follows Finagle's `PeakEwma` and linkerd's (tower's `balance::p2c` with
//! `PeakEwma` load): a sample above the estimate replaces it at once (the "peak"), a lower sample
//! is blended in with weight `1 - e^(-Δt/τ)`, where Δt is the time since the previous update.
//! When reading a cost, the estimate is decayed by `e^(-Δt/τ)` for the time since the last
//! sample, so an endpoint that stopped getting traffic because it was slow is tried again in time.
//! The defaults are linkerd's: τ = 10 s and a 30 ms prior for endpoints with no sample yet.
//!
//! See <https://twitter.github.io/finagle/guide/Clients.html#power-of-two-choices-p2c-least-loaded>
//! and <https://linkerd.io/2016/03/16/beyond-round-robin-load-balancing-for-latency/>.
//!
//! The estimate is two atomics (the value as `f64` bits and the time of the last update). Two
//! completions racing can interleave their read-modify-write; the loser's sample is then blended
//! from a slightly stale estimate. That costs a little accuracy, never a lock on the request path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Parameters of the peak-EWMA estimator.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EwmaConfig {
    /// The estimate assumed for an endpoint with no sample yet.
    pub default_rtt: Duration,
    /// The decay time constant τ.
    pub decay: Duration,
}

impl Default for EwmaConfig {
    /// linkerd's defaults: 30 ms prior, τ = 10 s.
    fn default() -> Self {
        Self {
            default_rtt: Duration::from_millis(30),
            decay: Duration::from_secs(10),
        }
    }
}

/// One endpoint's peak-EWMA latency estimate, in nanoseconds.
#[derive(Debug)]
pub(crate) struct PeakEwma {
    /// The estimate in nanoseconds, as `f64` bits.
    rtt_ns: AtomicU64,
    /// When the estimate was last updated, in nanoseconds since `epoch`.
    stamp_ns: AtomicU64,
    epoch: Instant,
    decay_ns: f64,
}

impl PeakEwma {
    pub(crate) fn new(config: EwmaConfig, epoch: Instant, now: Instant) -> Self {
        let rtt = config.default_rtt.as_nanos() as f64;
        Self {
            rtt_ns: AtomicU64::new(rtt.to_bits()),
            stamp_ns: AtomicU64::new(since(epoch, now)),
            epoch,
            // A zero decay would divide by zero; one nanosecond means "no memory".
            decay_ns: (config.decay.as_nanos() as f64).max(1.0),
        }
    }

    /// The estimate at `now`, decayed for the time since the last sample.
    pub(crate) fn estimate(&self, now: Instant) -> f64 {
        let rtt = f64::from_bits(self.rtt_ns.load(Ordering::Relaxed));
        let elapsed = since(self.epoch, now).saturating_sub(self.stamp_ns.load(Ordering::Relaxed));
        if elapsed == 0 {
            return rtt;
        }
        rtt * (-(elapsed as f64) / self.decay_ns).exp()
    }

    /// Folds in one round-trip time observed at `now`.
    pub(crate) fn observe(&self, rtt: Duration, now: Instant) {
        let sample = rtt.as_nanos() as f64;
        let now_ns = since(self.epoch, now);
        let elapsed = now_ns.saturating_sub(self.stamp_ns.load(Ordering::Relaxed));
        let current = f64::from_bits(self.rtt_ns.load(Ordering::Relaxed));
        let next = if sample > current {
            sample
        } else {
            let keep = (-(elapsed as f64) / self.decay_ns).exp();
            current * keep + sample * (1.0 - keep)
        };
        self.rtt_ns.store(next.to_bits(), Ordering::Relaxed);
        self.stamp_ns.fetch_max(now_ns, Ordering::Relaxed);
    }
}

fn since(epoch: Instant, now: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_is_taken_at_once_and_decays_back() {
        let t0 = Instant::now();
        let config = EwmaConfig::default();
        let ewma = PeakEwma::new(config, t0, t0);
        assert_eq!(ewma.estimate(t0), 30e6);
        ewma.observe(Duration::from_millis(100), t0);
        assert_eq!(ewma.estimate(t0), 100e6);
        // A fast sample right after barely moves a fresh peak.
        ewma.observe(Duration::from_millis(1), t0 + Duration::from_millis(1));
        let e = ewma.estimate(t0 + Duration::from_millis(1));
        assert!(e > 99e6 && e < 100e6, "{e}");
        // After τ with no samples, the estimate read has decayed by e.
        let later = t0 + Duration::from_millis(1) + config.decay;
        let decayed = ewma.estimate(later);
        assert!((decayed - e / std::f64::consts::E).abs() < 1e3, "{decayed}");
        // Fast samples spaced by τ pull it down towards them.
        let mut t = later;
        for _ in 0..10 {
            t += config.decay;
            ewma.observe(Duration::from_millis(1), t);
        }
        assert!(ewma.estimate(t) < 1.1e6, "{}", ewma.estimate(t));
    }
}
