//! The admin endpoint: what an operator (or Prometheus, or a kubelet probe) asks a running
//! workload, on a separate plain-HTTP address, like Envoy's admin port.
//!
//! ```no_run
//! # async fn demo(mesh: mesh_core::Mesh) -> Result<(), Box<dyn std::error::Error>> {
//! use mesh_tower::admin::{self, AdminState, Readiness, ReadyPart};
//! use mesh_tower::telemetry::{Telemetry, install_prometheus};
//!
//! let telemetry = Telemetry::new();
//! let readiness = Readiness::new();
//! let state = AdminState::new()
//!     .readiness(readiness.clone())
//!     .prometheus(install_prometheus()?) // skip if the app has its own recorder
//!     .graph(telemetry.service_graph().clone());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:15000").await?;
//! tokio::spawn(admin::serve(mesh, listener, state));
//! readiness.set_ready(ReadyPart::Config, true);
//! readiness.set_ready(ReadyPart::Identity, true);
//! # Ok(()) }
//! ```
//!
//! Paths: see [`serve`]. The service map at `/` is one embedded page (HTML, CSS and JS, no
//! network access beyond this endpoint) drawing `/graph` as SVG. The page arrives with the
//! graph inlined, so its first view renders without waiting for a request (a screenshot taken
//! as soon as the page loads shows the map); it then polls `/graph`. Nodes carry
//! `data-node="ns/workload/version"` and edges `data-edge="src->dst"`.

mod clusters;
mod config_dump;
mod map_page;
mod peers;
mod ready;
mod server;
mod state;
mod stats;

#[cfg(test)]
mod tests;

pub use clusters::{
    ClusterStatsSource, ClusterStatus, ENDPOINTS_GAUGE, EndpointStatus, record_endpoint_gauges,
};
pub use config_dump::{IdentityDump, config_dump};
pub use peers::{MAX_PEER_GRAPH_BYTES, PEER_TIMEOUT, PeerClient};
pub use ready::{Readiness, ReadyPart};
pub use server::serve;
pub use state::AdminState;
