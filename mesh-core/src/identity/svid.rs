//! Reading the SPIFFE ID out of an X.509-SVID.
//!
//! The [X.509-SVID spec] (§2) says a leaf carries exactly one URI SAN and that URI is the SPIFFE ID.
//! A certificate with no URI SAN, a non-SPIFFE URI, or two URIs is not an SVID: accepting "the first
//! SPIFFE URI" would let a CA that signs extra SANs hand one workload two identities.
//!
//! [X.509-SVID spec]: https://github.com/spiffe/spiffe/blob/main/standards/X509-SVID.md

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::spiffe::{SpiffeId, SpiffeIdError};

/// Why a certificate does not name exactly one SPIFFE ID.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SvidError {
    /// Not a DER X.509 certificate.
    #[error("certificate is not valid DER X.509: {0}")]
    Malformed(String),
    /// No URI subject alternative name at all.
    #[error("certificate has no SPIFFE URI SAN")]
    NoSpiffeSan,
    /// More than one URI SAN (an X.509-SVID has exactly one).
    #[error("certificate has {0} URI SANs; an X.509-SVID has exactly one")]
    MultipleUriSans(usize),
    /// The one URI SAN is not a valid SPIFFE ID.
    #[error("certificate URI SAN {uri:?} is not a SPIFFE ID: {reason}")]
    InvalidSpiffeId {
        /// The SAN as found.
        uri: String,
        /// Why it is not a SPIFFE ID.
        reason: SpiffeIdError,
    },
}

/// The SPIFFE ID of a DER certificate, which must carry exactly one URI SAN.
pub fn spiffe_id_of(der: &[u8]) -> Result<SpiffeId, SvidError> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| SvidError::Malformed(e.to_string()))?;
    spiffe_id_of_parsed(&cert)
}

/// The SPIFFE ID of a parsed certificate.
pub(crate) fn spiffe_id_of_parsed(cert: &X509Certificate<'_>) -> Result<SpiffeId, SvidError> {
    let san = cert
        .subject_alternative_name()
        .map_err(|e| SvidError::Malformed(e.to_string()))?;
    let uris: Vec<&str> = san
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|name| match name {
            GeneralName::URI(uri) => Some(*uri),
            _ => None,
        })
        .collect();
    match uris.as_slice() {
        [] => Err(SvidError::NoSpiffeSan),
        [uri] if !uri.starts_with("spiffe:") => Err(SvidError::NoSpiffeSan),
        [uri] => SpiffeId::parse(uri).map_err(|reason| SvidError::InvalidSpiffeId {
            uri: (*uri).to_owned(),
            reason,
        }),
        more => Err(SvidError::MultipleUriSans(more.len())),
    }
}
