//! The per-cluster balancer: everything precomputed once per cluster version, one lock-free
//! `pick` per request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arc_swap::{ArcSwap, Guard};
use rand::Rng;
use tokio::time::Instant;

use super::locality::{ClientLocality, place};
use super::locality_weighted::{self, LocalityGroup};
use super::maglev::{self, Maglev};
use super::priority::{HealthView, HostsRef, LevelMembers};
use super::ring_hash::{self, Ring};
use super::round_robin::RoundRobin;
use super::slow_start::Ramp;
use super::state::ClusterState;
use super::stats::EndpointStats;
use super::{least_request, peak_ewma};
use crate::model::{Cluster, Endpoint, LbPolicy};

/// Envoy's default panic threshold, used when the cluster has no outlier detection.
const DEFAULT_PANIC_THRESHOLD: u32 = 50;

/// A cluster whose balancing settings cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BalancerError {
    /// Maglev needs a prime table size (Envoy allows up to 5,000,011).
    #[error("Maglev table size {size} is not a prime between 2 and 5000011")]
    MaglevTableSize {
        /// The size asked for.
        size: u64,
    },
    /// The ring's minimum size is above Envoy's maximum.
    #[error("minimum ring size {size} exceeds the maximum of 8388608")]
    RingSize {
        /// The size asked for.
        size: u64,
    },
}

/// What a pick knows about the request.
#[derive(Clone, Copy, Debug)]
pub struct PickContext {
    /// The request's hash key for RING_HASH and MAGLEV (see [`hash_key`](super::hash_key));
    /// without one those pick at random. Ignored by the other policies.
    pub hash: Option<u64>,
    /// The time of the pick (peak-EWMA decays its estimates to it).
    pub now: Instant,
}

impl PickContext {
    /// A context with no hash.
    pub fn new(now: Instant) -> Self {
        Self { hash: None, now }
    }

    /// Sets the hash key.
    pub fn with_hash(mut self, hash: u64) -> Self {
        self.hash = Some(hash);
        self
    }
}

#[derive(Debug)]
enum Table {
    /// Random, least request and peak EWMA draw from the health view's candidates.
    None,
    RoundRobin(RoundRobin),
    Ring(Ring),
    Maglev(Maglev),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    LeastRequest,
    RoundRobin,
    Random,
    PeakEwma,
    RingHash,
    Maglev,
}

/// Chooses endpoints of one cluster version by its [`LbPolicy`], priority levels, locality
/// weights, outlier ejection and panic threshold.
///
/// The levels are the control plane's ([`Endpoint::priority`]) when any endpoint has a non-zero
/// priority or the cluster uses locality weights ([`Cluster::uses_locality_weights`]), else
/// Istio's client-side locality failover
/// (the control plane wins: istiod already folded `localityLbSetting` into what it sent). A pick
/// chooses a level by Envoy's priority load, then, in a locality-weighted level
/// ([`Cluster::locality_weighted_lb`]) not in panic, a locality by weight × availability, then an
/// endpoint by the policy.
///
/// Built once per cluster version ([`Balancer::new`]): placement, weights, round-robin
/// schedules, rings and Maglev tables are precomputed. [`Balancer::pick`] is lock-free and does
/// not allocate, except on the first pick after an ejection starts or ends, which recomputes the
/// healthy sets (O(endpoints)) while concurrent picks keep using the previous ones.
#[derive(Debug)]
pub struct Balancer {
    algorithm: Algorithm,
    stats: Box<[Arc<EndpointStats>]>,
    /// Effective weights (after `distribute`); 0 for an endpoint that gets no traffic.
    weights: Box<[u32]>,
    /// Healthy in config.
    eligible: Box<[bool]>,
    /// Priority level per endpoint, `None` when it gets no traffic.
    priority: Box<[Option<u32>]>,
    /// Endpoints per priority level, and the level's precomputed table.
    members: Box<[LevelMembers]>,
    tables: Box<[Table]>,
    /// Per level, one table per locality of a locality-weighted level (parallel to its
    /// `localities`); empty for other levels.
    locality_tables: Box<[Box<[Table]>]>,
    panic_threshold: u32,
    health: Arc<AtomicU64>,
    view: ArcSwap<HealthView>,
    rebuilding: AtomicBool,
    /// Slow start, for ROUND_ROBIN and LEAST_REQUEST (and mesh's PEAK_EWMA, which stands in for
    /// LEAST_REQUEST) clusters that configure it.
    ramp: Option<Ramp>,
}

