//! The plain-HTTP call of the end-to-end arms: `POST /echo` with a payload, answered with the
//! same bytes by an axum handler. The client is bare hyper over rustls (A′-http) or a
//! `MeshClient` (B-http), behind one type so a load generator's code is the same for both.

use std::net::SocketAddr;

use axum::Router;
use axum::routing::post;
use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_core::identity::{ExpectedIdentities, SpiffeId, TlsIdentity};
use mesh_tower::client::MeshClient;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tower::ServiceExt as _;

use super::E2eError;

/// The URI of every echo call: the greeter's authority and [`ECHO_PATH`](super::ECHO_PATH).
const ECHO_URI: &str = "http://greeter:50051/echo";

/// The echo application: `POST /echo` answers the request body.
pub fn echo_router() -> Router {
    Router::new().route(super::ECHO_PATH, post(echo))
}

async fn echo(body: Bytes) -> Bytes {
    body
}

/// One connection's client of the echo application, bare or through mesh. Cheap to clone.
#[derive(Clone, Debug)]
pub enum HttpClient {
    /// hyper's HTTP/2 client over one rustls mutual-TLS connection.
    Bare(http2::SendRequest<Full<Bytes>>),
    /// A `MeshClient` (routing, balancing, mTLS, metrics, trace context).
    Mesh(MeshClient),
}

impl HttpClient {
    /// Opens one HTTP/2 connection over rustls mutual TLS to `addr`, presenting `identity` and
    /// expecting the server to be `server_id`. Its connection task runs on the current runtime.
    pub async fn bare(
        addr: SocketAddr,
        identity: &TlsIdentity,
        server_id: SpiffeId,
    ) -> Result<Self, E2eError> {
        let config = identity.client_config(&ExpectedIdentities::one_of([server_id]))?;
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from("greeter")
            .map_err(|e| E2eError::Config(format!("server name: {e}")))?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await?;
        let (sender, connection) =
            http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await?;
        tokio::spawn(connection);
        Ok(Self::Bare(sender))
    }

    /// One echo call with `payload`; the number of bytes echoed back.
    pub async fn echo(&self, payload: Bytes) -> Result<usize, E2eError> {
        let request = Request::post(Uri::from_static(ECHO_URI))
            .header(http::header::CONTENT_TYPE, "application/octet-stream")
            .body(Full::new(payload))
            .map_err(|e| E2eError::Call(e.to_string()))?;
        let (status, body) = match self {
            Self::Bare(sender) => {
                let mut sender = sender.clone();
                sender.ready().await?;
                let response = sender.send_request(request).await?;
                let status = response.status();
                let body = response.into_body().collect().await?.to_bytes();
                (status, body)
            }
            Self::Mesh(client) => {
                let response = match client.clone().oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                let status = response.status();
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| E2eError::Call(e.to_string()))?
                    .to_bytes();
                (status, body)
            }
        };
        if status != StatusCode::OK {
            return Err(E2eError::Call(format!("echo answered {status}")));
        }
        Ok(body.len())
    }
}
