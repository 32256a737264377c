//! Certificate verifiers that check SPIFFE identities, not host names.
//!
//! Mesh peers are named by SPIFFE IDs, not DNS names: a server certificate carries
//! `spiffe://cluster.local/ns/default/sa/reviews` and no DNS SAN, so rustls's stock server
//! verifier (which matches the SNI against DNS SANs) cannot be used. Chain building, signatures,
//! validity and key usage are still webpki's ([`verify_server_cert_signed_by_trust_anchor`] and
//! [`WebPkiClientVerifier`]); only the identity checks are ours:
//!
//! - the leaf is an X.509-SVID: exactly one URI SAN, a valid SPIFFE ID;
//! - a *server* is one of the identities the cluster expects (ServiceEntry `subjectAltNames`,
//!   endpoint service accounts), or, when the cluster names none, any identity of the local trust
//!   domain, as Istio does for `ISTIO_MUTUAL`;
//! - a *client* belongs to the local trust domain (Istio matches the `spiffe://<td>/` prefix on
//!   inbound); which principal may do what is authorization's business, later.
//!
//! Failures are [`PeerCertError`]s carried inside `rustls::Error` so both ends of a failed
//! handshake can say exactly why.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::spiffe::SpiffeId;
use super::svid::{SvidError, spiffe_id_of};

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

/// The server identities a client accepts for one cluster.
///
/// Empty means "any identity of the local trust domain" (Istio's `ISTIO_MUTUAL` without
/// `subjectAltNames`); otherwise the server must present one of the listed IDs exactly.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ExpectedIdentities {
    ids: Arc<[SpiffeId]>,
}

impl ExpectedIdentities {
    /// Any identity of the local trust domain.
    pub fn any_in_trust_domain() -> Self {
        Self::default()
    }

    /// Exactly these identities (empty means any in the local trust domain).
    pub fn one_of(ids: impl IntoIterator<Item = SpiffeId>) -> Self {
        let mut ids: Vec<SpiffeId> = ids.into_iter().collect();
        ids.sort();
        ids.dedup();
        Self { ids: ids.into() }
    }

    /// The listed identities.
    pub fn ids(&self) -> &[SpiffeId] {
        &self.ids
    }

    /// Whether `peer` is acceptable for a workload in `local_trust_domain`.
    pub fn check(&self, peer: &SpiffeId, local_trust_domain: &str) -> Result<(), PeerCertError> {
        if self.ids.is_empty() {
            return check_trust_domain(peer, local_trust_domain);
        }
        if self.ids.contains(peer) {
            Ok(())
        } else {
            Err(PeerCertError::IdentityNotExpected {
                id: peer.clone(),
                expected: self.ids.to_vec(),
            })
        }
    }
}

fn check_trust_domain(peer: &SpiffeId, trust_domain: &str) -> Result<(), PeerCertError> {
    if peer.trust_domain() == trust_domain {
        Ok(())
    } else {
        Err(PeerCertError::WrongTrustDomain {
            id: peer.clone(),
            found: peer.trust_domain().to_owned(),
            expected: trust_domain.to_owned(),
        })
    }
}

/// Verifies a server's chain with webpki, then its SPIFFE ID against [`ExpectedIdentities`].
pub(crate) struct SpiffeServerVerifier {
    roots: Arc<RootCertStore>,
    algorithms: WebPkiSupportedAlgorithms,
    trust_domain: String,
    expected: ExpectedIdentities,
}

impl SpiffeServerVerifier {
    pub(crate) fn new(
        roots: Arc<RootCertStore>,
        algorithms: WebPkiSupportedAlgorithms,
        trust_domain: String,
        expected: ExpectedIdentities,
    ) -> Self {
        Self {
            roots,
            algorithms,
            trust_domain,
            expected,
        }
    }
}

impl fmt::Debug for SpiffeServerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpiffeServerVerifier")
            .field("trust_domain", &self.trust_domain)
            .field("expected", &self.expected)
            .finish_non_exhaustive()
    }
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        let id = spiffe_id_of(end_entity).map_err(PeerCertError::from)?;
        self.expected.check(&id, &self.trust_domain)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Requires a client certificate, verifies it with webpki, then checks it is an X.509-SVID of
/// the local trust domain.
pub(crate) struct SpiffeClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    trust_domain: String,
}

impl SpiffeClientVerifier {
    pub(crate) fn new(
        roots: Arc<RootCertStore>,
        provider: Arc<rustls::crypto::CryptoProvider>,
        trust_domain: String,
    ) -> Result<Self, rustls::server::VerifierBuilderError> {
        let inner = WebPkiClientVerifier::builder_with_provider(roots, provider).build()?;
        Ok(Self {
            inner,
            trust_domain,
        })
    }
}

impl fmt::Debug for SpiffeClientVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpiffeClientVerifier")
            .field("trust_domain", &self.trust_domain)
            .finish_non_exhaustive()
    }
}

impl ClientCertVerifier for SpiffeClientVerifier {
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let id = spiffe_id_of(end_entity).map_err(PeerCertError::from)?;
        check_trust_domain(&id, &self.trust_domain)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn id(s: &str) -> SpiffeId {
        SpiffeId::parse(s).unwrap()
    }

    #[test]
    fn empty_expectation_means_local_trust_domain() {
        let any = ExpectedIdentities::any_in_trust_domain();
        assert_eq!(
            any.check(&id("spiffe://cluster.local/ns/a/sa/b"), "cluster.local"),
            Ok(())
        );
        let err = any
            .check(&id("spiffe://other.org/ns/a/sa/b"), "cluster.local")
            .unwrap_err();
        assert!(matches!(err, PeerCertError::WrongTrustDomain { .. }));
        assert_eq!(
            err.to_string(),
            "peer identity spiffe://other.org/ns/a/sa/b is in trust domain \"other.org\"; expected \"cluster.local\""
        );
    }

    #[test]
    fn listed_identities_are_exact() {
        let want = ExpectedIdentities::one_of([
            id("spiffe://cluster.local/ns/a/sa/b"),
            id("spiffe://other.org/ns/x/sa/y"),
        ]);
        assert_eq!(
            want.check(&id("spiffe://other.org/ns/x/sa/y"), "cluster.local"),
            Ok(())
        );
        let err = want
            .check(&id("spiffe://cluster.local/ns/a/sa/c"), "cluster.local")
            .unwrap_err();
        assert!(err.to_string().contains("is not expected"), "{err}");
    }

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
