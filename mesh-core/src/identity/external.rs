//! TLS towards servers outside the mesh: DestinationRule `tls.mode` SIMPLE (verify the server)
//! and MUTUAL (also present a client certificate), as istiod configures Envoy for them
//! (`constructUpstreamTLS`, pilot/pkg/networking/core/cluster_tls.go):
//!
//! - **trust**: the CA of the rule's `credentialName` (its Secret), else the `caCertificates`
//!   file, else the system's CA bundle (istiod's `CaCertificatePath: "system"` default);
//! - **client certificate** (MUTUAL): the `credentialName` Secret's, else the
//!   `clientCertificate` / `privateKey` files;
//! - **server identity**: with `subjectAltNames`, the certificate must carry one of them
//!   (Envoy's `match_subject_alt_names`, exact); without, the certificate must be valid for the
//!   SNI host (Envoy's `auto_sni` + `auto_san_validation`, which istiod sets when the rule gives
//!   neither `sni` nor SANs);
//! - **ALPN**: `h2` for HTTP/2 connections, none otherwise (istiod's `ALPNH2Only`).
//!
//! Key material is never logged: errors name files and parts, not contents.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier, verify_server_cert_signed_by_trust_anchor};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use x509_parser::extensions::GeneralName;

use super::credentials::provider;
use crate::model::{TlsMode, UpstreamTls};

/// Where system CA bundles live on common Linux distributions, BSDs and macOS.
const SYSTEM_BUNDLES: [&str; 5] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
    "/usr/local/share/certs/ca-root-nss.crt",
];

/// Why an external TLS config cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ExternalTlsError {
    /// The mode is not SIMPLE or MUTUAL.
    #[error("TLS mode {0:?} is not for external servers")]
    Mode(TlsMode),
    /// A file could not be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// Which part.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A part holds no usable PEM.
    #[error("{what} of {source_name}: {reason}")]
    Pem {
        /// Which part.
        what: &'static str,
        /// The credential name or file it came from.
        source_name: String,
        /// Why.
        reason: String,
    },
    /// `credentialName` was not resolved, or lacks a part.
    #[error("credential {name:?} has no {what}")]
    Credential {
        /// The credential name.
        name: String,
        /// The missing part.
        what: &'static str,
    },
    /// MUTUAL without a client certificate.
    #[error("mode MUTUAL needs a client certificate and key")]
    NoClientCertificate,
    /// SIMPLE/MUTUAL without a CA and no system bundle found.
    #[error("no CA certificates configured and no system CA bundle found")]
    NoSystemRoots,
    /// rustls refused the material.
    #[error("TLS config: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A PEM source: inline text from a credential, or a file.
enum Pem<'a> {
    Inline { credential: &'a str, text: &'a str },
    File(&'a Path),
}

impl Pem<'_> {
    fn bytes(&self, what: &'static str) -> Result<(Vec<u8>, String), ExternalTlsError> {
        match self {
            Pem::Inline { credential, text } => Ok((
                text.as_bytes().to_vec(),
                format!("credential {credential:?}"),
            )),
            Pem::File(path) => std::fs::read(path)
                .map(|b| (b, path.display().to_string()))
                .map_err(|source| ExternalTlsError::Read {
                    what,
                    path: path.to_path_buf(),
                    source,
                }),
        }
    }
}

fn certificates(
    pem: &Pem<'_>,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, ExternalTlsError> {
    let (bytes, source_name) = pem.bytes(what)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ExternalTlsError::Pem {
            what,
            source_name: source_name.clone(),
            reason: "malformed PEM".into(),
        })?;
    if certs.is_empty() {
        return Err(ExternalTlsError::Pem {
            what,
            source_name,
            reason: "no CERTIFICATE block".into(),
        });
    }
    Ok(certs)
}

fn private_key(pem: &Pem<'_>) -> Result<PrivateKeyDer<'static>, ExternalTlsError> {
    let (bytes, source_name) = pem.bytes("private key")?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| ExternalTlsError::Pem {
        what: "private key",
        source_name,
        reason: "no usable PRIVATE KEY block".into(),
    })
}

