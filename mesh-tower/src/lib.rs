//! mesh-tower: mesh for hyper and axum apps.
//!
//! - [`client`]: the outbound `MeshClient`.
//! - [`inbound`]: the layers a server puts in front of the application: authorization first.
//! - [`tls`]: mutual TLS with SPIFFE identities (connector, acceptor per PeerAuthentication mode,
//!   peer identity in request extensions).
//! - [`reply`]: the answers mesh gives itself, mapped to HTTP or gRPC in one place.
//! - [`telemetry`]: Istio's request metrics, the service graph and the access log.
//! - [`trace`]: request ids and trace context propagation (W3C and B3).
//! - [`admin`]: the admin endpoint (`/metrics`, `/config_dump`, `/clusters`, readiness, service
//!   map).
#![forbid(unsafe_code)]

pub mod admin;
pub mod client;
pub mod inbound;
pub mod reply;
pub mod telemetry;
pub mod tls;
pub mod trace;
