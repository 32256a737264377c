//! The verified identity of the other end of a connection.

use super::spiffe::SpiffeId;
use super::svid::{SvidError, spiffe_id_of};

/// Who is on the other end of a mutual-TLS connection, as proven by its certificate.
///
/// The acceptor inserts it into every request's extensions, so an axum handler takes
/// `Extension<PeerIdentity>` and a tonic handler reads `request.extensions().get::<PeerIdentity>()`.
/// A plaintext connection (PERMISSIVE or DISABLE) has no `PeerIdentity`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PeerIdentity {
    spiffe_id: SpiffeId,
}

impl PeerIdentity {
    /// The identity named by `spiffe_id`.
    pub fn new(spiffe_id: SpiffeId) -> Self {
        Self { spiffe_id }
    }

    /// The identity in a peer's (already verified) leaf certificate, DER encoded.
    pub fn from_certificate(der: &[u8]) -> Result<Self, SvidError> {
        spiffe_id_of(der).map(Self::new)
    }

    /// The full SPIFFE ID.
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.spiffe_id
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &str {
        self.spiffe_id.trust_domain()
    }

    /// The namespace, for Istio-shaped IDs (`/ns/<ns>/sa/<sa>`).
    pub fn namespace(&self) -> Option<&str> {
        self.spiffe_id.namespace()
    }

    /// The service account, for Istio-shaped IDs.
    pub fn service_account(&self) -> Option<&str> {
        self.spiffe_id.service_account()
    }

    /// Istio's principal: the SPIFFE ID without `spiffe://` (`cluster.local/ns/a/sa/b`), as
    /// AuthorizationPolicy `principals` and the `source_principal` metric label write it.
    pub fn principal(&self) -> &str {
        self.spiffe_id.principal()
    }
}

impl std::fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.spiffe_id.fmt(f)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn principal_drops_the_scheme() {
        let peer = PeerIdentity::new(SpiffeId::istio("cluster.local", "a", "b").unwrap());
        assert_eq!(peer.principal(), "cluster.local/ns/a/sa/b");
        assert_eq!(peer.trust_domain(), "cluster.local");
        assert_eq!(peer.namespace(), Some("a"));
        assert_eq!(peer.service_account(), Some("b"));
        let other = PeerIdentity::new(SpiffeId::parse("spiffe://td/job/x").unwrap());
        assert_eq!(other.namespace(), None);
        assert_eq!(other.principal(), "td/job/x");
    }
}
