//! One target per kind of untrusted input mesh reads.
//!
//! | target | input | code under test |
//! | --- | --- | --- |
//! | `yaml` | Istio YAML files | the loader as `mesh check` runs it, balancers, model → xDS → model |
//! | `xds` | xDS resources (protobuf) | the xDS decoders, assembly, balancers, model → xDS |
//! | `pem` | PEM files, certificate chains | credential loading, SVID parsing, both SPIFFE verifiers in a handshake |
//! | `sniff` | a connection's first bytes | PERMISSIVE/STRICT protocol detection and the acceptor |
//! | `h2` | HTTP/2 (and HTTP/1) bytes on a socket | a real `mesh_tower::serve` with its inbound layers |

mod h2;
mod pem;
mod sniff;
mod xds;
mod yaml;

use std::time::Duration;

pub use h2::H2Target;
use mesh_core::identity::{CertificateAuthority, TlsIdentity};
pub use pem::PemTarget;
pub use sniff::SniffTarget;
pub use xds::XdsTarget;
pub use yaml::YamlTarget;

use crate::driver::Target;

/// The targets' names, in the order a full run goes through them.
pub const NAMES: [&str; 5] = ["yaml", "xds", "pem", "sniff", "h2"];

/// Why a target could not be set up (seeds missing, certificates not minted, no socket).
#[derive(Debug, thiserror::Error)]
#[error("setting up the target: {0}")]
pub struct SeedError(pub String);

impl SeedError {
    pub(crate) fn from(e: impl std::fmt::Display) -> Self {
        Self(e.to_string())
    }
}

/// The target called `name`.
pub fn by_name(name: &str) -> Result<Box<dyn Target>, SeedError> {
    Ok(match name {
        "yaml" => Box::new(YamlTarget::new()),
        "xds" => Box::new(XdsTarget::new()?),
        "pem" => Box::new(PemTarget::new()?),
        "sniff" => Box::new(SniffTarget::new()?),
        "h2" => Box::new(H2Target::new()?),
        other => {
            return Err(SeedError(format!(
                "no target {other:?} (targets: {})",
                NAMES.join(", ")
            )));
        }
    })
}

/// A current-thread runtime: server tasks run on the driver's thread, so their panics are
/// recorded as the input's.
fn runtime() -> Result<tokio::runtime::Runtime, SeedError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(SeedError::from)
}

/// A workload identity `default/reviews` in `cluster.local`, valid for a month.
fn local_identity() -> Result<TlsIdentity, SeedError> {
    let ca = CertificateAuthority::generate("cluster.local").map_err(SeedError::from)?;
    let issued = ca
        .issue("default", "reviews", Duration::from_secs(30 * 24 * 3600))
        .map_err(SeedError::from)?;
    let creds = issued
        .credentials(rustls_pki_types::UnixTime::now())
        .map_err(SeedError::from)?;
    TlsIdentity::new(creds).map_err(SeedError::from)
}
