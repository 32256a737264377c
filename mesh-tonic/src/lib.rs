//! mesh-tonic: mesh for tonic.
//!
//! - [`channel`]: a channel for generated tonic clients that routes every call through mesh
//!   (routing by authority, balancing, retries, mutual TLS, telemetry).
//! - [`serve()`]: serves tonic `Routes` with the mesh's inbound policy (mutual TLS,
//!   authorization, telemetry), on [`mesh_tower::serve`].
#![forbid(unsafe_code)]

mod channel;
mod serve;

pub use channel::{MeshChannel, channel};
pub use serve::serve;
pub mod xds;
