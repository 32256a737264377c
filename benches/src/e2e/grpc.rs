//! The gRPC call of the end-to-end arms: the generated `GreeterClient` over a tonic channel on
//! h2c (A, C) or rustls mutual TLS (A′), or over `MeshChannel` (B), behind one boxed channel
//! type.

use std::net::SocketAddr;

use bytes::Bytes;
use http::Uri;
use hyper_util::rt::TokioIo;
use mesh_core::identity::{ExpectedIdentities, SpiffeId, TlsIdentity};
use mesh_tower::client::MeshClient;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tonic::transport::Endpoint;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt as _};

use super::E2eError;
use super::greeter::proto::HelloRequest;
use super::greeter::proto::greeter_client::GreeterClient;

/// A channel's error, as text. (A concrete type: with a boxed error, the compiler cannot prove
/// the generated client's futures `Send`, rust-lang/rust#64552.)
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ChannelError(String);

/// One connection's channel, bare or through mesh.
pub type Channel = BoxCloneSyncService<
    http::Request<tonic::body::Body>,
    http::Response<tonic::body::Body>,
    ChannelError,
>;

/// The generated client both gRPC arms use.
pub type GrpcClient = GreeterClient<Channel>;

fn origin() -> Result<Uri, E2eError> {
    super::ORIGIN
        .parse()
        .map_err(|e: http::uri::InvalidUri| E2eError::Config(e.to_string()))
}

/// A tonic endpoint for `addr` whose requests carry [`ORIGIN`](super::ORIGIN) (tonic's channel
/// otherwise rewrites the authority to the address it connects to).
fn endpoint(addr: SocketAddr) -> Result<Endpoint, E2eError> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))?
        .origin(origin()?)
        .tcp_nodelay(true))
}

/// The generated client over `channel`.
fn client(channel: tonic::transport::Channel) -> Result<GrpcClient, E2eError> {
    let channel = BoxCloneSyncService::new(channel.map_err(|e| ChannelError(e.to_string())));
    Ok(GreeterClient::with_origin(channel, origin()?))
}

/// One tonic channel over h2c (no TLS) to `addr`.
pub async fn plain(addr: SocketAddr) -> Result<GrpcClient, E2eError> {
    client(endpoint(addr)?.connect().await?)
}

/// One tonic channel over rustls mutual TLS to `addr`, presenting `identity` and expecting the
/// server to be `server_id`.
pub async fn bare(
    addr: SocketAddr,
    identity: &TlsIdentity,
    server_id: SpiffeId,
) -> Result<GrpcClient, E2eError> {
    let config = identity.client_config(&ExpectedIdentities::one_of([server_id]))?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let channel = endpoint(addr)?
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
    client(channel)
}

/// The generated client over `MeshChannel` on `client`.
pub fn mesh(client: MeshClient) -> Result<GrpcClient, E2eError> {
    let channel = ServiceBuilder::new()
        .map_response(|r: http::Response<_>| r.map(tonic::body::Body::new))
        .map_err(|e: std::convert::Infallible| -> ChannelError { match e {} })
        .service(mesh_tonic::MeshChannel::from_client(client));
    Ok(GreeterClient::with_origin(
        BoxCloneSyncService::new(channel),
        origin()?,
    ))
}

/// One `SayHello` with `payload`; the number of payload bytes echoed back.
pub async fn say_hello(client: &GrpcClient, payload: Bytes) -> Result<usize, E2eError> {
    let request = HelloRequest {
        name: "bench".to_owned(),
        payload,
    };
    let reply = client
        .clone()
        .say_hello(request)
        .await
        .map_err(|status| E2eError::Call(status.to_string()))?;
    Ok(reply.into_inner().payload.len())
}
