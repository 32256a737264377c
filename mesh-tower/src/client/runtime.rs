//! Per-cluster runtime built from a snapshot: the balancer, the circuit breaker, outlier
//! detection and the endpoints' connection pools; and the snapshot's compiled route plans
//! (`plan.rs`).
//!
//! Built once per snapshot version, off the hot path of every request but the first after a
//! swap. What must survive a swap does: endpoint stats (in-flight, EWMA, ejection) through the
//! [`StatsRegistry`], breakers and pools by cluster name and address. Endpoints removed by a swap
//! drain: requests holding their pool finish on it, and the pool closes when the last one ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use mesh_core::balance::{Balancer, ClientLocality, ClusterState, StatsRegistry};
use mesh_core::model::{Cluster, ClusterName, EndpointAddress, Route, Snapshot};
use mesh_core::resilience::{CircuitBreaker, OutlierDetector};
use tokio::time::Instant;

use super::connect::{Connector, Security};
use super::plan::{RoutePlan, RoutePlans};
use super::pool::{EndpointPool, PoolSettings};
use super::record::RecordCache;
use crate::tls::TlsConnector;

/// Everything the client needs to call one cluster.
pub(crate) struct ClusterRuntime {
    pub(crate) cluster: Arc<Cluster>,
    pub(crate) balancer: Balancer,
    pub(crate) breaker: CircuitBreaker,
    pub(crate) outlier: Option<OutlierDetector>,
    /// Parallel to `cluster.endpoints`.
    pub(crate) pools: Box<[Arc<EndpointPool>]>,
    /// The telemetry handles of this cluster's calls, by their label-determining facts.
    pub(crate) records: RecordCache,
    last_sweep: Mutex<Instant>,
}

impl ClusterRuntime {
    /// Runs outlier detection's interval sweep when it is due (lazily, on requests, so an idle
    /// client runs no timers).
    pub(crate) fn maybe_sweep(&self, now: Instant) {
        let Some(outlier) = &self.outlier else { return };
        let mut last = self
            .last_sweep
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if now.saturating_duration_since(*last) >= outlier.interval() {
            *last = now;
            drop(last);
            for address in outlier.sweep(now) {
                tracing::info!(cluster = %self.cluster.name, %address, "endpoint returned to service");
            }
        }
    }
}

/// The runtime of every cluster of one snapshot version, and the plans of its routes.
pub(crate) struct Runtime {
    pub(crate) version: String,
    pub(crate) clusters: HashMap<ClusterName, Arc<ClusterRuntime>>,
    /// The snapshot this was built from (kept alive: the plans are keyed by its routes'
    /// addresses).
    snapshot: Option<Arc<Snapshot>>,
    plans: RoutePlans,
}

impl Runtime {
    /// The compiled plan of `route`, a route of `snapshot`, if this runtime was built from
    /// that very snapshot (else the caller compiles one).
    pub(crate) fn plan(&self, snapshot: &Arc<Snapshot>, route: &Route) -> Option<&RoutePlan> {
        let built_from = self.snapshot.as_ref()?;
        if !Arc::ptr_eq(built_from, snapshot) {
            return None;
        }
        self.plans.get(route)
    }
}

/// Builds runtimes as snapshots change, carrying state across.
pub(crate) struct Runtimes {
    current: ArcSwap<Runtime>,
    rebuild: Mutex<()>,
    stats: StatsRegistry,
    breakers: Mutex<HashMap<ClusterName, (Arc<Cluster>, CircuitBreaker)>>,
    pools: Mutex<HashMap<(ClusterName, EndpointAddress), Arc<EndpointPool>>>,
    locality: ClientLocality,
    tls: Option<TlsConnector>,
    /// Pass-through runtimes by (host, port), bounded by [`PASSTHROUGH_CACHE`].
    passthrough: Mutex<HashMap<(String, u16), Arc<ClusterRuntime>>>,
}

/// Most pass-through destinations kept; the authority is the application's input, so the cache
/// is cleared rather than grown past this.
const PASSTHROUGH_CACHE: usize = 256;

impl Runtimes {
    /// The runtime state of cluster `name`'s endpoints (in flight, EWMA, ejection), as the
    /// balancer sees it: for the admin `/clusters`.
    pub(crate) fn state(&self, name: &ClusterName, now: Instant) -> Arc<ClusterState> {
        self.stats.cluster(name, now)
    }

    pub(crate) fn new(locality: ClientLocality, tls: Option<TlsConnector>) -> Self {
        Self {
            current: ArcSwap::from_pointee(Runtime {
                version: "\0unbuilt".into(),
                clusters: HashMap::new(),
                snapshot: None,
                plans: RoutePlans::default(),
            }),
            rebuild: Mutex::new(()),
            stats: StatsRegistry::new(),
            breakers: Mutex::new(HashMap::new()),
            pools: Mutex::new(HashMap::new()),
            locality,
            tls,
            passthrough: Mutex::new(HashMap::new()),
        }
    }

