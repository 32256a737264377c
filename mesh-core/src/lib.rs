//! mesh-core: the pure heart of mesh.
//!
//! - [`model`]: the config model (clusters, routes, inbound policy) in one immutable
//!   [`model::Snapshot`].
//! - [`balance`]: endpoint and weighted-cluster picking (P2C, EWMA, ring hash, Maglev, locality).
//! - [`resilience`]: outlier detection, retry budget, backoff, circuit breaker.
//! - [`config`]: diagnostics that name file, document, resource and field.
//! - [`Workload`], [`MeshSettings`], [`BuildContext`]: the point of view config is built from.
//!
//! Nothing here opens a socket; algorithms take an injected RNG and clock.
#![forbid(unsafe_code)]

pub mod balance;
pub mod config;
pub mod model;
pub mod resilience;
mod workload;

pub use workload::{BuildContext, MeshSettings, Workload};
