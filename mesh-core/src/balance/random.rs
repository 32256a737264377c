//! RANDOM: a weighted random draw over a set of endpoints, also the sampler the
//! power-of-two-choices balancers draw their candidates with.
//!
//! With equal weights a draw is one uniform index. Otherwise it is a binary search of a uniform
//! number in the cumulative weights (O(log n), ~10 steps at 1,000 endpoints), precomputed when the
//! set is built so a draw never allocates.

use rand::Rng;

/// A set of endpoint indices with their weights, ready to draw from.
#[derive(Debug, Clone)]
pub(crate) struct WeightedSampler {
    members: Box<[u32]>,
    /// Running sums of the weights when they differ; `None` when uniform.
    cumulative: Option<Box<[u64]>>,
}

impl WeightedSampler {
    /// A sampler over `members` (endpoint indices), weighted by `weights[member]`.
    pub(crate) fn new(members: Vec<u32>, weights: &[u32]) -> Self {
        let weight = |m: &u32| u64::from(weights.get(*m as usize).copied().unwrap_or(1).max(1));
        let uniform = members.windows(2).all(|w| weight(&w[0]) == weight(&w[1]));
        let cumulative = (!uniform).then(|| {
            members
                .iter()
                .scan(0u64, |sum, m| {
                    *sum += weight(m);
                    Some(*sum)
                })
                .collect()
        });
        Self {
            members: members.into_boxed_slice(),
            cumulative,
        }
    }

    /// One weighted draw.
    #[inline]
    pub(crate) fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Option<u32> {
        match &self.cumulative {
            None => {
                if self.members.is_empty() {
                    return None;
                }
                self.members
                    .get(rng.random_range(0..self.members.len()))
                    .copied()
            }
            Some(cumulative) => {
                let total = *cumulative.last()?;
                self.by_point(cumulative, rng.random_range(0..total))
            }
        }
    }

    /// Two draws for power of two choices: distinct when weights are uniform and there are at
    /// least two members (as tower's p2c), independent weighted draws otherwise (as Envoy's).
    #[inline]
    pub(crate) fn sample_two<R: Rng + ?Sized>(&self, rng: &mut R) -> Option<(u32, u32)> {
        let n = self.members.len();
        if self.cumulative.is_none() && n >= 2 {
            let a = rng.random_range(0..n);
            let mut b = rng.random_range(0..n - 1);
            if b >= a {
                b += 1;
            }
            return Some((self.members[a], self.members[b]));
        }
        Some((self.sample(rng)?, self.sample(rng)?))
    }

    /// A draw decided by `hash` instead of the RNG: the same hash picks the same member of the
    /// same set.
    pub(crate) fn by_hash(&self, hash: u64) -> Option<u32> {
        match &self.cumulative {
            None => {
                let n = self.members.len() as u64;
                if n == 0 {
                    return None;
                }
                self.members.get((hash % n) as usize).copied()
            }
            Some(cumulative) => {
                let total = *cumulative.last()?;
                self.by_point(cumulative, hash % total)
            }
        }
    }

    #[inline]
    fn by_point(&self, cumulative: &[u64], point: u64) -> Option<u32> {
        let i = cumulative.partition_point(|&sum| sum <= point);
        self.members.get(i).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn weighted_draws_follow_weights() {
        let weights = [1, 2, 3, 4];
        let sampler = WeightedSampler::new(vec![0, 1, 2, 3], &weights);
        let mut rng = SmallRng::seed_from_u64(7);
        let n = 100_000;
        let mut counts = [0u32; 4];
        for _ in 0..n {
            counts[sampler.sample(&mut rng).unwrap() as usize] += 1;
        }
        for (i, &c) in counts.iter().enumerate() {
            let p = f64::from(weights[i]) / 10.0;
            crate::balance::test_util::assert_within_5_sigma(c, n, p);
        }
    }

    #[test]
    fn uniform_pairs_are_distinct() {
        let sampler = WeightedSampler::new(vec![3, 5], &[1; 6]);
        let mut rng = SmallRng::seed_from_u64(1);
        for _ in 0..100 {
            let (a, b) = sampler.sample_two(&mut rng).unwrap();
            assert_ne!(a, b);
        }
        assert_eq!(WeightedSampler::new(vec![], &[]).sample(&mut rng), None);
    }
}
