//! Priority load and panic mode: how much traffic each priority level gets given its health.
//!
//! Envoy's rules (<https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/load_balancing/priority>
//! and `…/panic_threshold`), with host counts:
//!
//! 1. A level's *availability* is `min(100, 1.4 × 100 × healthy / total)`: the overprovisioning
//!    factor 1.4 lets a level that is at least ~72 % healthy keep all of its traffic.
//! 2. Levels take load in priority order, each up to its availability, until 100 % is placed.
//!    When the availabilities add to less than 100, they are scaled up to add to 100.
//! 3. Panic: when the total availability is below 100, a level whose healthy share is below the
//!    panic threshold balances across *all* its endpoints, unhealthy ones included. When every
//!    level is in panic, load goes to levels in proportion to their endpoint counts.
//!
//! Our simplification: a config-unhealthy or draining endpoint counts towards a level's total but
//! is never picked, not even in panic (the model says so); panic ignores outlier ejection only.
//! Loads are integer percentages, as Envoy's; the rounding remainder goes to the first loaded
//! level.
//!
//! Levels are the control plane's EDS priorities when it sends any, else the client-side
//! locality failover levels (see `locality`). Within a level that uses locality weights, the
//! view also holds each locality's effective weight and healthy endpoints (see
//! `locality_weighted`).
//!
//! A [`HealthView`] is rebuilt (O(endpoints), off the steady-state path) whenever the cluster's
//! health generation moves, i.e. an ejection starts or ends.

use super::locality_weighted::{LocalityGroup, LocalityView};
use super::random::WeightedSampler;
use super::stats::EndpointStats;
use std::sync::Arc;

/// Envoy's default overprovisioning factor, in percent.
const OVERPROVISIONING: u64 = 140;

/// The endpoints of one priority level.
#[derive(Debug)]
pub(crate) struct LevelMembers {
    /// Every endpoint placed at this level (indices into the cluster's endpoints).
    pub(crate) members: Box<[u32]>,
    /// The level's localities under locality-weighted balancing; empty otherwise.
    pub(crate) localities: Box<[LocalityGroup]>,
}

/// What the balancer needs of each endpoint to compute health.
pub(crate) struct HostsRef<'a> {
    pub(crate) stats: &'a [Arc<EndpointStats>],
    pub(crate) weights: &'a [u32],
    pub(crate) eligible: &'a [bool],
}

/// Health of one level, computed for one health generation.
#[derive(Debug)]
pub(crate) struct LevelView {
    /// Whether the level balances over every eligible endpoint, ejected ones included.
    pub(crate) panic: bool,
    /// The endpoints to pick from: healthy ones, or every eligible one in panic.
    pub(crate) candidates: WeightedSampler,
    /// Locality-weighted levels not in panic: the localities to draw first.
    pub(crate) localities: Option<LocalityView>,
}

/// Loads and candidates of every level for one health generation.
#[derive(Debug)]
pub(crate) struct HealthView {
    pub(crate) generation: u64,
    /// Running sums of the levels' percentages of load.
    pub(crate) cumulative: Box<[u32]>,
    pub(crate) levels: Box<[LevelView]>,
}

impl HealthView {
    pub(crate) fn compute(
        levels: &[LevelMembers],
        hosts: &HostsRef<'_>,
        panic_threshold: u32,
        generation: u64,
    ) -> Self {
        let healthy_of = |level: &LevelMembers| -> Vec<u32> {
            level
                .members
                .iter()
                .copied()
                .filter(|&i| {
                    let i = i as usize;
                    hosts.eligible[i] && !hosts.stats[i].is_ejected()
                })
                .collect()
        };
        let healthy: Vec<Vec<u32>> = levels.iter().map(healthy_of).collect();
        let totals: Vec<u64> = levels.iter().map(|l| l.members.len() as u64).collect();
        let availability: Vec<u64> = healthy
            .iter()
            .zip(&totals)
            .map(|(h, &t)| {
                (OVERPROVISIONING * h.len() as u64)
                    .checked_div(t)
                    .unwrap_or(0)
                    .min(100)
            })
            .collect();
        let total_availability = availability.iter().sum::<u64>().min(100);
        let panic: Vec<bool> = healthy
            .iter()
            .zip(&totals)
            .map(|(h, &t)| {
                total_availability < 100
                    && t > 0
                    && 100 * (h.len() as u64) < u64::from(panic_threshold) * t
            })
            .collect();
        let total_panic = !panic.is_empty() && panic.iter().all(|&p| p);

        let eligible_of = |level: &LevelMembers| -> Vec<u32> {
            level
                .members
                .iter()
                .copied()
                .filter(|&i| hosts.eligible[i as usize])
                .collect()
        };
        let mut views = Vec::with_capacity(levels.len());
        let mut loads = vec![0u64; levels.len()];
        if total_panic {
            let eligible: Vec<Vec<u32>> = levels.iter().map(eligible_of).collect();
            let all: u64 = eligible.iter().map(|e| e.len() as u64).sum();
            for (p, members) in eligible.into_iter().enumerate() {
                loads[p] = (100 * members.len() as u64).checked_div(all).unwrap_or(0);
                views.push(LevelView {
                    panic: true,
                    candidates: WeightedSampler::new(members, hosts.weights),
                    localities: None,
                });
            }
        } else {
            if total_availability >= 100 {
                let mut left = 100u64;
                for (p, &a) in availability.iter().enumerate() {
                    loads[p] = a.min(left);
                    left -= loads[p];
                }
            } else {
                for (p, &a) in availability.iter().enumerate() {
                    loads[p] = (a * 100).checked_div(total_availability).unwrap_or(0);
                }
            }
            for (p, healthy) in healthy.into_iter().enumerate() {
                let members = if panic[p] {
                    eligible_of(&levels[p])
                } else {
                    healthy
                };
                if members.is_empty() {
                    loads[p] = 0;
                }
                let localities = (!panic[p] && !levels[p].localities.is_empty())
                    .then(|| {
                        LocalityView::new(&levels[p].localities, hosts.weights, |i| {
                            hosts.eligible[i as usize] && !hosts.stats[i as usize].is_ejected()
                        })
                    })
                    .flatten();
                views.push(LevelView {
                    panic: panic[p],
                    candidates: WeightedSampler::new(members, hosts.weights),
                    localities,
                });
            }
        }
        // Hand the rounding remainder to the first loaded level.
        let placed: u64 = loads.iter().sum();
        if placed > 0
            && placed < 100
            && let Some(first) = loads.iter_mut().find(|l| **l > 0)
        {
            *first += 100 - placed;
        }
        let cumulative = loads
            .iter()
            .scan(0u32, |sum, &l| {
                *sum += l as u32;
                Some(*sum)
            })
            .collect();
        Self {
            generation,
            cumulative,
            levels: views.into_boxed_slice(),
        }
    }

    /// The level serving a draw `point` in `0..100`; `None` when no level has candidates.
    #[inline]
    pub(crate) fn level(&self, point: u32) -> Option<usize> {
        let i = self.cumulative.partition_point(|&sum| sum <= point);
        (i < self.cumulative.len()).then_some(i)
    }

    /// Each level's share of load, in percent.
    pub(crate) fn loads(&self) -> Vec<u32> {
        let mut previous = 0;
        self.cumulative
            .iter()
            .map(|&c| {
                let l = c - previous;
                previous = c;
                l
            })
            .collect()
    }
}
