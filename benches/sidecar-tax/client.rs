//! The client side of each arm: `n` connections, each a generated `GreeterClient` over a
//! boxed channel (gRPC arms) or an echo client (plain-HTTP arms), so the load generator's code
//! is the same for every arm.
//!
//! - A: tonic `Channel` over h2c to the server.
//! - A′: tonic `Channel` over tokio-rustls (client certificate, SPIFFE check of the server).
//! - B: `MeshChannel` over a `MeshClient` (routing, balancing, mTLS, metrics).
//! - C: tonic `Channel` over h2c to the client-side Envoy.
//! - A′-http: hyper's HTTP/2 client over tokio-rustls, same certificates as A′.
//! - B-http: a `MeshClient` (as B, on an `HTTP2` port).

use std::net::SocketAddr;
use std::sync::Arc;

use http::Uri;
use hyper_util::rt::TokioIo;
use mesh_benches::e2e::http::HttpClient;
use mesh_core::Mesh;
use mesh_core::identity::{ExpectedIdentities, SpiffeId, TlsIdentity};
use mesh_tower::client::MeshClient;
use mesh_tower::telemetry::Telemetry;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tonic::transport::Endpoint;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt as _};

use crate::error::BenchError;
use mesh_benches::e2e::greeter::proto::greeter_client::GreeterClient;

/// A channel's error, as text. (A concrete type: with a boxed error, the compiler cannot prove
/// the generated client's futures `Send`, rust-lang/rust#64552.)
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ChannelError(String);

/// One connection's channel, whatever the arm.
pub type Channel = BoxCloneSyncService<
    http::Request<tonic::body::Body>,
    http::Response<tonic::body::Body>,
    ChannelError,
>;

/// The generated client every gRPC arm uses.
pub type GrpcClient = GreeterClient<Channel>;

/// One connection's client, whatever the arm. Cheap to clone.
#[derive(Clone, Debug)]
pub enum Client {
    /// A gRPC arm's generated client.
    Grpc(GrpcClient),
    /// A plain-HTTP arm's echo client.
    Http(HttpClient),
}

/// The authority every call carries (what the mesh and Envoy route on).
pub const ORIGIN: &str = "http://greeter:50051";

fn origin() -> Result<Uri, BenchError> {
    ORIGIN
        .parse()
        .map_err(|e: http::uri::InvalidUri| BenchError::Config(e.to_string()))
}

fn client(channel: Channel) -> Result<Client, BenchError> {
    Ok(Client::Grpc(GreeterClient::with_origin(channel, origin()?)))
}

/// A tonic endpoint for `addr` whose requests carry [`ORIGIN`] (tonic's channel otherwise
/// rewrites the authority to the address it connects to).
fn endpoint(scheme: &str, addr: SocketAddr) -> Result<Endpoint, BenchError> {
    Ok(Endpoint::from_shared(format!("{scheme}://{addr}"))?
        .origin(origin()?)
        .tcp_nodelay(true))
}

fn boxed(channel: tonic::transport::Channel) -> Channel {
    BoxCloneSyncService::new(channel.map_err(|e| ChannelError(e.to_string())))
}

/// `n` h2c connections to `addr` (arm A, and arm C through the client-side Envoy).
pub async fn plain(addr: SocketAddr, n: usize) -> Result<Vec<Client>, BenchError> {
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        let channel = endpoint("http", addr)?.connect().await?;
        clients.push(client(boxed(channel))?);
    }
    Ok(clients)
}

/// `n` rustls mutual-TLS connections to `addr`, expecting the server to be `server_id`.
pub async fn tls(
    addr: SocketAddr,
    n: usize,
    identity: &TlsIdentity,
    server_id: SpiffeId,
) -> Result<Vec<Client>, BenchError> {
    let config = identity.client_config(&ExpectedIdentities::one_of([server_id]))?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        let connector = connector.clone();
        let channel = endpoint("http", addr)?
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let connector = connector.clone();
                async move {
                    let tcp = TcpStream::connect(addr).await?;
                    tcp.set_nodelay(true)?;
                    let name = ServerName::try_from("greeter")
                        .map_err(|e| std::io::Error::other(e.to_string()))?;
                    let tls = connector.connect(name, tcp).await?;
                    Ok::<_, std::io::Error>(TokioIo::new(tls))
                }
            }))
            .await?;
        clients.push(client(boxed(channel))?);
    }
    Ok(clients)
}

/// `n` mesh clients (each with its own connection pool) over `mesh`, as workload `identity`.
pub fn mesh(
    mesh: &Mesh,
    n: usize,
    identity: &Arc<TlsIdentity>,
    telemetry: &Telemetry,
) -> Result<Vec<Client>, BenchError> {
    (0..n)
        .map(|i| {
            let mesh_client = MeshClient::builder(mesh.clone())
                .identity(identity.clone())
                .telemetry(telemetry.clone())
                .seed(i as u64)
                .build();
            let channel = ServiceBuilder::new()
                .map_response(|r: http::Response<_>| r.map(tonic::body::Body::new))
                .map_err(|e: std::convert::Infallible| -> ChannelError { match e {} })
                .service(mesh_tonic::MeshChannel::from_client(mesh_client));
            client(BoxCloneSyncService::new(channel))
        })
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
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        let client = HttpClient::bare(addr, identity, server_id.clone()).await?;
        clients.push(Client::Http(client));
    }
    Ok(clients)
}

/// `n` mesh clients (each with its own connection pool) over `mesh`, as workload `identity`,
/// calling the echo application (arm B-http).
pub fn mesh_http(
    mesh: &Mesh,
    n: usize,
    identity: &Arc<TlsIdentity>,
    telemetry: &Telemetry,
) -> Vec<Client> {
    (0..n)
        .map(|i| {
            let mesh_client = MeshClient::builder(mesh.clone())
                .identity(identity.clone())
                .telemetry(telemetry.clone())
                .seed(i as u64)
                .build();
            Client::Http(HttpClient::Mesh(mesh_client))
        })
        .collect()
}
