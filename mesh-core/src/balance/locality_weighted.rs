//! Locality-weighted balancing: within a priority level, a locality is chosen by its weight
//! scaled by its health, then an endpoint within it by the cluster's policy.
//!
//! Envoy's rule (<https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/load_balancing/locality_weight>),
//! which gRPC's `weighted_target` policy (gRFC A27) follows too: a locality's *effective* weight
//! is `weight × min(1, 1.4 × healthy / total)` with host counts, so a locality keeps its whole
//! share while at least ~72 % of its hosts are healthy and loses it in proportion below that.
//! A priority level in panic ignores locality weights and balances over all its hosts, as Envoy.
//!
//! The static part (which endpoints form each locality of each level, and the localities'
//! weights) is computed once per cluster version; the effective weights and per-locality
//! candidates are part of the [`HealthView`](super::priority::HealthView), recomputed only when
//! the health generation moves, so a pick is one more draw and a binary search over a handful
//! of localities.
//!
//! Consistent-hash policies need the same key to land on the same endpoint, so for them the
//! locality weights are folded into endpoint weights once (`locality weight × endpoint weight /
//! locality's total weight`), as Envoy does when it builds its ring or Maglev table.

use std::collections::BTreeMap;

use rand::Rng;

use super::random::WeightedSampler;
use crate::model::{Endpoint, Locality};

/// Envoy's overprovisioning factor, in percent.
const OVERPROVISIONING: u128 = 140;

/// Resolution of effective weights: a fully available locality of weight `w` weighs `w × SCALE`.
const SCALE: u128 = 1_000_000;

/// Largest folded endpoint weight (the heaviest endpoint of a level gets this).
const FOLDED_MAX: f64 = 1_000_000.0;

/// One locality of one priority level.
#[derive(Debug)]
pub(crate) struct LocalityGroup {
    /// Every endpoint of the locality at this level, eligible or not (indices into the
    /// cluster's endpoints).
    pub(crate) members: Box<[u32]>,
    /// The locality's weight from the control plane, or the sum of its endpoints' weights.
    pub(crate) weight: u32,
}

/// Splits one level's `members` by locality. Empty when the level has at most one locality:
/// choosing among one is no choice, and the pick skips the step.
pub(crate) fn groups(
    endpoints: &[Endpoint],
    members: &[u32],
    weights: &[u32],
) -> Vec<LocalityGroup> {
    let mut by_locality: BTreeMap<&Locality, Vec<u32>> = BTreeMap::new();
    for &i in members {
        by_locality
            .entry(&endpoints[i as usize].locality)
            .or_default()
            .push(i);
    }
    if by_locality.len() < 2 {
        return Vec::new();
    }
    by_locality
        .into_values()
        .map(|members| {
            let weight = endpoints[members[0] as usize]
                .locality_weight
                .unwrap_or_else(|| {
                    let sum: u64 = members
                        .iter()
                        .map(|&i| u64::from(weights[i as usize].max(1)))
                        .sum();
                    u32::try_from(sum).unwrap_or(u32::MAX)
                });
            LocalityGroup {
                members: members.into_boxed_slice(),
                weight: weight.max(1),
            }
        })
        .collect()
}

/// Envoy's effective locality weight: `weight × min(1, 1.4 × healthy / total)`, scaled by
/// [`SCALE`]; 0 when no host of the locality is healthy.
pub(crate) fn effective_weight(weight: u32, healthy: usize, total: usize) -> u64 {
    let (healthy, total) = (healthy as u128, total as u128);
    if healthy == 0 || total == 0 {
        return 0;
    }
    let availability = (SCALE * total).min(SCALE * OVERPROVISIONING * healthy / 100);
    u64::try_from(u128::from(weight) * availability / total).unwrap_or(u64::MAX)
}

/// Rewrites `weights` of one level's endpoints so that each locality's endpoints together weigh
/// in proportion to the locality's weight (for consistent-hash tables).
pub(crate) fn fold(groups: &[LocalityGroup], weights: &mut [u32]) {
    let shares: Vec<(u32, f64)> = groups
        .iter()
        .flat_map(|g| {
            let total: f64 = g
                .members
                .iter()
                .map(|&i| f64::from(weights[i as usize].max(1)))
                .sum();
            let weights = &*weights;
            g.members.iter().map(move |&i| {
                let share = f64::from(g.weight) * f64::from(weights[i as usize].max(1)) / total;
                (i, share)
            })
        })
        .collect();
    let max = shares.iter().map(|&(_, s)| s).fold(0.0, f64::max);
    if max <= 0.0 {
        return;
    }
    for (i, share) in shares {
        // In 1..=FOLDED_MAX by construction, so the conversion is exact enough and never wraps.
        weights[i as usize] = ((share * FOLDED_MAX / max).round() as u32).max(1);
    }
}

