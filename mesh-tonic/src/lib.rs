//! mesh-tonic: mesh for tonic.
//!
//! - [`channel`]: a channel for generated tonic clients that routes every call through mesh
//!   (routing by authority, balancing, retries, mutual TLS, telemetry).
//! - [`serve()`]: serves tonic `Routes` with the mesh's inbound policy (mutual TLS,
//!   authorization, telemetry), on [`mesh_tower::serve`].
//! - `xds` (feature `xds`): the xDS client of the `mesh-xds` crate, for an app that takes its
//!   config from istiod or another ADS server instead of files.
#![forbid(unsafe_code)]

mod channel;
mod serve;

pub use channel::{MeshChannel, channel};
#[cfg(feature = "xds")]
pub use mesh_xds as xds;
pub use serve::serve;