/// Checks that a balancer can be built for `lb`: a ring hash's minimum size is at most Envoy's
/// 8,388,608, a Maglev table's size a prime up to 5,000,011 (0 means the default, 65,537).
/// Config sources call it to refuse such a policy where it is written.
pub fn check_lb_policy(lb: &LbPolicy) -> Result<(), BalancerError> {
    parameters(lb).map(drop)
}

/// The algorithm and its ring or table size.
fn parameters(lb: &LbPolicy) -> Result<(Algorithm, u64, u64), BalancerError> {
    Ok(match lb {
        LbPolicy::LeastRequest => (Algorithm::LeastRequest, 0, 0),
        LbPolicy::RoundRobin => (Algorithm::RoundRobin, 0, 0),
        LbPolicy::Random => (Algorithm::Random, 0, 0),
        LbPolicy::PeakEwma => (Algorithm::PeakEwma, 0, 0),
        LbPolicy::RingHash {
            minimum_ring_size, ..
        } => {
            if *minimum_ring_size > ring_hash::MAX_RING_SIZE {
                return Err(BalancerError::RingSize {
                    size: *minimum_ring_size,
                });
            }
            (Algorithm::RingHash, *minimum_ring_size, 0)
        }
        LbPolicy::Maglev { table_size, .. } => {
            let size = if *table_size == 0 {
                maglev::DEFAULT_TABLE_SIZE
            } else {
                *table_size
            };
            if !maglev::is_prime(size) || size > maglev::MAX_TABLE_SIZE {
                return Err(BalancerError::MaglevTableSize { size });
            }
            (Algorithm::Maglev, 0, size)
        }
    })
}

