//! Load balancing: choosing an endpoint of a cluster, and a cluster of a route.
//!
//! The shape follows Envoy, so Istio users read it the same way:
//!
//! - [`ClusterState`] keeps per-endpoint runtime state ([`EndpointStats`]: in-flight requests,
//!   peak-EWMA latency, ejection) by address, surviving config swaps; [`StatsRegistry`] holds one
//!   per cluster.
//! - [`Balancer`] is built once per cluster version from its [`LbPolicy`](crate::model::LbPolicy),
//!   endpoints and locality settings, and answers [`Balancer::pick`] without locks or allocation:
//!   LEAST_REQUEST (power of two choices), ROUND_ROBIN (weighted, EDF schedule),
//!   RANDOM (weighted), PEAK_EWMA (linkerd's and Finagle's), RING_HASH (Ketama) and MAGLEV.
//! - Priority levels: the control plane's EDS priorities when it sends any, else locality-aware
//!   levels from the client's locality ([`ClientLocality`], Istio's `localityLbSetting`); Envoy's
//!   priority spill-over with overprovisioning factor 1.4, and its panic threshold.
//! - Locality-weighted balancing within a level (the control plane's locality weights, scaled by
//!   each locality's health as Envoy and gRPC do) when the cluster asks for it.
//! - Slow start (Istio's `loadBalancer.warmup`) for ROUND_ROBIN and LEAST_REQUEST: a new
//!   endpoint's weight ramps up over a window, as Envoy's `slow_start_config`.
//! - [`WeightedPick`] chooses among a route's weighted clusters.
//!
//! Everything takes its randomness from the caller (`&mut impl rand::Rng`) and its time as a
//! parameter, so tests are seeded and deterministic.
//!
//! A request's life as the outbound client sees it:
//!
//! ```
//! use std::sync::Arc;
//! use mesh_core::balance::{Balancer, ClientLocality, ClusterState, PickContext};
//! use mesh_core::resilience::{Outcome, OutlierDetector};
//! # use mesh_core::model::*;
//! # let cluster = Cluster {
//! #     name: ClusterName::outbound("reviews.default.svc.cluster.local", 9080, None),
//! #     service: ServiceKey { host: "reviews.default.svc.cluster.local".into(),
//! #         namespace: "default".into(), port: 9080, subset: None },
//! #     protocol: Protocol::Http, resolution: Resolution::Static,
//! #     endpoints: (1..=3).map(|i| Endpoint {
//! #         address: EndpointAddress::Socket(([10, 0, 0, i], 9080).into()),
//! #         labels: Default::default(), weight: 1, locality: Locality::default(),
//! #         identity: None, health: HealthStatus::Healthy, priority: 0, locality_weight: None,
//! #     }).collect(),
//! #     lb: LbPolicy::LeastRequest, locality_lb: LocalityLbSetting::default(),
//! #     locality_weighted_lb: false,
//! #     tls: UpstreamTls::istio_mutual(), connection_pool: ConnectionPool::default(),
//! #     outlier: Some(OutlierDetection::default()), retry_budget: RetryBudget::default(),
//! #     slow_start: None,
//! # };
//! use rand::SeedableRng;
//! let now = tokio::time::Instant::now();
//! let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
//!
//! // Once per cluster version (the state outlives versions).
//! let state = Arc::new(ClusterState::new(cluster.name.clone(), now));
//! let balancer = Balancer::new(&cluster, &state, &ClientLocality::default(), now)?;
//! let detector = OutlierDetector::new(cluster.outlier.clone().unwrap_or_default(), state.clone());
//!
//! // Per request.
//! let index = balancer.pick(&PickContext::new(now), &mut rng).expect("healthy endpoints");
//! let endpoint = &cluster.endpoints[index];
//! let in_flight = balancer.stats(index).unwrap().start(now);
//! // … send the request to `endpoint.address`, get a response …
//! detector.report(in_flight.stats(), Outcome::Response(200), now);
//! in_flight.finish(now);
//! # Ok::<(), mesh_core::balance::BalancerError>(())
//! ```

mod balancer;
mod ewma;
mod hash;
mod least_request;
mod locality;
mod locality_weighted;
mod maglev;
mod peak_ewma;
mod priority;
mod random;
mod ring_hash;
mod round_robin;
mod slow_start;
mod state;
mod stats;
#[cfg(test)]
pub(crate) mod test_util;
mod weighted_pick;

#[cfg(test)]
mod tests;

pub use balancer::{Balancer, BalancerError, PickContext, check_lb_policy};
pub use ewma::EwmaConfig;
pub use hash::hash_key;
pub use locality::ClientLocality;
pub use state::{ClusterState, StatsRegistry};
pub use stats::{EndpointStats, InFlight};
pub use weighted_pick::WeightedPick;
