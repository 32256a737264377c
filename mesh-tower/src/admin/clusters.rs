//! What `/clusters` shows: per cluster, its endpoints with config health and runtime state
//! (ejection, in-flight requests, peak-EWMA latency), like Envoy's `/clusters`.
//!
//! The runtime state lives in the client's [`StatsRegistry`](mesh_core::balance::StatsRegistry);
//! the client exposes it through a [`ClusterStatsSource`]. Without one, the admin endpoint
//! shows the endpoints of the config with no runtime state.

use mesh_core::balance::ClusterState;
use mesh_core::model::{Cluster, HealthStatus, Snapshot};
use serde::Serialize;
use tokio::time::Instant;

/// Gauge: endpoints per cluster and state (`healthy`, `ejected`, `unhealthy`, `draining`).
pub const ENDPOINTS_GAUGE: &str = "mesh_endpoints";

/// One endpoint of a cluster.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EndpointStatus {
    /// `ip:port` or `host:port`.
    pub address: String,
    /// Health from config.
    pub health: HealthStatus,
    /// Balancing weight.
    pub weight: u32,
    /// `region/zone/subzone`.
    pub locality: String,
    /// Priority level from the control plane (0 is preferred).
    #[serde(skip_serializing_if = "is_zero")]
    pub priority: u32,
    /// The control plane's weight of the endpoint's locality, when it sent one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locality_weight: Option<u32>,
    /// Ejected by outlier detection (`None`: runtime state not known).
    pub ejected: Option<bool>,
    /// Requests in flight.
    pub in_flight: Option<u32>,
    /// Peak-EWMA latency estimate, milliseconds.
    pub ewma_ms: Option<f64>,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

impl EndpointStatus {
    /// The state gauge label: `ejected` overrides config health.
    pub fn state(&self) -> &'static str {
        match (self.ejected, self.health) {
            (Some(true), _) => "ejected",
            (_, HealthStatus::Healthy) => "healthy",
            (_, HealthStatus::Unhealthy) => "unhealthy",
            (_, HealthStatus::Draining) => "draining",
        }
    }
}

/// One cluster.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClusterStatus {
    /// Cluster name (`outbound|9080|v1|reviews.default.svc.cluster.local`).
    pub name: String,
    /// Its service host.
    pub service: String,
    /// Its endpoints.
    pub endpoints: Vec<EndpointStatus>,
}

impl ClusterStatus {
    /// The config's view of `cluster`, without runtime state.
    pub fn from_config(cluster: &Cluster) -> Self {
        Self {
            name: cluster.name.to_string(),
            service: cluster.service.host.clone(),
            endpoints: cluster
                .endpoints
                .iter()
                .map(|e| EndpointStatus {
                    address: e.address.to_string(),
                    health: e.health,
                    weight: e.weight,
                    locality: if e.locality.is_empty() {
                        String::new()
                    } else {
                        e.locality.to_string()
                    },
                    priority: e.priority,
                    locality_weight: e.locality_weight,
                    ejected: None,
                    in_flight: None,
                    ewma_ms: None,
                })
                .collect(),
        }
    }

    /// `cluster` with the runtime state the client keeps for it at `now`.
    pub fn with_state(cluster: &Cluster, state: &ClusterState, now: Instant) -> Self {
        let mut status = Self::from_config(cluster);
        for (endpoint, status) in cluster.endpoints.iter().zip(status.endpoints.iter_mut()) {
            if let Some(stats) = state.get(&endpoint.address) {
                status.ejected = Some(stats.is_ejected());
                status.in_flight = Some(stats.in_flight());
                status.ewma_ms = Some(stats.latency_estimate(now) / 1e6);
            }
        }
        status
    }

    /// Every cluster of `snapshot`, from config.
    pub fn all_from_config(snapshot: &Snapshot) -> Vec<Self> {
        snapshot
            .clusters
            .values()
            .map(|c| Self::from_config(c))
            .collect()
    }
}

/// Where `/clusters` gets runtime state: implemented by the client (or any closure returning
/// the list).
pub trait ClusterStatsSource: Send + Sync + 'static {
    /// The clusters with their endpoints' current state.
    fn clusters(&self) -> Vec<ClusterStatus>;
}

impl<F> ClusterStatsSource for F
where
    F: Fn() -> Vec<ClusterStatus> + Send + Sync + 'static,
{
    fn clusters(&self) -> Vec<ClusterStatus> {
        self()
    }
}

/// Sets `mesh_endpoints{cluster,state}` from `clusters` (every state of every cluster, zeros
/// included, so a state that empties drops to 0 rather than keeping its last value).
pub fn record_endpoint_gauges(clusters: &[ClusterStatus]) {
    for c in clusters {
        for state in ["healthy", "ejected", "unhealthy", "draining"] {
            let n = c.endpoints.iter().filter(|e| e.state() == state).count();
            metrics::gauge!(ENDPOINTS_GAUGE, "cluster" => c.name.clone(), "state" => state)
                .set(n as f64);
        }
    }
}
