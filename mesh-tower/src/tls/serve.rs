//! Serving one accepted connection with hyper, peer identity attached to each request.

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tower::ServiceExt;
use tower_service::Service;

use super::acceptor::Accepted;
use super::alpn::HttpVersion;
use super::extension::AddPeerIdentity;

/// A boxed error, as hyper reports them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Serves HTTP on `accepted` with `service` (an axum `Router`, tonic `Routes`, any tower HTTP
/// service) until the client closes, with the connection's [`mesh_core::identity::PeerIdentity`]
/// in every request's extensions.
///
/// When ALPN (or sniffing) settled the HTTP version, only that version is spoken; otherwise
/// hyper-util detects it.
pub async fn serve_connection<IO, S, B>(accepted: Accepted<IO>, service: S) -> Result<(), BoxError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<http::Request<Incoming>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let service = AddPeerIdentity::new(service, accepted.peer);
    let service = hyper::service::service_fn(move |request| service.clone().oneshot(request));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder = match accepted.http {
        Some(HttpVersion::Http2) => builder.http2_only(),
        Some(HttpVersion::Http1) => builder.http1_only(),
        None => builder,
    };
    builder
        .serve_connection(TokioIo::new(accepted.stream), service)
        .await
}
