//! Shared helpers for the integration tests.
//!
//! - [`envoy`]: runs a real Envoy, configured the way an Istio sidecar is, for the interop
//!   tests (`tests/envoy_interop.rs`, run by `.ci/interop-envoy.sh`).
//! - [`http`]: a minimal plaintext HTTP/1.1 client for admin endpoints and plain callers.
#![forbid(unsafe_code)]

pub mod envoy;
pub mod http;

/// The README's Rust snippets, compiled as doctests (`cargo test -p mesh-tests --doc`) so they
/// cannot drift from the API. This crate depends on every library crate, as the README does.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
mod readme {}
