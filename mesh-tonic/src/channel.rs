//! A tonic channel over [`MeshClient`].

use std::convert::Infallible;
use std::task::{Context, Poll};

use mesh_core::Mesh;
use mesh_tower::client::{MeshBody, MeshClient};

/// A channel for generated tonic clients: each call is routed by its authority through the
/// mesh, exactly as [`MeshClient`] routes HTTP requests. Cheap to clone; clones share
/// connections.
///
/// ```no_run
/// # async fn demo(mesh: mesh_core::Mesh) -> Result<(), Box<dyn std::error::Error>> {
/// use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
/// let channel = mesh_tonic::channel(&mesh);
/// let mut health = HealthClient::with_origin(channel, "http://inventory:7000".parse()?);
/// let status = health.check(HealthCheckRequest { service: String::new() }).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct MeshChannel {
    client: MeshClient,
}

/// A channel over `mesh` for generated tonic clients; pass it to `FooClient::with_origin(channel,
/// "http://foo:7000".parse()?)` so requests carry the service's authority.
pub fn channel(mesh: &Mesh) -> MeshChannel {
    MeshChannel {
        client: MeshClient::new(mesh.clone()),
    }
}

impl MeshChannel {
    /// A channel over an existing client (sharing its connections and seed).
    pub fn from_client(client: MeshClient) -> Self {
        Self { client }
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for MeshChannel {
    type Response = http::Response<MeshBody>;
    type Error = Infallible;
    type Future = <MeshClient as tower::Service<http::Request<tonic::body::Body>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        tower::Service::<http::Request<tonic::body::Body>>::poll_ready(&mut self.client, cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        self.client.call(request)
    }
}
