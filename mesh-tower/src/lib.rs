//! mesh-tower: mesh for hyper and axum apps.
//!
//! - [`client`]: the outbound `MeshClient`.
//! - [`serve()`]: the inbound server (mutual TLS by PeerAuthentication mode, HTTP/1.1 and HTTP/2,
//!   limits, graceful shutdown) running the [`inbound`] policy.
//! - [`inbound`]: the layers a server puts in front of the application: trace context,
//!   metadata exchange, authorization, telemetry.
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
mod serve;
pub mod telemetry;
pub mod tls;
pub mod trace;

pub use serve::{
    ConnectionSettings, ConnectionSettingsError, HeadersWithUnderscores, Serve, ServeOptions, serve,
};
