//! Helpers shared by the tests of several mesh crates, so each is written once: workload
//! identities minted at test time and tonic channels that present them over real mutual TLS.
//!
//! A dev-dependency only (`publish = false`). Its helpers panic on failure: in a test, a
//! panic is a failed test.

#![allow(clippy::unwrap_used)] // a panic in a test helper is a failed test

pub mod tls;
