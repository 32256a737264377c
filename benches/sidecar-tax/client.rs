//! The client side of each arm: `n` connections, each a generated `GreeterClient` over a
//! boxed channel (gRPC arms, [`mesh_benches::e2e::grpc`]) or an echo client (plain-HTTP arms,
//! [`mesh_benches::e2e::http`]), so the load generator's code is the same for every arm.
//!
//! - A: tonic `Channel` over h2c to the server.
//! - A′: tonic `Channel` over tokio-rustls (client certificate, SPIFFE check of the server).
//! - B: `MeshChannel` over a `MeshClient` (routing, balancing, mTLS, metrics).
//! - C: tonic `Channel` over h2c to the client-side Envoy.
//! - A′-http: hyper's HTTP/2 client over tokio-rustls, same certificates as A′.
//! - B-http: a `MeshClient` (as B, on an `HTTP2` port).

use std::net::SocketAddr;
use std::sync::Arc;

use mesh_benches::e2e::E2eError;
use mesh_benches::e2e::grpc::{self, GrpcClient};
use mesh_benches::e2e::http::HttpClient;
use mesh_core::Mesh;
use mesh_core::identity::{SpiffeId, TlsIdentity};
use mesh_tower::client::MeshClient;
use mesh_tower::telemetry::Telemetry;

use crate::error::BenchError;

/// One connection's client, whatever the arm. Cheap to clone.
#[derive(Clone, Debug)]
pub enum Client {
    /// A gRPC arm's generated client.
    Grpc(GrpcClient),
    /// A plain-HTTP arm's echo client.
    Http(HttpClient),
}

/// `n` h2c connections to `addr` (arm A, and arm C through the client-side Envoy).
pub async fn plain(addr: SocketAddr, n: usize) -> Result<Vec<Client>, BenchError> {
    connect_n(
        n,
        || async move { grpc::plain(addr).await.map(Client::Grpc) },
    )
    .await
}

/// `n` rustls mutual-TLS connections to `addr`, expecting the server to be `server_id`.
pub async fn tls(
    addr: SocketAddr,
    n: usize,
    identity: &TlsIdentity,
    server_id: SpiffeId,
) -> Result<Vec<Client>, BenchError> {
    connect_n(n, || {
        let server_id = server_id.clone();
        async move {
            grpc::bare(addr, identity, server_id)
                .await
                .map(Client::Grpc)
        }
    })
    .await
}

/// `n` mesh clients (each with its own connection pool) over `mesh`, as workload `identity`.
pub fn mesh(
    mesh: &Mesh,
    n: usize,
    identity: &Arc<TlsIdentity>,
    telemetry: &Telemetry,
) -> Result<Vec<Client>, BenchError> {
    mesh_clients(mesh, n, identity, telemetry)
        .map(|client| Ok(Client::Grpc(grpc::mesh(client)?)))
        .collect()
}

/// `n` HTTP/2 connections over rustls mutual TLS to `addr` (arm A′-http), expecting the server
/// to be `server_id`.
pub async fn tls_http(
    addr: SocketAddr,
    n: usize,
    identity: &TlsIdentity,
    server_id: SpiffeId,
) -> Result<Vec<Client>, BenchError> {
    connect_n(n, || {
        let server_id = server_id.clone();
        async move {
            HttpClient::bare(addr, identity, server_id)
                .await
                .map(Client::Http)
        }
    })
    .await
}

/// `n` mesh clients (each with its own connection pool) over `mesh`, as workload `identity`,
/// calling the echo application (arm B-http).
pub fn mesh_http(
    mesh: &Mesh,
    n: usize,
    identity: &Arc<TlsIdentity>,
    telemetry: &Telemetry,
) -> Vec<Client> {
    mesh_clients(mesh, n, identity, telemetry)
        .map(|client| Client::Http(HttpClient::Mesh(client)))
        .collect()
}

/// `n` connections, made one after another by `connect`.
async fn connect_n<F, Fut>(n: usize, mut connect: F) -> Result<Vec<Client>, BenchError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Client, E2eError>>,
{
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        clients.push(connect().await?);
    }
    Ok(clients)
}

/// `n` mesh clients over `mesh` as `identity`, recording into `telemetry`, client `i` seeded
/// with `i`.
fn mesh_clients<'a>(
    mesh: &'a Mesh,
    n: usize,
    identity: &'a Arc<TlsIdentity>,
    telemetry: &'a Telemetry,
) -> impl Iterator<Item = MeshClient> + 'a {
    (0..n).map(|i| {
        MeshClient::builder(mesh.clone())
            .identity(identity.clone())
            .telemetry(telemetry.clone())
            .seed(i as u64)
            .build()
    })
}
