use std::fmt;
use std::marker::PhantomData;

use mesh_core::Mesh;
use tower_layer::Layer;

use super::service::Authz;

/// Applies [`Authz`]: path normalisation and AuthorizationPolicy enforcement.
///
/// `P` is the request extension that carries a mutual-TLS peer's identity (see
/// [`PeerInfo`](crate::inbound::PeerInfo)); requests without one are treated as plaintext.
pub struct AuthzLayer<P> {
    mesh: Mesh,
    _peer: PhantomData<fn() -> P>,
}

impl<P> AuthzLayer<P> {
    /// Enforces the policies in `mesh.snapshot().inbound.authorization`, re-read on every
    /// request (one atomic load) so a swapped-in snapshot applies to the next request.
    pub fn new(mesh: Mesh) -> Self {
        Self {
            mesh,
            _peer: PhantomData,
        }
    }
}

impl<P> Clone for AuthzLayer<P> {
    fn clone(&self) -> Self {
        Self::new(self.mesh.clone())
    }
}

impl<P> fmt::Debug for AuthzLayer<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthzLayer")
            .field("snapshot_version", &self.mesh.snapshot().version)
            .finish()
    }
}

impl<S, P> Layer<S> for AuthzLayer<P> {
    type Service = Authz<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Authz::new(inner, self.mesh.clone())
    }
}
