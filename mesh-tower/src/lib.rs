//! mesh-tower: mesh for hyper and axum.
//!
//! - [`tls`]: mutual TLS with SPIFFE identities (connector, acceptor per PeerAuthentication mode,
//!   peer identity in request extensions).
#![forbid(unsafe_code)]

pub mod tls;
