//! mesh-tower: mesh for hyper and axum apps.
//!
//! - [`client`]: the outbound `MeshClient`.
//! - [`inbound`]: the layers a server puts in front of the application: authorization first.
//! - [`tls`]: mutual TLS with SPIFFE identities (connector, acceptor per PeerAuthentication mode,
//!   peer identity in request extensions).
//! - [`reply`]: the answers mesh gives itself, mapped to HTTP or gRPC in one place.
#![forbid(unsafe_code)]

pub mod client;
pub mod inbound;
pub mod reply;
pub mod tls;
