use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use arc_swap::ArcSwap;
use mesh_core::model::Snapshot;
use tower_layer::Layer;

use super::service::Authz;

/// Applies [`Authz`]: path normalisation and AuthorizationPolicy enforcement.
///
/// `P` is the request extension that carries a mutual-TLS peer's identity (see
/// [`PeerInfo`](crate::inbound::PeerInfo)); requests without one are treated as plaintext.
pub struct AuthzLayer<P> {
    snapshot: Arc<ArcSwap<Snapshot>>,
    _peer: PhantomData<fn() -> P>,
}

impl<P> AuthzLayer<P> {
    /// Enforces the policies in `snapshot.inbound.authorization`, re-read on every request so a
    /// swapped-in snapshot applies to the next request.
    pub fn new(snapshot: Arc<ArcSwap<Snapshot>>) -> Self {
        Self {
            snapshot,
            _peer: PhantomData,
        }
    }
}

impl<P> Clone for AuthzLayer<P> {
    fn clone(&self) -> Self {
        Self::new(self.snapshot.clone())
    }
}

impl<P> fmt::Debug for AuthzLayer<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthzLayer")
            .field("snapshot_version", &self.snapshot.load().version)
            .finish()
    }
}

impl<S, P> Layer<S> for AuthzLayer<P> {
    type Service = Authz<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Authz::new(inner, self.snapshot.clone())
    }
}
