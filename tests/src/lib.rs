//! Shared helpers for the integration tests.
//!
//! - [`envoy`]: runs a real Envoy, configured the way an Istio sidecar is, for the interop
//!   tests (`tests/envoy_interop.rs`, run by `.ci/interop-envoy.sh`).
//! - [`http`]: a minimal plaintext HTTP/1.1 client for admin endpoints and plain callers.
#![forbid(unsafe_code)]

pub mod envoy;
pub mod http;
