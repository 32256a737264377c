//! mesh-tonic: mesh for tonic.
//!
//! - [`channel`]: a channel for generated tonic clients that routes every call through mesh
//!   (routing by authority, balancing, retries, mutual TLS, telemetry).
//! - [`serve()`]: serves tonic `Routes` with the mesh's inbound policy (mutual TLS,
//!   authorization, telemetry), on [`mesh_tower::serve`].
//! - `xds` (feature `xds`): the xDS client of the `mesh-xds` crate, for an app that takes its
//!   config from istiod or another ADS server instead of files.
//!
//! A gRPC workload that serves and calls, both under the mesh (any tonic-generated client and
//! server work the same way; here the health service's):
//!
//! ```
//! use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
//!
//! async fn run(mesh: mesh_core::Mesh) -> Result<(), Box<dyn std::error::Error>> {
//!     // Inbound: mutual TLS by PeerAuthentication, authorization, Istio metrics.
//!     let (_reporter, health) = tonic_health::server::health_reporter();
//!     let listener = tokio::net::TcpListener::bind("0.0.0.0:7000").await?;
//!     let routes = tonic::service::Routes::new(health);
//!     tokio::spawn(mesh_tonic::serve(&mesh, listener, routes).into_future());
//!
//!     // Outbound: the authority picks the VirtualService; mesh balances and retries.
//!     let channel = mesh_tonic::channel(&mesh);
//!     let mut inventory = HealthClient::with_origin(channel, "http://inventory:7000".parse()?);
//!     let answer = inventory.check(HealthCheckRequest::default()).await?;
//!     println!("inventory is {:?}", answer.into_inner().status());
//!     Ok(())
//! }
//! ```
#![forbid(unsafe_code)]

mod channel;
mod serve;

pub use channel::{MeshChannel, channel};
#[cfg(feature = "xds")]
pub use mesh_xds as xds;
pub use serve::serve;
