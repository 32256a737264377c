//! RING_HASH: Ketama-style consistent hashing.
//!
//! Every endpoint is hashed onto a 64-bit ring at several points (`xxHash64("<address>_<i>")`,
//! as Envoy names its ring entries), the number of points proportional to its weight. A request
//! hash is served by the first point at or after it, wrapping around. Removing an endpoint only
//! moves the keys that landed on its points, about 1/N of them.
//!
//! Ring size follows Envoy's rule
//! (<https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/cluster/v3/cluster.proto#config-cluster-v3-cluster-ringhashlbconfig>)
//! that the lightest endpoint gets at least `ceil(min_ring_size × its share)` points and the
//! ring at most 8,388,608, with one deliberate difference: that count is rounded up to a power
//! of two (and the others scaled by weight from it), so that removing or adding one endpoint
//! leaves the other endpoints' points unchanged and only about 1/N of the keys move, as Ketama
//! promises. (Envoy rescales every endpoint's points when N changes, moving more keys.) An ejected endpoint is skipped by walking on along the ring, which is
//! where its keys would land were the ring rebuilt without it.

use std::fmt::Write as _;

use super::hash::hash_key;

/// Istio's default `minimumRingSize`.
pub(crate) const DEFAULT_MIN_RING_SIZE: u64 = 1024;
/// Envoy's default (and our hard) `maximum_ring_size`.
pub(crate) const MAX_RING_SIZE: u64 = 8 * 1024 * 1024;
/// How far a pick walks past ejected endpoints before giving up on the ring.
const MAX_WALK: usize = 256;

/// A hash ring over some endpoints.
pub(crate) struct Ring {
    /// (point, endpoint index), sorted by point.
    points: Box<[(u64, u32)]>,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The table can hold millions of entries: show its size only.
        f.debug_struct("Ring")
            .field("len", &self.points.len())
            .finish()
    }
}

impl Ring {
    /// Builds the ring for `members` (endpoint indices) weighted by `weights[member]`, naming
    /// each endpoint by `name(member)`.
    pub(crate) fn new(
        members: &[u32],
        weights: &[u32],
        name: impl Fn(u32) -> String,
        min_ring_size: u64,
    ) -> Self {
        if members.is_empty() {
            return Self {
                points: Box::new([]),
            };
        }
        let min_ring_size = if min_ring_size == 0 {
            DEFAULT_MIN_RING_SIZE
        } else {
            min_ring_size.min(MAX_RING_SIZE)
        };
        let weight = |m: u32| u64::from(weights.get(m as usize).copied().unwrap_or(1).max(1));
        let sum: u64 = members.iter().map(|&m| weight(m)).sum();
        let lightest = members.iter().map(|&m| weight(m)).min().unwrap_or(1);
        // Points of the lightest endpoint: its share of the minimum ring, rounded up to a power of
        // two so that a small change in membership leaves every other endpoint's points as they
        // were (only the removed endpoint's keys move).
        let mut per_unit = (u128::from(min_ring_size) * u128::from(lightest))
            .div_ceil(u128::from(sum))
            .max(1)
            .next_power_of_two() as u64;
        // Stay under the maximum ring size by halving (heavy weight skews only).
        while per_unit > 1 && points_for(members, &weight, lightest, per_unit) > MAX_RING_SIZE {
            per_unit /= 2;
        }
        // With a weight skew past MAX_RING_SIZE (one point for the lightest endpoint, billions
        // for a heavy one: weights are u32 from the control plane) the ring is shared by weight
        // within the maximum instead, as Envoy's `RingHashLoadBalancer::Ring::Ring`
        // (ring_hash_lb.cc) caps `scale` at `max_ring_size`; every endpoint keeps one point.
        let skewed = points_for(members, &weight, lightest, per_unit) > MAX_RING_SIZE;
        let count = |m: u32| {
            if skewed {
                let share = u128::from(weight(m)) * u128::from(MAX_RING_SIZE) / u128::from(sum);
                u64::try_from(share).unwrap_or(MAX_RING_SIZE).max(1)
            } else {
                (per_unit * weight(m)).div_ceil(lightest)
            }
        };
        let total: u64 = members.iter().map(|&m| count(m)).sum();
        let mut points = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
        let mut key = String::new();
        for &m in members {
            let base = name(m);
            let count = count(m);
            for i in 0..count {
                key.clear();
                // Writing to a String cannot fail.
                let _ = write!(key, "{base}_{i}");
                points.push((hash_key(key.as_bytes()), m));
            }
        }
        points.sort_unstable();
        Self {
            points: points.into_boxed_slice(),
        }
    }

    /// The endpoint serving `hash`: the first point at or after it for which `usable` holds.
    #[inline]
    pub(crate) fn pick(&self, hash: u64, usable: impl Fn(u32) -> bool) -> Option<u32> {
        let len = self.points.len();
        if len == 0 {
            return None;
        }
        let start = self.points.partition_point(|&(p, _)| p < hash);
        (0..len.min(MAX_WALK))
            .map(|k| self.points[(start + k) % len].1)
            .find(|&i| usable(i))
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.points.len()
    }
}

/// Total points when the lightest endpoint gets `per_unit`.
fn points_for(members: &[u32], weight: &impl Fn(u32) -> u64, lightest: u64, per_unit: u64) -> u64 {
    members
        .iter()
        .map(|&m| (per_unit * weight(m)).div_ceil(lightest))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_size_follows_envoy_scaling() {
        let members: Vec<u32> = (0..1000).collect();
        let ring = Ring::new(&members, &[1; 1000], |m| format!("10.0.0.{m}:80"), 1024);
        // Each of 1,000 equal endpoints gets ceil(1024/1000) = 2 points.
        assert_eq!(ring.len(), 2000);
        let ring = Ring::new(&[0, 1], &[1, 3], |m| m.to_string(), 1024);
        // The light one gets ceil(0.25 × 1024) = 256 points, the heavy one 768.
        assert_eq!(ring.len(), 1024);
        // 10 or 9 endpoints: 103 or 114 points each, both rounded up to 128.
        let ten: Vec<u32> = (0..10).collect();
        assert_eq!(
            Ring::new(&ten, &[1; 10], |m| m.to_string(), 1024).len(),
            1280
        );
        assert_eq!(
            Ring::new(&ten[..9], &[1; 10], |m| m.to_string(), 1024).len(),
            1152
        );
    }

    /// Found by mesh-fuzz (xds target): endpoint weights 1 and u32::MAX from a control plane
    /// made the ring reserve 2^32 points (64 GiB) and abort the process; many heavy endpoints
    /// would have filled 8,388,608 points each. The ring now stays within the maximum (plus one
    /// point per endpoint), shared by weight as Envoy's ring_hash_lb.cc scales it.
    #[test]
    fn extreme_weight_skew_stays_within_the_maximum_ring() {
        let members: Vec<u32> = (0..4).collect();
        let weights = [1, u32::MAX, u32::MAX, u32::MAX / 2];
        let ring = Ring::new(&members, &weights, |m| m.to_string(), 1024);
        assert!(ring.len() as u64 <= MAX_RING_SIZE + 4, "{}", ring.len());
        let count = |e: u32| ring.points.iter().filter(|&&(_, m)| m == e).count() as u64;
        assert_eq!(count(0), 1, "the light endpoint keeps one point");
        assert!(count(1).abs_diff(2 * count(3)) <= 2, "shared by weight");
        assert!(count(1).abs_diff(count(2)) <= 1, "shared by weight");
    }
}
