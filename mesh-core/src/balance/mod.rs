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
//! - Locality-aware priorities ([`ClientLocality`], Istio's `localityLbSetting`), Envoy's priority
//!   spill-over with overprovisioning factor 1.4, and its panic threshold.
//! - [`WeightedPick`] chooses among a route's weighted clusters.
//!
//! Everything takes its randomness from the caller (`&mut impl rand::Rng`) and its time as a
//! parameter, so tests are seeded and deterministic.

mod balancer;
mod ewma;
mod hash;
mod least_request;
mod locality;
mod maglev;
mod peak_ewma;
mod priority;
mod random;
mod ring_hash;
mod round_robin;
mod state;
mod stats;
#[cfg(test)]
pub(crate) mod test_util;
mod weighted_pick;

#[cfg(test)]
mod tests;

pub use balancer::{Balancer, BalancerError, PickContext};
pub use ewma::EwmaConfig;
pub use hash::hash_key;
pub use locality::ClientLocality;
pub use state::{ClusterState, StatsRegistry};
pub use stats::{EndpointStats, InFlight};
pub use weighted_pick::WeightedPick;
