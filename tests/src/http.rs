//! A minimal plaintext HTTP/1.1 `GET`: one connection per request, bounded in time.
//!
//! Enough for Envoy's admin API and for the "plain application" side of the interop tests;
//! deliberately not a mesh client, so it cannot hide a mesh bug.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Bound on one request, connect to last body byte.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a plaintext request failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Connecting failed.
    #[error("connect to {addr}: {source}")]
    Connect {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The request could not be built.
    #[error("request: {0}")]
    Request(#[from] http::Error),
    /// HTTP failed.
    #[error("http: {0}")]
    Hyper(#[from] hyper::Error),
    /// The whole exchange took longer than [`REQUEST_TIMEOUT`].
    #[error("no response within {REQUEST_TIMEOUT:?}")]
    Timeout,
}

/// A response: status, headers and the whole body as text (lossy UTF-8).
#[derive(Debug)]
pub struct Response {
    /// The status.
    pub status: http::StatusCode,
    /// The headers.
    pub headers: http::HeaderMap,
    /// The body.
    pub body: String,
}

/// `GET path` on `addr` over HTTP/1.1, with `host` as the `Host` header.
pub async fn get(addr: SocketAddr, host: &str, path: &str) -> Result<Response, HttpError> {
    tokio::time::timeout(REQUEST_TIMEOUT, get_inner(addr, host, path))
        .await
        .map_err(|_| HttpError::Timeout)?
}

async fn get_inner(addr: SocketAddr, host: &str, path: &str) -> Result<Response, HttpError> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|source| HttpError::Connect { addr, source })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    let conn = tokio::spawn(conn);
    let request = http::Request::get(path)
        .header(http::header::HOST, host)
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    drop(sender);
    conn.abort();
    Ok(Response {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}
