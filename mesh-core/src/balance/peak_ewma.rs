//! PEAK_EWMA: power of two choices on latency × load.
//!
//! Each candidate's cost is its peak-EWMA round-trip estimate times (in-flight + 1), the load
//! metric of Finagle's `PeakEwma` balancer and of linkerd (tower's `p2c` with `PeakEwma`):
//! <https://twitter.github.io/finagle/guide/Clients.html#power-of-two-choices-p2c-least-loaded>,
//! <https://linkerd.io/2016/03/16/beyond-round-robin-load-balancing-for-latency/>. A slow
//! endpoint is avoided as soon as one slow response is seen (the estimate jumps to the peak),
//! and tried again as its estimate decays. Weights decide how often an endpoint is drawn as a
//! candidate (so with no load signal the split follows the weights); the cost alone decides
//! between the two, the first draw on a tie.

use std::sync::Arc;

use rand::Rng;
use tokio::time::Instant;

use super::random::WeightedSampler;
use super::stats::EndpointStats;

/// Picks the cheaper of two weighted draws from `candidates` at `now`.
#[inline]
pub(crate) fn pick<R: Rng + ?Sized>(
    candidates: &WeightedSampler,
    stats: &[Arc<EndpointStats>],
    now: Instant,
    rng: &mut R,
) -> Option<u32> {
    let (a, b) = candidates.sample_two(rng)?;
    if a == b {
        return Some(a);
    }
    let cost = |i: u32| stats[i as usize].peak_ewma_cost(now);
    if cost(b) < cost(a) { Some(b) } else { Some(a) }
}