/// The localities of one level for one health generation: their effective weights and healthy
/// endpoints.
#[derive(Debug)]
pub(crate) struct LocalityView {
    /// Running sums of the effective weights, parallel to the level's groups.
    cumulative: Box<[u64]>,
    /// Each locality's healthy endpoints.
    pub(crate) candidates: Box<[WeightedSampler]>,
}

impl LocalityView {
    /// The view of `groups` where `usable(i)` says whether endpoint `i` is healthy; `None` when
    /// no locality has a healthy endpoint.
    pub(crate) fn new(
        groups: &[LocalityGroup],
        weights: &[u32],
        usable: impl Fn(u32) -> bool,
    ) -> Option<Self> {
        let mut sum = 0u64;
        let mut cumulative = Vec::with_capacity(groups.len());
        let mut candidates = Vec::with_capacity(groups.len());
        for g in groups {
            let healthy: Vec<u32> = g.members.iter().copied().filter(|&i| usable(i)).collect();
            sum = sum.saturating_add(effective_weight(g.weight, healthy.len(), g.members.len()));
            cumulative.push(sum);
            candidates.push(WeightedSampler::new(healthy, weights));
        }
        (sum > 0).then(|| Self {
            cumulative: cumulative.into_boxed_slice(),
            candidates: candidates.into_boxed_slice(),
        })
    }

    /// Draws a locality in proportion to its effective weight: an index into the level's groups.
    #[inline]
    pub(crate) fn draw<R: Rng + ?Sized>(&self, rng: &mut R) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0);
        let point = if total == 0 {
            0
        } else {
            rng.random_range(0..total)
        };
        self.cumulative
            .partition_point(|&sum| sum <= point)
            .min(self.cumulative.len().saturating_sub(1))
    }

    /// Each locality's share of the level, in parts per million (for diagnostics and tests).
    pub(crate) fn shares(&self) -> Vec<u64> {
        let total = self.cumulative.last().copied().unwrap_or(0).max(1);
        let mut previous = 0;
        self.cumulative
            .iter()
            .map(|&c| {
                let share = u64::try_from(u128::from(c - previous) * 1_000_000 / u128::from(total))
                    .unwrap_or(0);
                previous = c;
                share
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_weight_is_envoys() {
        let full = effective_weight(10, 10, 10);
        assert_eq!(full, 10 * 1_000_000);
        // 80 % healthy × 1.4 ≥ 1: whole weight.
        assert_eq!(effective_weight(10, 8, 10), full);
        // 50 % healthy × 1.4 = 0.7.
        assert_eq!(effective_weight(10, 5, 10), 7 * 1_000_000);
        assert_eq!(effective_weight(10, 0, 10), 0);
        // One healthy host of a thousand still counts.
        assert!(effective_weight(1, 1, 1000) > 0);
    }

    #[test]
    fn shares_match_envoys_documented_table() {
        // X weighs 1, Y weighs 2 and is fully available; the table in Envoy's
        // `locality_weight` page, within its one-percent rounding.
        for (healthy_x, percent_x) in [(100, 33), (70, 33), (69, 32), (50, 26), (25, 15), (0, 0)] {
            let x = effective_weight(1, healthy_x, 100) as f64;
            let y = effective_weight(2, 100, 100) as f64;
            let share = 100.0 * x / (x + y);
            assert!(
                (share - f64::from(percent_x)).abs() <= 1.0,
                "{healthy_x} % healthy: {share:.2} % against {percent_x} %"
            );
        }
    }

    #[test]
    fn folding_keeps_locality_proportions() {
        let groups = [
            LocalityGroup {
                members: vec![0, 1].into_boxed_slice(),
                weight: 3,
            },
            LocalityGroup {
                members: vec![2, 3, 4, 5].into_boxed_slice(),
                weight: 1,
            },
        ];
        let mut weights = vec![1; 6];
        fold(&groups, &mut weights);
        let a: u64 = weights[..2].iter().map(|&w| u64::from(w)).sum();
        let b: u64 = weights[2..].iter().map(|&w| u64::from(w)).sum();
        let ratio = a as f64 / b as f64;
        assert!((ratio - 3.0).abs() < 1e-4, "{weights:?}");
    }
}
