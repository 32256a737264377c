//! One accepted connection: TLS by mode, then HTTP until it closes or the server drains.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use mesh_core::Mesh;
use mesh_core::model::MtlsMode;
use tokio::net::TcpStream;
use tower::ServiceExt;
use tower_service::Service;

use super::conn_info::ConnInfo;
use super::options::ServeOptions;
use crate::tls::{Accepted, BoxError, HttpVersion, Rewind, ServerStream, TlsAcceptor, TlsError};

/// hyper refuses HTTP/1 read buffers smaller than this.
const MIN_H1_BUF: usize = 8 * 1024;

/// What every connection of a server shares.
pub(super) struct ConnCtx {
    mesh: Mesh,
    /// `None` when the mesh has no workload identity.
    acceptor: Option<TlsAcceptor>,
    http: auto::Builder<TokioExecutor>,
}

impl ConnCtx {
    pub(super) fn new(mesh: Mesh, options: &ServeOptions) -> Self {
        let acceptor = mesh
            .identity()
            .map(|id| TlsAcceptor::new(id.clone()).handshake_timeout(options.handshake_timeout));
        Self {
            mesh,
            acceptor,
            http: http_builder(options),
        }
    }
}

fn http_builder(o: &ServeOptions) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(o.header_read_timeout)
        .max_buf_size((o.max_header_list_size as usize).max(MIN_H1_BUF));
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(o.max_concurrent_streams)
        .max_header_list_size(o.max_header_list_size)
        .max_pending_accept_reset_streams(o.max_pending_accept_reset_streams)
        .max_local_error_reset_streams(o.max_local_error_reset_streams);
    b
}

/// Serves one connection with `app` (the application behind the inbound policy); every outcome
/// is logged here, nothing is returned.
pub(super) async fn connection<A, B>(
    ctx: Arc<ConnCtx>,
    app: A,
    stream: TcpStream,
    remote: SocketAddr,
    watcher: Watcher,
) where
    A: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    A::Future: Send + 'static,
    A::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let local = match stream.local_addr() {
        Ok(local) => local,
        Err(error) => {
            tracing::debug!(target: "mesh::inbound", %remote, %error, "connection lost");
            return;
        }
    };
    // Small writes (headers, gRPC messages) should not wait for Nagle.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(target: "mesh::inbound", %remote, %error, "cannot set TCP_NODELAY");
    }
    let mode = ctx
        .mesh
        .snapshot()
        .inbound
        .peer_authentication
        .mode_for(local.port());
    let accepted = match (&ctx.acceptor, mode) {
        (Some(acceptor), mode) => match acceptor.accept(stream, mode).await {
            Ok(accepted) => accepted,
            Err(TlsError::ClosedEarly) => return,
            Err(error) => {
                tracing::info!(
                    target: "mesh::inbound",
                    %remote,
                    %local,
                    mode = ?mode,
                    %error,
                    "connection refused"
                );
                return;
            }
        },
        (None, MtlsMode::Strict) => {
            tracing::warn!(
                target: "mesh::inbound",
                %remote,
                %local,
                "connection refused: PeerAuthentication is STRICT on this port but no workload \
                 identity is configured (Mesh::builder().identity_files)"
            );
            return;
        }
        (None, _) => Accepted {
            stream: ServerStream::Plain(Rewind::new(Bytes::new(), stream)),
            peer: None,
            http: None,
        },
    };

    let service = ConnInfo::new(app, remote, local, accepted.peer);
    let service = hyper::service::service_fn(move |req| service.clone().oneshot(req));
    let builder = match accepted.http {
        Some(HttpVersion::Http2) => ctx.http.clone().http2_only(),
        Some(HttpVersion::Http1) => ctx.http.clone().http1_only(),
        None => ctx.http.clone(),
    };
    // With upgrades, so WebSocket and CONNECT handlers (axum's `WebSocketUpgrade`) work.
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(accepted.stream), service);
    if let Err(error) = watcher.watch(conn).await {
        tracing::debug!(target: "mesh::inbound", %remote, %error, "connection ended with an error");
    }
}
