//! What the server knows about a connection, handed to each request as extensions.

use std::net::SocketAddr;

use mesh_core::authz::namespace_of;
use mesh_core::identity::PeerIdentity;

/// The peer's address (the accepted socket's remote address).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RemoteAddr(pub SocketAddr);

/// The local address the connection arrived on (destination IP and port for policies).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LocalAddr(pub SocketAddr);

/// The verified identity of a mutual-TLS peer, as a request extension.
///
/// The TLS acceptor inserts one per connection after verifying the client certificate; a
/// request without one is plaintext, and policies see no principal.
pub trait PeerInfo: Send + Sync + 'static {
    /// The peer's principal in Istio's form, without `spiffe://`
    /// (`cluster.local/ns/default/sa/sleep`).
    fn principal(&self) -> Option<&str>;

    /// The peer's namespace; by default read from the principal.
    fn namespace(&self) -> Option<&str> {
        self.principal().and_then(namespace_of)
    }

    /// The server name the client asked for in its TLS ClientHello.
    fn sni(&self) -> Option<&str>;
}

/// The identity [`crate::tls::TlsAcceptor`] verified. The client's SNI is not recorded by the
/// acceptor, so `connection.sni` conditions see none.
impl PeerInfo for PeerIdentity {
    fn principal(&self) -> Option<&str> {
        Some(PeerIdentity::principal(self))
    }

    fn namespace(&self) -> Option<&str> {
        PeerIdentity::namespace(self)
    }

    fn sni(&self) -> Option<&str> {
        None
    }
}
