//! Where per-endpoint runtime state lives across config swaps.
//!
//! A [`StatsRegistry`] holds one [`ClusterState`] per cluster name; a `ClusterState` holds the
//! [`EndpointStats`] of the cluster's current endpoints, keyed by address. When a new version of
//! the cluster arrives, [`ClusterState::update`] keeps the stats of every address that remains,
//! creates fresh stats for new addresses and forgets removed ones (requests still in flight to a
//! removed endpoint keep its stats alive through their own `Arc` and finish normally).
//!
//! Updates are rare (a config swap) and serialized by a mutex; readers never take it: the
//! current set is behind an [`ArcSwap`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use tokio::time::Instant;

use super::ewma::EwmaConfig;
use super::stats::EndpointStats;
use crate::model::{ClusterName, Endpoint, EndpointAddress};

/// The runtime state of one cluster's endpoints, surviving config swaps.
#[derive(Debug)]
pub struct ClusterState {
    name: ClusterName,
    epoch: Instant,
    ewma: EwmaConfig,
    health_generation: Arc<AtomicU64>,
    endpoints: ArcSwap<Vec<Arc<EndpointStats>>>,
    update: Mutex<()>,
}

impl ClusterState {
    /// Empty state for a cluster, with linkerd's peak-EWMA defaults; `now` is the time origin of
    /// its latency bookkeeping.
    pub fn new(name: ClusterName, now: Instant) -> Self {
        Self::with_ewma(name, now, EwmaConfig::default())
    }

    /// Empty state with explicit peak-EWMA parameters.
    pub fn with_ewma(name: ClusterName, now: Instant, ewma: EwmaConfig) -> Self {
        Self {
            name,
            epoch: now,
            ewma,
            health_generation: Arc::new(AtomicU64::new(0)),
            endpoints: ArcSwap::from_pointee(Vec::new()),
            update: Mutex::new(()),
        }
    }

    /// The cluster's name.
    pub fn name(&self) -> &ClusterName {
        &self.name
    }

    /// Replaces the endpoint set with `endpoints` (in their order), reusing the stats of every
    /// address already known. Returns the new set, parallel to `endpoints`. Duplicate addresses
    /// share one stats entry.
    pub fn update(&self, endpoints: &[Endpoint], now: Instant) -> Arc<Vec<Arc<EndpointStats>>> {
        let _serial = self.update.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.endpoints.load_full();
        let known: HashMap<&EndpointAddress, &Arc<EndpointStats>> =
            current.iter().map(|s| (s.address(), s)).collect();
        let mut fresh: HashMap<&EndpointAddress, Arc<EndpointStats>> = HashMap::new();
        let next: Vec<Arc<EndpointStats>> = endpoints
            .iter()
            .map(|endpoint| {
                if let Some(stats) = known.get(&endpoint.address) {
                    return Arc::clone(stats);
                }
                let stats = fresh.entry(&endpoint.address).or_insert_with(|| {
                    Arc::new(EndpointStats::new(
                        endpoint.address.clone(),
                        self.ewma,
                        self.epoch,
                        now,
                        Arc::clone(&self.health_generation),
                    ))
                });
                Arc::clone(stats)
            })
            .collect();
        let next = Arc::new(next);
        self.endpoints.store(Arc::clone(&next));
        self.health_generation.fetch_add(1, Ordering::AcqRel);
        next
    }

    /// The current endpoint set.
    pub fn endpoints(&self) -> Arc<Vec<Arc<EndpointStats>>> {
        self.endpoints.load_full()
    }

    /// The stats of the endpoint at `address`, if it is in the current set.
    pub fn get(&self, address: &EndpointAddress) -> Option<Arc<EndpointStats>> {
        self.endpoints
            .load()
            .iter()
            .find(|s| s.address() == address)
            .cloned()
    }

    /// A counter bumped whenever an endpoint's ejection changes or the set is replaced.
    pub fn health_generation(&self) -> u64 {
        self.health_generation.load(Ordering::Acquire)
    }

    pub(crate) fn health_signal(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.health_generation)
    }
}

/// The runtime state of every cluster, by name.
#[derive(Debug, Default)]
pub struct StatsRegistry {
    clusters: Mutex<HashMap<ClusterName, Arc<ClusterState>>>,
}

impl StatsRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The state of cluster `name`, created empty (with `now` as its time origin) if unknown.
    pub fn cluster(&self, name: &ClusterName, now: Instant) -> Arc<ClusterState> {
        let mut clusters = self.clusters.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            clusters
                .entry(name.clone())
                .or_insert_with(|| Arc::new(ClusterState::new(name.clone(), now))),
        )
    }

    /// Forgets every cluster not in `keep` (after a swap removed clusters).
    pub fn retain<'a>(&self, keep: impl IntoIterator<Item = &'a ClusterName>) {
        let keep: std::collections::HashSet<&ClusterName> = keep.into_iter().collect();
        self.clusters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|name, _| keep.contains(name));
    }

    /// Number of clusters held.
    pub fn len(&self) -> usize {
        self.clusters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no cluster is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
