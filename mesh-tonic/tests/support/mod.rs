//! Helpers shared by the integration tests of mesh-tonic.

pub mod tls;
