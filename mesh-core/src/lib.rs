//! mesh-core: the pure heart of mesh.
//!
//! - [`model`]: the config model (clusters, routes, inbound policy) in one immutable
//!   [`model::Snapshot`].
//! - [`config`]: diagnostics that name file, document, resource and field.
//! - [`istio`]: Istio resources from YAML files, validated and translated into a snapshot.
//! - [`routing`]: which route a request takes.
//! - [`balance`]: choosing an endpoint of a cluster, and a cluster of a route.
//! - [`resilience`]: outlier detection, retry budgets, backoff, circuit breaking.
//! - [`identity`]: SPIFFE IDs, workload credentials, mutual-TLS configs and their rotation.
//! - [`authz`]: AuthorizationPolicy evaluation and request-path normalisation.
//! - [`telemetry`]: response flags and Istio metric names.
//! - [`Mesh`]: the live config, hot-swapped and read without locks.
//! - [`Workload`], [`MeshSettings`], [`BuildContext`]: the point of view config is built from.
//!
//! Nothing here opens a socket; algorithms take an injected RNG and clock.
#![forbid(unsafe_code)]

pub mod authz;
pub mod balance;
pub mod config;
pub mod identity;
pub mod istio;
mod mesh;
pub mod model;
pub mod resilience;
pub mod routing;
pub mod telemetry;
mod workload;

pub use mesh::load_valid_files;
pub use mesh::{ConfigStatus, Mesh, MeshBuilder, MeshError, Rejection};
pub use workload::{BuildContext, MeshSettings, OutboundTrafficPolicy, Workload};
