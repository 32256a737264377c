//! Handing the peer's identity to the application, per request.
//!
//! Identity belongs to the connection, handlers see requests. [`PeerIdentityLayer`] wraps the
//! service serving one connection and inserts that connection's [`PeerIdentity`] into each
//! request's extensions, where axum's `Extension<PeerIdentity>` extractor and tonic's
//! `request.extensions().get::<PeerIdentity>()` find it. Plaintext connections insert nothing,
//! so a handler that requires the extension rejects them.

use std::task::{Context, Poll};

use mesh_core::identity::PeerIdentity;
use tower_layer::Layer;
use tower_service::Service;

/// Wraps a per-connection service with [`AddPeerIdentity`].
#[derive(Clone, Debug)]
pub struct PeerIdentityLayer {
    peer: Option<PeerIdentity>,
}

impl PeerIdentityLayer {
    /// For a connection whose peer is `peer` (`None` for plaintext).
    pub fn new(peer: Option<PeerIdentity>) -> Self {
        Self { peer }
    }
}

impl<S> Layer<S> for PeerIdentityLayer {
    type Service = AddPeerIdentity<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AddPeerIdentity {
            inner,
            peer: self.peer.clone(),
        }
    }
}

/// Inserts the connection's [`PeerIdentity`] into each request's extensions.
#[derive(Clone, Debug)]
pub struct AddPeerIdentity<S> {
    inner: S,
    peer: Option<PeerIdentity>,
}

impl<S> AddPeerIdentity<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, peer: Option<PeerIdentity>) -> Self {
        Self { inner, peer }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> Service<http::Request<B>> for AddPeerIdentity<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if let Some(peer) = &self.peer {
            request.extensions_mut().insert(peer.clone());
        }
        self.inner.call(request)
    }
}
