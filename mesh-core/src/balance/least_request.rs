//! LEAST_REQUEST: power of two choices on in-flight requests.
//!
//! Two candidates are drawn and the one with fewer requests in flight wins (Mitzenmacher, "The
//! Power of Two Choices in Randomized Load Balancing", 2001): nearly the balance of scanning for
//! the least loaded endpoint, at the cost of two random draws.
//!
//! With equal weights this is Envoy's P2C
//! (<https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/load_balancing/load_balancers#weighted-least-request>).
//! When weights differ, Envoy switches to an EDF schedule whose weights are
//! `weight / (active + 1)`, which needs a lock around the scheduler. We keep the lock-free shape
//! instead: candidates are drawn in proportion to their weights, and the one with the lower load
//! *per unit of weight* (`active / weight`) wins, the first draw on a tie. With no load this
//! reduces to a weighted random draw (exact weight proportions), and under load it steers towards
//! `active ∝ weight`, which is what Envoy's dynamic weights aim at.

use std::sync::Arc;

use rand::Rng;

use super::random::WeightedSampler;
use super::stats::EndpointStats;

/// Picks the less loaded of two weighted draws from `candidates`.
#[inline]
pub(crate) fn pick<R: Rng + ?Sized>(
    candidates: &WeightedSampler,
    stats: &[Arc<EndpointStats>],
    weights: &[u32],
    rng: &mut R,
) -> Option<u32> {
    let (a, b) = candidates.sample_two(rng)?;
    let load = |i: u32| u64::from(stats[i as usize].in_flight());
    let weight = |i: u32| u64::from(weights[i as usize].max(1));
    // active_b / w_b < active_a / w_a, cross-multiplied.
    if load(b) * weight(a) < load(a) * weight(b) {
        Some(b)
    } else {
        Some(a)
    }
}
