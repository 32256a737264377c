//! A workload's certificate, key and trust bundle, loaded and checked before use.
//!
//! Everything that can be wrong with an identity is found here, at load time, with a reason an
//! operator can act on: garbage PEM, a key for another certificate, a leaf that is not an
//! X.509-SVID, a leaf outside its validity window, a chain that does not lead to the roots. A
//! rustls config built from unchecked files would instead fail later, per handshake, on the
//! *peer's* side, where the cause is invisible. The clock is a parameter so tests are
//! deterministic and so the watcher can use an injected one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::files::IdentityFiles;
use super::spiffe::SpiffeId;
use super::svid::{SvidError, spiffe_id_of_parsed};
use super::time::Timestamp;

/// Subject and expiry of one root of the trust bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootInfo {
    /// The root's subject distinguished name (`O=cluster.local`).
    pub subject: String,
    /// When the root expires. rustls does not check trust-anchor expiry, so nothing fails when it
    /// passes: only this (and the expiry gauge) tells an operator it is coming.
    pub not_after: Timestamp,
}

/// A checked workload identity: certificate chain, private key and trust bundle.
#[derive(Clone, Debug)]
pub struct Credentials {
    spiffe_id: SpiffeId,
    certified_key: Arc<CertifiedKey>,
    roots: Arc<RootCertStore>,
    root_info: Vec<RootInfo>,
    leaf_not_before: Timestamp,
    leaf_not_after: Timestamp,
}

/// Why an identity was refused.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A PEM file is malformed or holds no item of the expected kind.
    #[error("{what}: {reason}")]
    Pem {
        /// Which input (`certificate chain`, `private key`, `root bundle`).
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The root bundle holds no certificate.
    #[error("root bundle holds no certificate")]
    EmptyRoots,
    /// A root certificate cannot be used as a trust anchor.
    #[error("root certificate #{index} is unusable: {reason}")]
    BadRoot {
        /// Position in the bundle (0-based).
        index: usize,
        /// Why.
        reason: String,
    },
    /// The private key is of a type the crypto provider cannot sign with.
    #[error("private key is unusable: {0}")]
    UnsupportedKey(String),
    /// The private key does not belong to the leaf certificate.
    #[error("private key does not match the leaf certificate's public key")]
    KeyMismatch,
    /// The leaf is not an X.509-SVID.
    #[error("leaf certificate is not an X.509-SVID: {0}")]
    NotAnSvid(#[from] SvidError),
    /// The leaf certificate's `notAfter` has passed.
    #[error("leaf certificate expired at {not_after} (now {now})")]
    Expired {
        /// End of validity.
        not_after: Timestamp,
        /// The time checked against.
        now: Timestamp,
    },
    /// The leaf certificate's `notBefore` is in the future.
    #[error("leaf certificate is not valid before {not_before} (now {now})")]
    NotYetValid {
        /// Start of validity.
        not_before: Timestamp,
        /// The time checked against.
        now: Timestamp,
    },
    /// The chain does not verify to any root of the bundle.
    #[error("certificate chain does not verify to the root bundle: {0}")]
    UntrustedChain(String),
}

impl Credentials {
    /// Reads and checks the files at `now`.
    pub fn load(files: &IdentityFiles, now: UnixTime) -> Result<Self, CredentialsError> {
        Self::from_pem(
            &read(&files.cert_chain)?,
            &read(&files.key)?,
            &read(&files.roots)?,
            now,
        )
    }

    /// Parses and checks PEM bytes at `now`: the chain (leaf first, then intermediates), the key
    /// (PKCS#8, SEC1 or PKCS#1) and the root bundle (one or more certificates).
    pub fn from_pem(
        cert_chain: &[u8],
        key: &[u8],
        roots: &[u8],
        now: UnixTime,
    ) -> Result<Self, CredentialsError> {
        let chain = parse_certs(cert_chain, "certificate chain")?;
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| CredentialsError::Pem {
            what: "private key",
            reason: pem_reason(e),
        })?;
        let root_certs = parse_certs(roots, "root bundle").map_err(|e| match e {
            CredentialsError::Pem { reason, .. } if reason == NO_ITEMS => {
                CredentialsError::EmptyRoots
            }
            other => other,
        })?;
        let provider = provider();

        let signing_key = provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| CredentialsError::UnsupportedKey(e.to_string()))?;
        let certified_key = CertifiedKey::new(chain.clone(), signing_key);
        certified_key
            .keys_match()
            .map_err(|_| CredentialsError::KeyMismatch)?;

        let (_, leaf) =
            X509Certificate::from_der(leaf_der(&chain)?).map_err(|e| CredentialsError::Pem {
                what: "certificate chain",
                reason: format!("leaf certificate is not valid X.509: {e}"),
            })?;
        let spiffe_id = spiffe_id_of_parsed(&leaf)?;
        let leaf_not_before = Timestamp(leaf.validity().not_before.timestamp());
        let leaf_not_after = Timestamp(leaf.validity().not_after.timestamp());
        let now_ts = Timestamp::from(now);
        if now_ts < leaf_not_before {
            return Err(CredentialsError::NotYetValid {
                not_before: leaf_not_before,
                now: now_ts,
            });
        }
        if now_ts > leaf_not_after {
            return Err(CredentialsError::Expired {
                not_after: leaf_not_after,
                now: now_ts,
            });
        }

        let (store, root_info) = root_store(&root_certs)?;
        verify_chain(&chain, &store, now, &provider)?;

        Ok(Self {
            spiffe_id,
            certified_key: Arc::new(certified_key),
            roots: Arc::new(store),
            root_info,
            leaf_not_before,
            leaf_not_after,
        })
    }

    /// The workload's own identity.
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.spiffe_id
    }

    /// Start of the leaf's validity.
    pub fn leaf_not_before(&self) -> Timestamp {
        self.leaf_not_before
    }

    /// End of the leaf's validity.
    pub fn leaf_not_after(&self) -> Timestamp {
        self.leaf_not_after
    }

    /// Subject and expiry of each root, in bundle order.
    pub fn roots(&self) -> &[RootInfo] {
        &self.root_info
    }

    /// The certificate chain, leaf first.
    pub fn cert_chain(&self) -> &[CertificateDer<'static>] {
        &self.certified_key.cert
    }

    /// The chain and signing key, as rustls presents them.
    pub fn certified_key(&self) -> &Arc<CertifiedKey> {
        &self.certified_key
    }

    /// The trust anchors.
    pub fn root_store(&self) -> &Arc<RootCertStore> {
        &self.roots
    }
}