fn roots(tls: &UpstreamTls) -> Result<RootCertStore, ExternalTlsError> {
    let certs = if let Some(cred) = &tls.credential {
        let text = cred
            .ca_certificates
            .as_deref()
            .ok_or_else(|| ExternalTlsError::Credential {
                name: cred.name.clone(),
                what: "CA certificate",
            })?;
        certificates(
            &Pem::Inline {
                credential: &cred.name,
                text,
            },
            "CA certificates",
        )?
    } else if let Some(path) = &tls.ca_certificates {
        certificates(&Pem::File(Path::new(path)), "CA certificates")?
    } else {
        let path = SYSTEM_BUNDLES
            .iter()
            .map(Path::new)
            .find(|p| p.is_file())
            .ok_or(ExternalTlsError::NoSystemRoots)?;
        certificates(&Pem::File(path), "system CA bundle")?
    };
    let mut store = RootCertStore::empty();
    // A bundle may hold certificates webpki cannot use; keep the ones it can, as OpenSSL does.
    let (added, _ignored) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(ExternalTlsError::Pem {
            what: "CA certificates",
            source_name: tls
                .credential
                .as_ref()
                .map(|c| format!("credential {:?}", c.name))
                .or_else(|| tls.ca_certificates.clone())
                .unwrap_or_else(|| "system CA bundle".into()),
            reason: "no usable trust anchor".into(),
        });
    }
    Ok(store)
}

fn client_identity(
    tls: &UpstreamTls,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ExternalTlsError> {
    if let Some(cred) = &tls.credential {
        let missing = |what| ExternalTlsError::Credential {
            name: cred.name.clone(),
            what,
        };
        let chain = cred
            .cert_chain
            .as_deref()
            .ok_or_else(|| missing("client certificate"))?;
        let key = cred
            .private_key
            .as_deref()
            .ok_or_else(|| missing("private key"))?;
        let inline = |text| Pem::Inline {
            credential: &cred.name,
            text,
        };
        return Ok((
            certificates(&inline(chain), "client certificate")?,
            private_key(&inline(key))?,
        ));
    }
    match (&tls.client_certificate, &tls.private_key) {
        (Some(cert), Some(key)) => Ok((
            certificates(&Pem::File(Path::new(cert)), "client certificate")?,
            private_key(&Pem::File(Path::new(key)))?,
        )),
        _ => Err(ExternalTlsError::NoClientCertificate),
    }
}

/// The rustls client config for a SIMPLE or MUTUAL cluster; `alpn` is what to offer (`h2` for
/// HTTP/2 pools, nothing for HTTP/1.1, as istiod). Built once per connection pool.
pub fn external_client_config(
    tls: &UpstreamTls,
    alpn: &[&[u8]],
) -> Result<ClientConfig, ExternalTlsError> {
    if !matches!(tls.mode, TlsMode::Simple | TlsMode::Mutual) {
        return Err(ExternalTlsError::Mode(tls.mode));
    }
    let provider = provider();
    let roots = Arc::new(roots(tls)?);
    let verifier: Arc<dyn ServerCertVerifier> = if tls.subject_alt_names.is_empty() {
        WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?
    } else {
        Arc::new(SanVerifier {
            roots,
            algorithms: provider.signature_verification_algorithms,
            names: tls.subject_alt_names.clone(),
        })
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = if tls.mode == TlsMode::Mutual {
        let (chain, key) = client_identity(tls)?;
        builder.with_client_auth_cert(chain, key)?
    } else {
        builder.with_no_client_auth()
    };
    config.resumption = Resumption::disabled();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// Verifies the chain with webpki, then requires one of `names` among the certificate's SANs
/// (DNS, URI, IP or email; exact match, as Envoy's `match_subject_alt_names` built by istiod's
/// `StringToExactMatch`). The SNI is not checked against the certificate.
struct SanVerifier {
    roots: Arc<RootCertStore>,
    algorithms: WebPkiSupportedAlgorithms,
    names: Vec<String>,
}

impl fmt::Debug for SanVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SanVerifier")
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

/// The certificate's subject alternative names as text.
fn sans(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let Ok(Some(ext)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    ext.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(s) | GeneralName::URI(s) | GeneralName::RFC822Name(s) => {
                Some((*s).to_owned())
            }
            GeneralName::IPAddress(b) => match b.len() {
                4 => <[u8; 4]>::try_from(*b)
                    .ok()
                    .map(|a| std::net::IpAddr::from(a).to_string()),
                16 => <[u8; 16]>::try_from(*b)
                    .ok()
                    .map(|a| std::net::IpAddr::from(a).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

impl ServerCertVerifier for SanVerifier {
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
        let presented = sans(end_entity);
        if presented.iter().any(|san| self.names.contains(san)) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "server certificate names {presented:?} match none of subjectAltNames {:?}",
                self.names
            )))
        }
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
