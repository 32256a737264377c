//! Which rustls `CryptoProvider` mesh builds its TLS configs with: the process default when
//! the application installed one (rustls' intended way for an app to choose, e.g. aws-lc-rs for
//! post-quantum key exchange), *ring* otherwise; and mesh never installs one itself.
//! Its own test binary: installing the process default is process-wide.
#![allow(clippy::unwrap_used)] // Test code: a panic is a failed test.

use std::sync::Arc;
use std::time::Duration;

use mesh_core::identity::{CertificateAuthority, TlsIdentity, provider};
use rustls::crypto::CryptoProvider;
use rustls_pki_types::UnixTime;

#[test]
fn mesh_follows_the_process_default_provider_and_never_installs_one() {
    // Nothing installed: mesh uses ring with its full suite list, and leaves the process
    // default to the application.
    let fallback = provider();
    assert!(fallback.cipher_suites.len() > 1);
    assert!(
        CryptoProvider::get_default().is_none(),
        "mesh installed a default"
    );

    // The application installs a provider (here ring with one cipher suite, so it can be told
    // apart): mesh follows it.
    let mut only_chacha = (*fallback).clone();
    only_chacha
        .cipher_suites
        .retain(|s| format!("{:?}", s.suite()).contains("CHACHA20"));
    assert!(!only_chacha.cipher_suites.is_empty());
    let installed_suites: Vec<_> = only_chacha
        .cipher_suites
        .iter()
        .map(|s| s.suite())
        .collect();
    only_chacha.install_default().unwrap();
    let installed = CryptoProvider::get_default().unwrap();
    let followed = provider();
    assert!(Arc::ptr_eq(&followed, installed));
    let suites: Vec<_> = followed.cipher_suites.iter().map(|s| s.suite()).collect();
    assert_eq!(suites, installed_suites);

    // The workload's server and client configs are built with it.
    let ca = CertificateAuthority::generate("cluster.local").unwrap();
    let issued = ca
        .issue("shop", "checkout", Duration::from_secs(3600))
        .unwrap();
    let identity = TlsIdentity::new(issued.credentials(UnixTime::now()).unwrap()).unwrap();
    let server = identity.server_config();
    let suites: Vec<_> = server
        .crypto_provider()
        .cipher_suites
        .iter()
        .map(|s| s.suite())
        .collect();
    assert_eq!(suites, installed_suites);
}
