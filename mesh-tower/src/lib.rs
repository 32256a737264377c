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
//!
//! A workload that serves HTTP and calls another service, both under the mesh:
//!
//! ```
//! use axum::{Router, routing::get};
//! use tower::ServiceExt;
//!
//! async fn run(mesh: mesh_core::Mesh) -> Result<(), Box<dyn std::error::Error>> {
//!     // Inbound: mutual TLS by PeerAuthentication, authorization, Istio metrics.
//!     let app = Router::new().route("/", get(|| async { "ok" }));
//!     let listener = tokio::net::TcpListener::bind("0.0.0.0:9080").await?;
//!     tokio::spawn(mesh_tower::serve(&mesh, listener, app).into_future());
//!
//!     // Outbound: routed by authority through the VirtualServices and DestinationRules.
//!     let client = mesh_tower::client::MeshClient::new(mesh.clone());
//!     let request = http::Request::get("http://reviews:9080/reviews/1")
//!         .body(http_body_util::Empty::<bytes::Bytes>::new())?;
//!     let response = client.oneshot(request).await?;
//!     println!("reviews answered {}", response.status());
//!     Ok(())
//! }
//! ```
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
