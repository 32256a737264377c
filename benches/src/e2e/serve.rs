//! The servers of the bare arms (A′): HTTP/2 over rustls mutual TLS, client certificates
//! required, any tower service (tonic `Routes` or an axum `Router`) on each connection. No mesh.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

/// A boxed error, as hyper wants a body's error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Accepts connections on `listener` until it fails, each over TLS with `config`, and serves
/// HTTP/2 on it with a clone of `service`.
pub async fn serve_tls_h2<S, B>(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    service: S,
) -> std::io::Result<()>
where
    S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    loop {
        let (tcp, _) = listener.accept().await?;
        let (acceptor, service) = (acceptor.clone(), service.clone());
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            if let Ok(tls) = acceptor.accept(tcp).await {
                serve_h2(tls, service).await;
            }
        });
    }
}

/// Serves HTTP/2 on one connection until the client closes it.
pub async fn serve_h2<IO, S, B>(io: IO, service: S)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let _ = http2::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
        .await;
}
