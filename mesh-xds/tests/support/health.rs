//! tonic-health served by a mesh workload, and its callers: what the tests check a workload's
//! inbound security (mutual TLS, STRICT, authorization) with.

use std::net::SocketAddr;
use std::time::Duration;

use mesh_core::Mesh;
use tokio::net::TcpListener;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// Serves tonic-health (the server as a whole `SERVING`) on `listener` through
/// `mesh_tonic::serve`, until the test ends.
pub async fn serve_health(mesh: &Mesh, listener: TcpListener) {
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    tokio::spawn(
        mesh_tonic::serve(mesh, listener, tonic::service::Routes::new(service)).into_future(),
    );
}

/// A health check of the whole server on `channel`.
pub async fn health(channel: Channel) -> Result<(), tonic::Status> {
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(drop)
}

/// STRICT: a plaintext caller of `addr` gets no answer (no HTTP/2 connection, or a failed
/// call).
pub async fn assert_plaintext_refused(addr: SocketAddr) {
    let plaintext = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await;
    if let Ok(channel) = plaintext {
        assert!(health(channel).await.is_err(), "STRICT: plaintext refused");
    }
}