    /// The runtime of the pass-through cluster for `host:port` (see `passthrough.rs`), kept so
    /// its connections are pooled across requests.
    pub(crate) fn passthrough(&self, host: &str, port: u16) -> Option<Arc<ClusterRuntime>> {
        let key = (host.to_ascii_lowercase(), port);
        let mut cache = self
            .passthrough
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(runtime) = cache.get(&key) {
            return Some(runtime.clone());
        }
        let cluster = Arc::new(super::passthrough::cluster(host, port));
        let now = Instant::now();
        let state = self.stats.cluster(&cluster.name, now);
        let balancer = Balancer::new(&cluster, &state, &self.locality, now).ok()?;
        let breaker = CircuitBreaker::new(&cluster.connection_pool, &cluster.retry_budget);
        let pools = cluster
            .endpoints
            .iter()
            .map(|endpoint| {
                let settings = PoolSettings::for_endpoint(&cluster, endpoint);
                let security = Security::for_endpoint(&cluster, endpoint, self.tls.as_ref());
                let connector =
                    Connector::new(endpoint.address.clone(), settings.connect_timeout, security);
                Arc::new(EndpointPool::new(connector, settings, breaker.clone()))
            })
            .collect();
        let runtime = Arc::new(ClusterRuntime {
            cluster,
            balancer,
            breaker,
            outlier: None,
            pools,
            records: RecordCache::default(),
            last_sweep: Mutex::new(now),
        });
        if cache.len() >= PASSTHROUGH_CACHE {
            cache.clear();
        }
        cache.insert(key, runtime.clone());
        Some(runtime)
    }

    /// The runtime for `snapshot`, building it if the snapshot is new.
    pub(crate) fn get(&self, snapshot: &Arc<Snapshot>) -> Arc<Runtime> {
        let current = self.current.load_full();
        if current.version == snapshot.version {
            return current;
        }
        let _one_builder = self.rebuild.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.current.load_full();
        if current.version == snapshot.version {
            return current;
        }
        let next = Arc::new(self.build(snapshot, &current));
        self.current.store(next.clone());
        next
    }

    fn build(&self, snapshot: &Arc<Snapshot>, previous: &Runtime) -> Runtime {
        let now = Instant::now();
        let mut clusters = HashMap::with_capacity(snapshot.clusters.len());
        let mut breakers = self.breakers.lock().unwrap_or_else(PoisonError::into_inner);
        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        let mut live_pools = HashMap::new();
        for (name, cluster) in &snapshot.clusters {
            if let Some(prev) = previous.clusters.get(name)
                && prev.cluster == *cluster
            {
                // Unchanged: keep everything, balancer included.
                for (endpoint, pool) in cluster.endpoints.iter().zip(prev.pools.iter()) {
                    live_pools.insert((name.clone(), endpoint.address.clone()), pool.clone());
                }
                clusters.insert(name.clone(), prev.clone());
                continue;
            }
            let state = self.stats.cluster(name, now);
            let balancer = match Balancer::new(cluster, &state, &self.locality, now) {
                Ok(b) => b,
                Err(e) => {
                    // Validation should have refused this; the cluster answers 503 UH instead.
                    tracing::error!(cluster = %name, error = %e, "cannot balance cluster");
                    continue;
                }
            };
            let breaker = match breakers.get(name) {
                Some((c, b))
                    if c.connection_pool == cluster.connection_pool
                        && c.retry_budget == cluster.retry_budget =>
                {
                    b.clone()
                }
                _ => CircuitBreaker::new(&cluster.connection_pool, &cluster.retry_budget),
            };
            breakers.insert(name.clone(), (cluster.clone(), breaker.clone()));
            let endpoint_pools: Box<[Arc<EndpointPool>]> = cluster
                .endpoints
                .iter()
                .map(|endpoint| {
                    let key = (name.clone(), endpoint.address.clone());
                    let settings = PoolSettings::for_endpoint(cluster, endpoint);
                    let pool = match pools.get(&key) {
                        Some(p) if p.settings() == &settings => p.clone(),
                        _ => {
                            let security =
                                Security::for_endpoint(cluster, endpoint, self.tls.as_ref());
                            let connector = Connector::new(
                                endpoint.address.clone(),
                                settings.connect_timeout,
                                security,
                            )
                            .with_tcp_keepalive(settings.tcp_keepalive.clone());
                            Arc::new(EndpointPool::new(connector, settings, breaker.clone()))
                        }
                    };
                    live_pools.insert(key, pool.clone());
                    pool
                })
                .collect();
            let outlier = cluster
                .outlier
                .clone()
                .map(|config| OutlierDetector::new(config, state.clone()));
            clusters.insert(
                name.clone(),
                Arc::new(ClusterRuntime {
                    cluster: cluster.clone(),
                    balancer,
                    breaker,
                    outlier,
                    pools: endpoint_pools,
                    records: RecordCache::default(),
                    last_sweep: Mutex::new(now),
                }),
            );
        }
        // Forget what the snapshot no longer has; in-flight requests hold their own references.
        *pools = live_pools;
        breakers.retain(|name, _| snapshot.clusters.contains_key(name));
        self.stats.retain(snapshot.clusters.keys());
        let plans = RoutePlans::compile(snapshot, &clusters);
        Runtime {
            version: snapshot.version.clone(),
            clusters,
            snapshot: Some(snapshot.clone()),
            plans,
        }
    }
}
