//! The route's weighted choice of cluster (VirtualService `route[].weight`).
//!
//! Envoy draws a number in `0..total_weight` and walks the destinations' running sums; so do we,
//! with the caller's RNG, so the split is exact in the long run and reproducible under a seed.
//! Routes have a handful of destinations, so a linear walk beats anything precomputed.

use rand::Rng;

use crate::model::WeightedCluster;

/// A weighted choice over a route's destinations.
#[derive(Clone, Copy, Debug)]
pub struct WeightedPick<'a> {
    clusters: &'a [WeightedCluster],
    total: u64,
}

impl<'a> WeightedPick<'a> {
    /// Prepares a choice over `clusters` (weights are summed once).
    pub fn new(clusters: &'a [WeightedCluster]) -> Self {
        let total = clusters.iter().map(|c| u64::from(c.weight)).sum();
        Self { clusters, total }
    }

    /// Sum of the weights.
    pub fn total_weight(&self) -> u64 {
        self.total
    }

    /// Draws a destination in proportion to its weight; `None` when there is none or all weights
    /// are zero.
    #[inline]
    pub fn pick<R: Rng + ?Sized>(&self, rng: &mut R) -> Option<&'a WeightedCluster> {
        if self.total == 0 {
            return None;
        }
        if let [only] = self.clusters {
            return Some(only);
        }
        let mut point = rng.random_range(0..self.total);
        self.clusters.iter().find(|c| {
            let w = u64::from(c.weight);
            if point < w {
                true
            } else {
                point -= w;
                false
            }
        })
    }
}
