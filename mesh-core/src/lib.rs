//! mesh-core: the pure heart of mesh.
//!
//! - [`model`]: the config model (clusters, routes, inbound policy) in one immutable
//!   [`model::Snapshot`].
//! - [`config`]: diagnostics that name file, document, resource and field.
//! - [`identity`]: SPIFFE IDs, workload credentials, mutual-TLS configs and their rotation.
//! - [`Workload`], [`MeshSettings`], [`BuildContext`]: the point of view config is built from.
//!
//! Nothing here opens a socket; algorithms take an injected RNG and clock.
#![forbid(unsafe_code)]

pub mod config;
pub mod identity;
pub mod model;
mod workload;

pub use workload::{BuildContext, MeshSettings, Workload};