impl Balancer {
    /// Builds the balancer for `cluster` as seen from `client`, first moving `state` to the
    /// cluster's endpoint set (stats of remaining addresses are kept, see
    /// [`ClusterState::update`]).
    pub fn new(
        cluster: &Cluster,
        state: &ClusterState,
        client: &ClientLocality,
        now: Instant,
    ) -> Result<Self, BalancerError> {
        let (algorithm, ring_size, table_size) = parameters(&cluster.lb)?;
        let endpoints: &[Endpoint] = &cluster.endpoints;
        let stats: Box<[Arc<EndpointStats>]> =
            state.update(endpoints, now).iter().cloned().collect();
        let placement = place(cluster, client);
        let mut weights: Vec<u32> = placement
            .iter()
            .map(|p| p.map_or(0, |p| p.weight))
            .collect();
        let eligible: Box<[bool]> = placement
            .iter()
            .map(|p| p.is_some_and(|p| p.eligible))
            .collect();
        let priority: Box<[Option<u32>]> =
            placement.iter().map(|p| p.map(|p| p.priority)).collect();
        let level_count = priority
            .iter()
            .flatten()
            .max()
            .map_or(0, |&p| p as usize + 1);
        let mut members: Vec<Vec<u32>> = vec![Vec::new(); level_count];
        for (i, p) in priority.iter().enumerate() {
            if let Some(p) = p {
                members[*p as usize].push(i as u32);
            }
        }
        let hashing = matches!(algorithm, Algorithm::RingHash | Algorithm::Maglev);
        let weighted_localities = cluster.uses_locality_weights();
        let mut localities: Vec<Vec<LocalityGroup>> = members
            .iter()
            .map(|m| {
                if weighted_localities {
                    locality_weighted::groups(endpoints, m, &weights)
                } else {
                    Vec::new()
                }
            })
            .collect();
        if hashing {
            // A key must keep its endpoint: fold the locality weights into the table instead.
            for groups in &mut localities {
                locality_weighted::fold(groups, &mut weights);
                groups.clear();
            }
        }
        let weights: Box<[u32]> = weights.into();
        let name = |i: u32| endpoints[i as usize].address.to_string();
        let table = |members: &[u32]| {
            let usable: Vec<u32> = members
                .iter()
                .copied()
                .filter(|&i| eligible[i as usize])
                .collect();
            match algorithm {
                Algorithm::RoundRobin => Table::RoundRobin(RoundRobin::new(&usable, &weights)),
                Algorithm::RingHash => Table::Ring(Ring::new(&usable, &weights, name, ring_size)),
                Algorithm::Maglev => {
                    Table::Maglev(Maglev::new(&usable, &weights, name, table_size))
                }
                _ => Table::None,
            }
        };
        let tables: Box<[Table]> = members.iter().map(|m| table(m)).collect();
        let locality_tables: Box<[Box<[Table]>]> = localities
            .iter()
            .map(|groups| groups.iter().map(|g| table(&g.members)).collect())
            .collect();
        let members: Box<[LevelMembers]> = members
            .into_iter()
            .zip(localities)
            .map(|(m, l)| LevelMembers {
                members: m.into_boxed_slice(),
                localities: l.into_boxed_slice(),
            })
            .collect();
        let panic_threshold = cluster
            .outlier
            .as_ref()
            .map_or(DEFAULT_PANIC_THRESHOLD, |o| o.min_health_percent.min(100));
        let health = state.health_signal();
        let ramp = match algorithm {
            Algorithm::RoundRobin | Algorithm::LeastRequest | Algorithm::PeakEwma => cluster
                .slow_start
                .as_ref()
                .and_then(|config| Ramp::new(config, &stats)),
            _ => None,
        };
        let mut balancer = Self {
            algorithm,
            stats,
            weights,
            eligible,
            priority,
            members,
            tables,
            locality_tables,
            panic_threshold,
            health,
            view: ArcSwap::from_pointee(HealthView {
                generation: u64::MAX,
                cumulative: Box::new([]),
                levels: Box::new([]),
            }),
            rebuilding: AtomicBool::new(false),
            ramp,
        };
        let generation = balancer.health.load(Ordering::Acquire);
        balancer.view = ArcSwap::from_pointee(balancer.compute_view(generation));
        Ok(balancer)
    }

    /// Chooses an endpoint for one request: an index into the cluster's `endpoints`, or `None`
    /// when no endpoint can take traffic (→ 503, flag UH).
    #[inline]
    pub fn pick<R: Rng + ?Sized>(&self, ctx: &PickContext, rng: &mut R) -> Option<usize> {
        let view = self.view();
        let hash = match self.algorithm {
            Algorithm::RingHash | Algorithm::Maglev => {
                Some(ctx.hash.unwrap_or_else(|| rng.random()))
            }
            _ => None,
        };
        let level = if view.levels.len() == 1 {
            (view.cumulative[0] > 0).then_some(0)
        } else {
            // Hash policies choose the level by the key too (as Envoy), so a key stays put.
            let point = match hash {
                Some(h) => (h % 100) as u32,
                None => rng.random_range(0..100),
            };
            view.level(point)
        }?;
        let health = &view.levels[level];
        let (candidates, table) = match &health.localities {
            Some(localities) => {
                let locality = localities.draw(rng);
                (
                    &localities.candidates[locality],
                    &self.locality_tables[level][locality],
                )
            }
            None => (&health.candidates, &self.tables[level]),
        };
        let usable = |i: u32| health.panic || !self.stats[i as usize].is_ejected();
        if let Some(ramp) = self.ramp.as_ref().filter(|r| r.active(ctx.now)) {
            let picked = ramp.pick(&self.stats, ctx.now, rng, |rng| {
                match (table, self.algorithm) {
                    (Table::RoundRobin(rr), _) => rr.pick(usable),
                    (_, Algorithm::PeakEwma) => {
                        peak_ewma::pick(candidates, &self.stats, ctx.now, rng)
                    }
                    _ => least_request::pick(candidates, &self.stats, &self.weights, rng),
                }
            });
            return picked.map(|i| i as usize);
        }
        let picked = match (table, self.algorithm) {
            (Table::RoundRobin(rr), _) => rr.pick(usable),
            (Table::Ring(ring), _) => ring
                .pick(hash.unwrap_or_default(), usable)
                .or_else(|| candidates.by_hash(hash.unwrap_or_default())),
            (Table::Maglev(table), _) => table
                .pick(hash.unwrap_or_default(), usable)
                .or_else(|| candidates.by_hash(hash.unwrap_or_default())),
            (Table::None, Algorithm::LeastRequest) => {
                least_request::pick(candidates, &self.stats, &self.weights, rng)
            }
            (Table::None, Algorithm::PeakEwma) => {
                peak_ewma::pick(candidates, &self.stats, ctx.now, rng)
            }
            (Table::None, _) => candidates.sample(rng),
        };
        picked.map(|i| i as usize)
    }

