//! Where a workload's identity lives on disk.

use std::path::{Path, PathBuf};

/// The three PEM files of a workload identity.
///
/// [`IdentityFiles::in_dir`] uses the layout Istio mounts for proxyless gRPC and for
/// `istio-proxy` output certificates (`/etc/certs` or `/var/run/secrets/workload-spiffe-credentials`):
/// `cert-chain.pem`, `key.pem`, `root-cert.pem`. Each path can be set on its own.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdentityFiles {
    /// The workload certificate, then its intermediates (leaf first).
    pub cert_chain: PathBuf,
    /// The workload's private key (PKCS#8, SEC1 or PKCS#1 RSA).
    pub key: PathBuf,
    /// The trust bundle: one or more root certificates.
    pub roots: PathBuf,
}

impl IdentityFiles {
    /// File name of the certificate chain in Istio's layout.
    pub const CERT_CHAIN: &str = "cert-chain.pem";
    /// File name of the private key in Istio's layout.
    pub const KEY: &str = "key.pem";
    /// File name of the root bundle in Istio's layout.
    pub const ROOTS: &str = "root-cert.pem";

    /// Istio's layout in `dir`.
    pub fn in_dir(dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        Self {
            cert_chain: dir.join(Self::CERT_CHAIN),
            key: dir.join(Self::KEY),
            roots: dir.join(Self::ROOTS),
        }
    }

    /// Sets the certificate chain path.
    pub fn cert_chain(mut self, path: impl Into<PathBuf>) -> Self {
        self.cert_chain = path.into();
        self
    }

    /// Sets the private key path.
    pub fn key(mut self, path: impl Into<PathBuf>) -> Self {
        self.key = path.into();
        self
    }

    /// Sets the root bundle path.
    pub fn roots(mut self, path: impl Into<PathBuf>) -> Self {
        self.roots = path.into();
        self
    }

    /// The three paths.
    pub fn paths(&self) -> [&Path; 3] {
        [&self.cert_chain, &self.key, &self.roots]
    }
}
