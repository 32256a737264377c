//! Serving tonic services under the mesh's inbound policy.

use mesh_core::Mesh;
use tokio::net::TcpListener;
use tonic::service::Routes;

/// Serves the gRPC services in `routes` on `listener` with [`mesh_tower::serve`]: mutual TLS by
/// PeerAuthentication mode, authorization (a denied call gets `PERMISSION_DENIED` without
/// reaching the service), trace context, metadata exchange and `reporter=destination`
/// telemetry. Set options and graceful shutdown on the returned [`mesh_tower::Serve`], then
/// await it.
///
/// ```no_run
/// # async fn demo(mesh: mesh_core::Mesh) -> std::io::Result<()> {
/// let (_reporter, health) = tonic_health::server::health_reporter();
/// let routes = tonic::service::Routes::new(health);
/// let listener = tokio::net::TcpListener::bind("0.0.0.0:9080").await?;
/// mesh_tonic::serve(&mesh, listener, routes).await
/// # }
/// ```
pub fn serve(mesh: &Mesh, listener: TcpListener, routes: Routes) -> mesh_tower::Serve<Routes> {
    mesh_tower::serve(mesh, listener, routes.prepare())
}