/// The crypto provider mesh builds every TLS config with, chosen as rustls intends a library to
/// choose it: the process-level default the application installed
/// (`CryptoProvider::install_default`, e.g. aws-lc-rs for post-quantum key exchange) when there
/// is one, so mesh's connections use the same cryptography as the rest of the app; otherwise
/// *ring*, the provider mesh is built with. A library never installs the process default itself
/// (that is the application's choice), so this does not.
pub fn provider() -> Arc<CryptoProvider> {
    match CryptoProvider::get_default() {
        Some(installed) => Arc::clone(installed),
        None => Arc::new(ring_provider()),
    }
}

/// mesh's own fallback: *ring* (built without C toolchain requirements beyond a C compiler).
/// rustls 0.23.48 marks `ring::default_provider` deprecated because *ring* has no post-quantum
/// key exchange; the way rustls offers that is the application installing aws-lc-rs as the
/// process default, which [`provider`] then follows. The deprecation is acknowledged here, in
/// one place, rather than printed in every downstream build.
#[allow(deprecated)]
fn ring_provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

const NO_ITEMS: &str = "no PEM CERTIFICATE block found";

fn read(path: &Path) -> Result<Vec<u8>, CredentialsError> {
    std::fs::read(path).map_err(|source| CredentialsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn parse_certs(
    pem: &[u8],
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, CredentialsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CredentialsError::Pem {
            what,
            reason: pem_reason(e),
        })?;
    if certs.is_empty() {
        return Err(CredentialsError::Pem {
            what,
            reason: NO_ITEMS.into(),
        });
    }
    Ok(certs)
}

fn no_leaf() -> CredentialsError {
    CredentialsError::Pem {
        what: "certificate chain",
        reason: NO_ITEMS.into(),
    }
}

fn leaf_der<'a>(chain: &'a [CertificateDer<'static>]) -> Result<&'a [u8], CredentialsError> {
    chain.first().map(|c| c.as_ref()).ok_or_else(no_leaf)
}

fn pem_reason(e: rustls_pki_types::pem::Error) -> String {
    match e {
        rustls_pki_types::pem::Error::NoItemsFound => {
            "no PEM block of the expected kind found".into()
        }
        other => format!("malformed PEM: {other}"),
    }
}

fn root_store(
    roots: &[CertificateDer<'static>],
) -> Result<(RootCertStore, Vec<RootInfo>), CredentialsError> {
    let mut store = RootCertStore::empty();
    let mut info = Vec::with_capacity(roots.len());
    for (index, der) in roots.iter().enumerate() {
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| CredentialsError::BadRoot {
            index,
            reason: e.to_string(),
        })?;
        info.push(RootInfo {
            subject: cert.subject().to_string(),
            not_after: Timestamp(cert.validity().not_after.timestamp()),
        });
        store
            .add(der.clone())
            .map_err(|e| CredentialsError::BadRoot {
                index,
                reason: e.to_string(),
            })?;
    }
    Ok((store, info))
}

/// Verifies the chain for both roles a mesh workload plays: TLS server and TLS client.
fn verify_chain(
    chain: &[CertificateDer<'static>],
    roots: &RootCertStore,
    now: UnixTime,
    provider: &CryptoProvider,
) -> Result<(), CredentialsError> {
    let untrusted = |e: webpki::Error| {
        CredentialsError::UntrustedChain(match e {
            webpki::Error::UnknownIssuer => {
                "no root in the bundle issued it (UnknownIssuer)".into()
            }
            webpki::Error::InvalidSignatureForPublicKey => {
                "a signature does not verify: the issuer named in the chain is not the root in \
                 the bundle, e.g. a different CA with the same name (InvalidSignatureForPublicKey)"
                    .into()
            }
            other => format!("{other:?}"),
        })
    };
    let (leaf, intermediates) = chain.split_first().ok_or_else(no_leaf)?;
    let leaf = webpki::EndEntityCert::try_from(leaf).map_err(untrusted)?;
    let algs = provider.signature_verification_algorithms.all;
    for usage in [
        webpki::KeyUsage::server_auth(),
        webpki::KeyUsage::client_auth(),
    ] {
        leaf.verify_for_usage(algs, &roots.roots, intermediates, now, usage, None, None)
            .map_err(untrusted)?;
    }
    Ok(())
}
