//! Mesh mutual TLS over tokio transports.
//!
//! - [`TlsConnector`]: client side. Presents the workload certificate, verifies the server's
//!   chain and SPIFFE ID against the cluster's expected identities, returns the verified
//!   [`PeerIdentity`](mesh_core::identity::PeerIdentity) and the negotiated HTTP version.
//! - [`TlsAcceptor`]: server side, per PeerAuthentication mode (STRICT, PERMISSIVE with
//!   TLS/plaintext detection on one port, DISABLE), with a handshake timeout.
//! - [`PeerIdentityLayer`] and [`serve_connection`]: hand the peer identity to axum and tonic
//!   handlers through request extensions.
//!
//! Both ends read the identity from an [`IdentitySource`](mesh_core::identity::IdentitySource)
//! at each new connection, so certificate and root rotations apply without a restart. The
//! rustls configs (ring provider, no session resumption, SPIFFE verifiers) are built in
//! [`mesh_core::identity`].

mod acceptor;
mod alpn;
mod connector;
mod error;
mod extension;
mod rewind;
mod serve;
mod sniff;
mod stream;

pub use acceptor::{Accepted, TlsAcceptor};
pub use alpn::HttpVersion;
pub use connector::{ClientTls, DEFAULT_HANDSHAKE_TIMEOUT, TlsConnector};
pub use error::TlsError;
pub use extension::{AddPeerIdentity, PeerIdentityLayer};
pub use rewind::Rewind;
pub use serve::{BoxError, serve_connection};
pub use sniff::Protocol;
pub use stream::ServerStream;
