//! xDS: mesh as a client of an xDS control plane (istiod, or `mesh xds serve`), and as a small
//! control plane serving Istio files to Envoy and proxyless gRPC clients.
//!
//! - [`translate`]: xDS resources ↔ the model, pure.
//! - [`bootstrap`]: the gRPC xDS bootstrap file Istio's grpc-agent writes.
//! - [`client`]: the ADS client that keeps a [`mesh_core::Mesh`] fed.
//! - [`server`]: the ADS server behind `mesh xds serve`.
//!
//! The Envoy protobuf types (from `envoy-types`) appear only under this module.
//! Specs followed: the xDS protocol (<https://www.envoyproxy.io/docs/envoy/latest/api-docs/xds_protocol>),
//! gRFC A27 (xDS-based global load balancing), A40 (CSDS), A46 (NACK semantics), A57 (bootstrap
//! and does-not-exist timer) and A88 (resource errors).

pub mod bootstrap;
pub mod client;
mod node;
pub mod server;
mod stream;

pub use node::IstioNodeId;
pub mod translate;
