//! The inbound side: layers between an accepted connection and the application.
//!
//! The server that accepts connections records what it knows about each one as request
//! extensions ([`RemoteAddr`], [`LocalAddr`], and a [`PeerInfo`] value for mutual-TLS peers);
//! the layers here read them.
//!
//! - [`policy`]: the whole per-request inbound policy ([`InboundLayer`]): trace context,
//!   metadata exchange, authorization, telemetry.
//! - [`authz`]: path normalisation and AuthorizationPolicy enforcement ([`AuthzLayer`]).

pub mod authz;
mod conn;
pub mod policy;

pub use authz::AuthzLayer;
pub use conn::{LocalAddr, PeerInfo, RemoteAddr};
pub(crate) use policy::{Connection, own_principal};
pub use policy::{Inbound, InboundBody, InboundLayer, RequestBody};
