//! Handing what the server knows about a connection to each of its requests.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::Request;
use tower_service::Service;

use crate::inbound::{Connection, LocalAddr, RemoteAddr};

/// Inserts [`RemoteAddr`], [`LocalAddr`] and, for mutual TLS, the verified
/// [`PeerIdentity`](mesh_core::identity::PeerIdentity) into each request's extensions, from
/// the connection's facts (shared, so cloning this service per request copies none of them).
#[derive(Clone, Debug)]
pub(super) struct ConnInfo<S> {
    inner: S,
    conn: Arc<Connection>,
}

impl<S> ConnInfo<S> {
    pub(super) fn new(inner: S, conn: Arc<Connection>) -> Self {
        Self { inner, conn }
    }
}

impl<S, B> Service<Request<B>> for ConnInfo<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let ext = request.extensions_mut();
        if let Some(remote) = self.conn.remote {
            ext.insert(RemoteAddr(remote));
        }
        if let Some(local) = self.conn.local {
            ext.insert(LocalAddr(local));
        }
        if let Some(peer) = &self.conn.peer {
            ext.insert(peer.clone());
        }
        self.inner.call(request)
    }
}
