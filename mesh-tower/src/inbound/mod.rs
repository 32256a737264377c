//! The inbound side: layers between an accepted connection and the application.
//!
//! The server that accepts connections records what it knows about each one as request
//! extensions ([`RemoteAddr`], [`LocalAddr`], and a [`PeerInfo`] value for mutual-TLS peers);
//! the layers here read them.
//!
//! - [`authz`]: path normalisation and AuthorizationPolicy enforcement ([`AuthzLayer`]).

pub mod authz;
mod conn;

pub use authz::AuthzLayer;
pub use conn::{LocalAddr, PeerInfo, RemoteAddr};
