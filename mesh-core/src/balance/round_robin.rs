//! ROUND_ROBIN: endpoints in turn, each as often as its weight, without a lock.
//!
//! With equal weights the schedule is the endpoint list itself. With different weights it is an
//! earliest-deadline-first schedule, as Envoy's weighted round robin uses
//! (<https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/load_balancing/load_balancers#weighted-round-robin>):
//! endpoint *i*'s *k*-th turn is due at `k / weight_i`, and turns are served in deadline order, so
//! heavy endpoints are interleaved with light ones instead of served in bursts. The schedule is
//! computed once per config version (weights divided by their GCD, scaled down to at most
//! 65,536 slots), and a pick is one `fetch_add` on a shared counter plus an index. Ejected
//! endpoints are skipped by walking on in the schedule.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Longest schedule built; larger weight sums are scaled down proportionally.
const MAX_SCHEDULE: u64 = 65_536;

/// A precomputed round-robin schedule with its cursor.
pub(crate) struct RoundRobin {
    schedule: Box<[u32]>,
    next: AtomicUsize,
}

impl std::fmt::Debug for RoundRobin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The table can hold millions of entries: show its size only.
        f.debug_struct("RoundRobin")
            .field("len", &self.schedule.len())
            .finish()
    }
}

impl RoundRobin {
    /// The schedule over `members` (endpoint indices) weighted by `weights[member]`.
    pub(crate) fn new(members: &[u32], weights: &[u32]) -> Self {
        let weight = |m: u32| u64::from(weights.get(m as usize).copied().unwrap_or(1).max(1));
        let uniform = members.windows(2).all(|w| weight(w[0]) == weight(w[1]));
        let schedule = if uniform {
            members.to_vec()
        } else {
            edf_schedule(
                members,
                &members.iter().map(|&m| weight(m)).collect::<Vec<_>>(),
            )
        };
        Self {
            schedule: schedule.into_boxed_slice(),
            next: AtomicUsize::new(0),
        }
    }

    /// The next endpoint in turn for which `usable` holds.
    #[inline]
    pub(crate) fn pick(&self, usable: impl Fn(u32) -> bool) -> Option<u32> {
        let len = self.schedule.len();
        if len == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..len)
            .map(|k| self.schedule[start.wrapping_add(k) % len])
            .find(|&i| usable(i))
    }

    #[cfg(test)]
    pub(crate) fn schedule(&self) -> &[u32] {
        &self.schedule
    }
}

/// A turn: member `slot` has had `served` turns and weighs `weight`; due at `(served+1)/weight`.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Turn {
    served: u64,
    weight: u64,
    slot: usize,
}

impl Ord for Turn {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        // Earlier deadline first (BinaryHeap is a max-heap, so reversed); ties by position.
        let mine = u128::from(self.served + 1) * u128::from(other.weight);
        let theirs = u128::from(other.served + 1) * u128::from(self.weight);
        theirs.cmp(&mine).then(other.slot.cmp(&self.slot))
    }
}

impl PartialOrd for Turn {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

fn edf_schedule(members: &[u32], weights: &[u64]) -> Vec<u32> {
    let divisor = weights.iter().copied().fold(0, gcd).max(1);
    let mut weights: Vec<u64> = weights.iter().map(|w| w / divisor).collect();
    let sum: u64 = weights.iter().sum();
    if sum > MAX_SCHEDULE {
        for w in &mut weights {
            *w = (*w * MAX_SCHEDULE / sum).max(1);
        }
    }
    let len: u64 = weights.iter().sum();
    let mut heap: BinaryHeap<Turn> = weights
        .iter()
        .enumerate()
        .map(|(slot, &weight)| Turn {
            served: 0,
            weight,
            slot,
        })
        .collect();
    let mut schedule = Vec::with_capacity(len as usize);
    while (schedule.len() as u64) < len {
        let Some(mut turn) = heap.pop() else { break };
        schedule.push(members[turn.slot]);
        turn.served += 1;
        heap.push(turn);
    }
    schedule
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_schedule_is_exact_and_interleaved() {
        let rr = RoundRobin::new(&[0, 1, 2], &[2, 4, 6]);
        // GCD 2 → weights 1, 2, 3: six slots.
        let s = rr.schedule();
        assert_eq!(s.len(), 6);
        for (m, w) in [(0, 1), (1, 2), (2, 3)] {
            assert_eq!(s.iter().filter(|&&x| x == m).count(), w);
        }
        // The heaviest is never served three times in a row.
        assert!(!s.windows(3).any(|w| w.iter().all(|&x| x == 2)), "{s:?}");
    }

    #[test]
    fn skips_unusable_and_cycles() {
        let rr = RoundRobin::new(&[0, 1, 2], &[1, 1, 1]);
        let picks: Vec<u32> = (0..6).filter_map(|_| rr.pick(|i| i != 1)).collect();
        assert_eq!(picks.len(), 6);
        assert!(!picks.contains(&1));
        assert_eq!(RoundRobin::new(&[0], &[1]).pick(|_| false), None);
    }

    #[test]
    fn huge_weights_are_scaled() {
        let rr = RoundRobin::new(&[0, 1], &[1_000_000, 3_000_001]);
        assert!(rr.schedule().len() as u64 <= MAX_SCHEDULE + 2);
    }
}
