//! Handing what the server knows about a connection to each of its requests.

use std::net::SocketAddr;
use std::task::{Context, Poll};

use http::Request;
use mesh_core::identity::PeerIdentity;
use tower_service::Service;

use crate::inbound::{LocalAddr, RemoteAddr};

/// Inserts [`RemoteAddr`], [`LocalAddr`] and, for mutual TLS, the verified [`PeerIdentity`]
/// into each request's extensions.
#[derive(Clone, Debug)]
pub(super) struct ConnInfo<S> {
    inner: S,
    remote: SocketAddr,
    local: SocketAddr,
    peer: Option<PeerIdentity>,
}

impl<S> ConnInfo<S> {
    pub(super) fn new(
        inner: S,
        remote: SocketAddr,
        local: SocketAddr,
        peer: Option<PeerIdentity>,
    ) -> Self {
        Self {
            inner,
            remote,
            local,
            peer,
        }
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
        ext.insert(RemoteAddr(self.remote));
        ext.insert(LocalAddr(self.local));
        if let Some(peer) = &self.peer {
            ext.insert(peer.clone());
        }
        self.inner.call(request)
    }
}
