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
//!
//! An app starts from [`Mesh::builder`] (see [`MeshBuilder`]) and hands the [`Mesh`] to
//! `mesh_tower` or `mesh_tonic`. The same translation is available without a `Mesh`, which is
//! how `mesh check` and `mesh explain` read config: Istio YAML in, a validated
//! [`model::Snapshot`] (or an error naming file, document and field) out.
//!
//! ```
//! use mesh_core::model::ClusterName;
//! use mesh_core::{BuildContext, Workload, istio};
//!
//! let yaml = "
//! apiVersion: networking.istio.io/v1
//! kind: ServiceEntry
//! metadata: {name: reviews, namespace: default}
//! spec:
//!   hosts: [reviews.default.svc.cluster.local]
//!   ports: [{number: 9080, name: http, protocol: HTTP}]
//!   resolution: DNS
//! ---
//! apiVersion: networking.istio.io/v1
//! kind: DestinationRule
//! metadata: {name: reviews, namespace: default}
//! spec:
//!   host: reviews
//!   subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
//! ---
//! apiVersion: networking.istio.io/v1
//! kind: VirtualService
//! metadata: {name: reviews, namespace: default}
//! spec:
//!   hosts: [reviews]
//!   http:
//!   - route:
//!     - {destination: {host: reviews, subset: v1}, weight: 90}
//!     - {destination: {host: reviews, subset: v2}, weight: 10}
//! ";
//! let ctx = BuildContext { workload: Workload::new("default", "productpage"), ..Default::default() };
//! let snapshot = istio::load_str("mesh/reviews.yaml", yaml, &ctx)?;
//! let v2 = ClusterName::outbound("reviews.default.svc.cluster.local", 9080, Some("v2"));
//! assert!(snapshot.cluster(&v2).is_some(), "{:?}", snapshot.clusters.keys());
//!
//! // A bad edit is refused with the file, the document, the resource and the field.
//! let bad = yaml.replace("weight: 10", "weight: -10");
//! let error = istio::load_str("mesh/reviews.yaml", &bad, &ctx).unwrap_err();
//! assert!(error.to_string().contains("mesh/reviews.yaml"), "{error}");
//! # Ok::<(), mesh_core::config::ConfigError>(())
//! ```
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
pub use mesh::{
    ConfigStatus, IdentityMismatch, Mesh, MeshBuilder, MeshError, Rejection, identity_mismatch,
};
pub use workload::{BuildContext, MeshSettings, OutboundTrafficPolicy, Workload};
