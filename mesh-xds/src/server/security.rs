//! What makes `mesh xds serve` a secured control plane: the CA it signs with, the bootstrap
//! tokens it accepts, and the certificate lifetimes it grants. Without it the server speaks
//! plaintext and trusts every node's claims (tests, interop on a trusted host).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mesh_core::identity::{CaError, CertificateAuthority};

use super::auth::Tokens;

/// istiod's default workload certificate lifetime (`DEFAULT_WORKLOAD_CERT_TTL`, 24 h).
pub const DEFAULT_CERT_TTL: Duration = Duration::from_secs(24 * 3600);
/// istiod's default maximum (`MAX_WORKLOAD_CERT_TTL`, 90 days).
pub const DEFAULT_MAX_CERT_TTL: Duration = Duration::from_secs(90 * 24 * 3600);

/// Why the security config could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// The CA folder could not be loaded.
    #[error("CA folder {}: {source}", dir.display())]
    Ca {
        /// The folder.
        dir: PathBuf,
        /// Why.
        source: CaError,
    },
    /// The token file is unreadable or invalid.
    #[error("token file {}: {message}", path.display())]
    Tokens {
        /// The file.
        path: PathBuf,
        /// Why (with the line).
        message: String,
    },
    /// The CA's roots are unusable for TLS.
    #[error("CA roots: {0}")]
    Roots(String),
    /// The server's TLS config could not be built.
    #[error("control-plane TLS: {0}")]
    Tls(String),
    /// The default certificate lifetime is longer than the maximum.
    #[error("default certificate TTL {default:?} exceeds the maximum {max:?}")]
    Ttl {
        /// The default.
        default: Duration,
        /// The maximum.
        max: Duration,
    },
}

/// The CA, the tokens and the lifetimes of a secured control plane.
#[derive(Clone, Debug)]
pub struct ControlPlaneSecurity {
    pub(super) ca: Arc<CertificateAuthority>,
    pub(super) tokens: Tokens,
    pub(super) default_ttl: Duration,
    pub(super) max_ttl: Duration,
    pub(super) max_pending_handshakes: usize,
}

impl ControlPlaneSecurity {
    /// Signs with `ca`; no bootstrap tokens (clients need a certificate of the mesh already).
    pub fn new(ca: CertificateAuthority) -> Self {
        Self {
            ca: Arc::new(ca),
            tokens: Tokens::default(),
            default_ttl: DEFAULT_CERT_TTL,
            max_ttl: DEFAULT_MAX_CERT_TTL,
            max_pending_handshakes: super::limits::MAX_PENDING_HANDSHAKES,
        }
    }

    /// Loads the CA folder `mesh certs init` makes (Istio's plug-in CA layout).
    pub fn load(ca_dir: impl AsRef<Path>) -> Result<Self, SecurityError> {
        let dir = ca_dir.as_ref();
        let ca = CertificateAuthority::load(dir).map_err(|source| SecurityError::Ca {
            dir: dir.to_owned(),
            source,
        })?;
        Ok(Self::new(ca))
    }

    /// Accepts these bootstrap tokens.
    pub fn tokens(mut self, tokens: Tokens) -> Self {
        self.tokens = tokens;
        self
    }

    /// Sets the lifetime of a certificate whose request names none (and of SDS-served ones),
    /// and the longest a request may ask for.
    pub fn cert_ttl(mut self, default: Duration, max: Duration) -> Result<Self, SecurityError> {
        if default > max || default.is_zero() {
            return Err(SecurityError::Ttl { default, max });
        }
        self.default_ttl = default;
        self.max_ttl = max;
        Ok(self)
    }

    /// Caps the TLS handshakes in progress at once (at least 1; default
    /// [`MAX_PENDING_HANDSHAKES`](super::limits::MAX_PENDING_HANDSHAKES)); connections beyond
    /// wait to be accepted.
    pub fn max_pending_handshakes(mut self, max: usize) -> Self {
        self.max_pending_handshakes = max.max(1);
        self
    }

    /// The CA.
    pub fn ca(&self) -> &CertificateAuthority {
        &self.ca
    }
}
