//! Why a mesh TLS connection was not established.

use std::io;
use std::time::Duration;

use mesh_core::identity::{PeerCertError, SvidError, TlsConfigError};
use rustls::AlertDescription;

use super::sniff::Protocol;

/// A failed TLS connect or accept, with a reason a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// We refused the peer's certificate.
    #[error("{0}")]
    PeerCertificate(#[from] PeerCertError),
    /// The peer refused the handshake, most often our certificate.
    #[error("the peer refused the TLS handshake: {}", describe_alert(*.0))]
    RejectedByPeer(AlertDescription),
    /// A plaintext client connected to a port whose PeerAuthentication mode is STRICT.
    #[error(
        "plaintext {0} connection refused: the port requires mutual TLS (PeerAuthentication STRICT)"
    )]
    PlaintextOnStrictPort(Protocol),
    /// The peer closed the connection before sending anything.
    #[error("connection closed before the peer sent any data")]
    ClosedEarly,
    /// The handshake (including protocol detection) took too long.
    #[error("TLS handshake did not complete within {0:?}")]
    Timeout(Duration),
    /// The handshake failed for another TLS reason.
    #[error("TLS handshake failed: {0}")]
    Handshake(rustls::Error),
    /// The verified peer certificate carries no usable identity (cannot happen after our
    /// verifiers accepted it; kept as an error rather than a panic).
    #[error("peer identity: {0}")]
    PeerIdentity(#[from] SvidError),
    /// No client config could be built for the expected identities.
    #[error("TLS client config: {0}")]
    Config(#[from] TlsConfigError),
    /// The transport failed.
    #[error("i/o: {0}")]
    Io(io::Error),
}

impl TlsError {
    /// Classifies an error from a tokio-rustls handshake, which wraps rustls errors in `io::Error`.
    pub(crate) fn from_handshake(err: io::Error) -> Self {
        let Some(tls) = err
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        else {
            return Self::Io(err);
        };
        if let Some(cert) = PeerCertError::from_rustls(tls) {
            return Self::PeerCertificate(cert);
        }
        match tls {
            rustls::Error::AlertReceived(alert) => Self::RejectedByPeer(*alert),
            other => Self::Handshake(other.clone()),
        }
    }
}

fn describe_alert(alert: AlertDescription) -> String {
    let why = match alert {
        AlertDescription::BadCertificate => "it rejected our certificate",
        AlertDescription::CertificateExpired => "it says our certificate has expired",
        AlertDescription::UnknownCA => "it does not trust the CA that signed our certificate",
        AlertDescription::DecryptError => {
            "a signature did not verify, e.g. our certificate is from another CA of the same name"
        }
        AlertDescription::CertificateRequired => "it requires a client certificate",
        AlertDescription::HandshakeFailure => "no common TLS parameters",
        AlertDescription::NoApplicationProtocol => "no common ALPN protocol",
        _ => "see the alert",
    };
    format!("{why} ({alert:?} alert)")
}
