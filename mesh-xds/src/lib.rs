//! mesh-xds: mesh and the xDS protocol, the second config front end beside Istio YAML.
//!
//! Istio YAML becomes the model in `mesh_core::istio`; xDS resources become the model (and the
//! model becomes xDS resources) here, so a workload can run on istiod or any ADS server, and a
//! fleet without Kubernetes can run on `mesh xds serve`.
//!
//! - [`translate`]: xDS resources ↔ the model, pure.
//! - [`bootstrap`]: the gRPC xDS bootstrap file Istio's grpc-agent writes.
//! - [`client`] (feature `client`, on by default): the ADS client that keeps a [`mesh_core::Mesh`]
//!   fed.
//! - [`server`] (feature `server`): the ADS server behind `mesh xds serve`. An app that does not
//!   run a control plane does not build it.
//!
//! The Envoy protobuf types (from `envoy-types`) appear only in this crate.
//! Specs followed: the xDS protocol (<https://www.envoyproxy.io/docs/envoy/latest/api-docs/xds_protocol>),
//! gRFC A27 (xDS-based global load balancing), A40 (CSDS), A46 (NACK semantics), A57 (bootstrap
//! and does-not-exist timer) and A88 (resource errors).
//!
//! A workload under a control plane, from the bootstrap file Istio's grpc-agent writes:
//!
//! ```no_run
//! # #[cfg(feature = "client")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use mesh_xds::{Bootstrap, XdsClient, XdsClientConfig};
//!
//! let bootstrap = Bootstrap::from_env()?; // GRPC_XDS_BOOTSTRAP
//! let mesh = bootstrap.mesh_builder().build().await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let config = XdsClientConfig::from_bootstrap(&bootstrap).serving(listener.local_addr()?);
//! let xds = XdsClient::start(mesh.clone(), config);
//! xds.ready().await; // the first complete config is applied
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

pub mod bootstrap;
#[cfg(any(feature = "client", feature = "server"))]
pub mod ca_proto;
#[cfg(feature = "client")]
pub mod client;
mod node;
#[cfg(feature = "server")]
pub mod server;
#[cfg(any(feature = "client", feature = "server"))]
mod stream;
pub mod translate;

pub use bootstrap::Bootstrap;

/// The DNS name istiod's serving certificate carries and workloads verify it by (istio-agent's
/// `ISTIOD_SAN` default); `mesh xds serve`'s certificate carries it too.
pub const ISTIOD_DNS_NAME: &str = "istiod.istio-system.svc";
#[cfg(feature = "client")]
pub use client::{XdsClient, XdsClientConfig};
pub use node::IstioNodeId;
#[cfg(feature = "server")]
pub use server::XdsServer;
