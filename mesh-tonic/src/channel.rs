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
///
/// ```
/// use std::time::Duration;
/// use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
///
/// async fn check(mesh: &mesh_core::Mesh) -> Result<(), Box<dyn std::error::Error>> {
///     // One channel per process is enough: clones share pooled connections.
///     let channel = mesh_tonic::channel(mesh);
///     let mut client = HealthClient::with_origin(channel, "http://payment:7000".parse()?);
///     let mut request = tonic::Request::new(HealthCheckRequest::default());
///     request.set_timeout(Duration::from_secs(1)); // grpc-timeout, as the route timeout
///     match client.check(request).await {
///         Ok(answer) => println!("{:?}", answer.into_inner().status()),
///         // Denied by payment's AuthorizationPolicy: the caller's identity is not allowed.
///         Err(status) if status.code() == tonic::Code::PermissionDenied => println!("denied"),
///         Err(status) => return Err(status.into()),
///     }
///     Ok(())
/// }
/// ```
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
