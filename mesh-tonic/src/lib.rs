//! mesh-tonic: mesh for tonic.
//!
//! - [`channel`]: a channel for generated tonic clients that routes every call through mesh
//!   (routing by authority, balancing, retries, mutual TLS, telemetry).
#![forbid(unsafe_code)]

mod channel;

pub use channel::{MeshChannel, channel};
pub mod xds;
