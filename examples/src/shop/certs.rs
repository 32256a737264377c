//! Workload identities from a development CA, in Istio's file layout, made at start.
//!
//! The CA is kept in the certificates directory (`ca-cert.pem`, `ca-key.pem`) so that separate
//! processes started from the same directory trust each other; each workload gets
//! `<dir>/<workload>/{cert-chain.pem,key.pem,root-cert.pem}`, which its `Mesh` watches.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mesh_core::identity::{CaError, CertificateAuthority};

use super::plan::{NAMESPACE, Service};

/// How long the issued workload certificates are valid.
const TTL: Duration = Duration::from_secs(24 * 3600);

/// Loads the CA in `dir`, or makes one there, and issues every workload's identity.
pub fn prepare(dir: &Path) -> Result<(), CaError> {
    let ca = if dir.join(CertificateAuthority::CA_KEY).exists() {
        CertificateAuthority::load(dir)?
    } else {
        let ca = CertificateAuthority::generate("cluster.local")?;
        ca.save(dir)?;
        ca
    };
    for service in Service::ALL {
        ca.issue(NAMESPACE, service.app(), TTL)?
            .write_istio_layout(identity_dir(dir, service))?;
    }
    Ok(())
}

/// Where `service`'s identity files are.
pub fn identity_dir(dir: &Path, service: Service) -> PathBuf {
    dir.join(service.name())
}