    /// The runtime stats of the endpoint at `index` (start an [`InFlight`](super::InFlight)
    /// guard on them for the request).
    pub fn stats(&self, index: usize) -> Option<&Arc<EndpointStats>> {
        self.stats.get(index)
    }

    /// Number of endpoints (picked indices are below this).
    pub fn len(&self) -> usize {
        self.stats.len()
    }

    /// Whether the cluster has no endpoints.
    pub fn is_empty(&self) -> bool {
        self.stats.is_empty()
    }

    /// The priority level of the endpoint at `index` (0 is preferred), `None` when it gets no
    /// traffic (a locality `distribute` rule leaves it out).
    pub fn priority(&self, index: usize) -> Option<u32> {
        self.priority.get(index).copied().flatten()
    }

    /// The effective weight of the endpoint at `index` after locality `distribute`, or for
    /// consistent-hash policies with locality weights, its share of its locality's weight (0 when
    /// it gets no traffic).
    pub fn weight(&self, index: usize) -> u32 {
        self.weights.get(index).copied().unwrap_or(0)
    }

    /// Each locality's share of a locality-weighted `level` in the current health state, in
    /// parts per million: `(index of the locality's first endpoint, share)`, localities in
    /// [`Locality`](crate::model::Locality) order. Empty when the level is not locality-weighted,
    /// has one locality, is in panic, or the policy is a consistent hash (whose tables hold the
    /// locality weights folded into endpoint weights).
    pub fn locality_shares(&self, level: usize) -> Vec<(usize, u64)> {
        let view = self.view();
        let (Some(members), Some(Some(localities))) = (
            self.members.get(level),
            view.levels.get(level).map(|l| l.localities.as_ref()),
        ) else {
            return Vec::new();
        };
        members
            .localities
            .iter()
            .zip(localities.shares())
            .filter_map(|(g, share)| Some((*g.members.first()? as usize, share)))
            .collect()
    }

    /// The share of traffic, in percent, each priority level gets in the current health state.
    pub fn priority_loads(&self) -> Vec<u32> {
        self.view().loads()
    }

    /// Whether the level is in panic (balancing over ejected endpoints too) in the current health
    /// state.
    pub fn in_panic(&self, level: usize) -> bool {
        self.view().levels.get(level).is_some_and(|l| l.panic)
    }

    /// The panic threshold in percent: Istio's `outlierDetection.minHealthPercent` when outlier
    /// detection is configured (Istio sets Envoy's `healthy_panic_threshold` from it), else
    /// Envoy's default 50.
    pub fn panic_threshold(&self) -> u32 {
        self.panic_threshold
    }

    /// The current health view, recomputed if an ejection changed since it was built. Only one
    /// thread recomputes; others keep using the previous view meanwhile.
    #[inline]
    fn view(&self) -> Guard<Arc<HealthView>> {
        let current = self.view.load();
        let generation = self.health.load(Ordering::Acquire);
        if current.generation == generation {
            return current;
        }
        if self
            .rebuilding
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return current;
        }
        self.view.store(Arc::new(self.compute_view(generation)));
        self.rebuilding.store(false, Ordering::Release);
        self.view.load()
    }

    fn compute_view(&self, generation: u64) -> HealthView {
        HealthView::compute(
            &self.members,
            &HostsRef {
                stats: &self.stats,
                weights: &self.weights,
                eligible: &self.eligible,
            },
            self.panic_threshold,
            generation,
        )
    }
}
