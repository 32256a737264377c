//! Why a peer's certificate was refused, readable on both ends of a failed handshake.
//!
//! Our verifiers return these inside `rustls::Error` (as `CertificateError::Other`), so the side
//! that refused can name the reason exactly; webpki's own chain errors (unknown issuer, expired,
//! not yet valid) stay rustls's so the right TLS alert reaches the peer, and are mapped back here.

use std::sync::Arc;

use rustls::{CertificateError, OtherError};

use super::spiffe::SpiffeId;
use super::svid::SvidError;

/// Why a peer's certificate was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerCertError {
    /// The chain does not lead to any of our roots.
    #[error("peer certificate is not signed by a trusted CA")]
    UntrustedCa,
    /// The peer's certificate (or one in its chain) has expired.
    #[error("peer certificate has expired")]
    Expired,
    /// The peer's certificate (or one in its chain) is not valid yet.
    #[error("peer certificate is not valid yet")]
    NotYetValid,
    /// No SPIFFE URI SAN.
    #[error("peer certificate has no SPIFFE URI SAN")]
    NoSpiffeSan,
    /// More than one URI SAN.
    #[error("peer certificate has {0} URI SANs; an X.509-SVID has exactly one")]
    MultipleUriSans(usize),
    /// The URI SAN is not a valid SPIFFE ID.
    #[error("peer certificate URI SAN is not a valid SPIFFE ID: {0}")]
    InvalidSpiffeId(String),
    /// The peer's identity is in another trust domain.
    #[error("peer identity {id} is in trust domain {found:?}; expected {expected:?}")]
    WrongTrustDomain {
        /// The peer's identity.
        id: SpiffeId,
        /// Its trust domain.
        found: String,
        /// The trust domain accepted.
        expected: String,
    },
    /// The peer's identity is not one the cluster expects.
    #[error(
        "peer identity {id} is not expected; expected one of [{}]",
        join(expected)
    )]
    IdentityNotExpected {
        /// The peer's identity.
        id: SpiffeId,
        /// The identities that would have been accepted.
        expected: Vec<SpiffeId>,
    },
    /// The leaf's KeyUsage does not allow signing (no `digitalSignature`), so it cannot
    /// authenticate a TLS handshake.
    #[error(
        "peer certificate KeyUsage ({0}) does not include digitalSignature; it cannot sign a TLS handshake"
    )]
    KeyUsage(String),
    /// An RSA key shorter than Istio's CA accepts.
    #[error(
        "{which} has a {bits}-bit RSA key; at least 2048 bits are required (as Istio's CA requires)"
    )]
    WeakKey {
        /// Which certificate: the peer's, or an intermediate CA's.
        which: &'static str,
        /// The modulus length.
        bits: usize,
    },
    /// Any other certificate problem reported by webpki.
    #[error("peer certificate rejected: {0}")]
    Other(String),
}

fn join(ids: &[SpiffeId]) -> String {
    ids.iter()
        .map(SpiffeId::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

impl PeerCertError {
    /// Reads the certificate error out of a rustls error, if it is one.
    pub fn from_rustls(err: &rustls::Error) -> Option<Self> {
        let rustls::Error::InvalidCertificate(cert) = err else {
            return None;
        };
        Some(match cert {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => Self::UntrustedCa,
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => Self::Expired,
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                Self::NotYetValid
            }
            CertificateError::Other(OtherError(inner)) => match inner.downcast_ref::<Self>() {
                Some(mine) => mine.clone(),
                None => Self::Other(inner.to_string()),
            },
            other => Self::Other(format!("{other:?}")),
        })
    }
}

impl From<SvidError> for PeerCertError {
    fn from(e: SvidError) -> Self {
        match e {
            SvidError::NoSpiffeSan => Self::NoSpiffeSan,
            SvidError::MultipleUriSans(n) => Self::MultipleUriSans(n),
            SvidError::InvalidSpiffeId { uri, reason } => {
                Self::InvalidSpiffeId(format!("{uri:?}: {reason}"))
            }
            SvidError::Malformed(m) => Self::Other(m),
        }
    }
}

impl From<PeerCertError> for rustls::Error {
    fn from(e: PeerCertError) -> Self {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rustls_errors_round_trip() {
        let err: rustls::Error = PeerCertError::MultipleUriSans(2).into();
        assert_eq!(
            PeerCertError::from_rustls(&err),
            Some(PeerCertError::MultipleUriSans(2))
        );
        let expired = rustls::Error::InvalidCertificate(CertificateError::Expired);
        assert_eq!(
            PeerCertError::from_rustls(&expired),
            Some(PeerCertError::Expired)
        );
        assert_eq!(
            PeerCertError::from_rustls(&rustls::Error::HandshakeNotComplete),
            None
        );
    }
}
