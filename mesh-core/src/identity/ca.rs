//! A small certificate authority for development, tests and `mesh certs` (feature `certs`).
//!
//! It mints what istiod's built-in CA mints: a self-signed root whose subject is
//! `O=<trust domain>`, and workload leaves with an empty subject, exactly one URI SAN
//! (`spiffe://<td>/ns/<ns>/sa/<sa>`), `digitalSignature`/`keyEncipherment` and both
//! `serverAuth` and `clientAuth` (a mesh workload is client and server). ECDSA P-256 keys.
//!
//! [`IssueOptions`] can also mint *bad* certificates on purpose (expired, not yet valid, no SAN,
//! two SANs, a foreign trust domain) so tests exercise every refusal with real handshakes.
//!
//! The on-disk layout is Istio's plug-in CA layout: `ca-cert.pem`, `ca-key.pem`, `root-cert.pem`,
//! and `cert-chain.pem` when the CA is an intermediate. Private keys are written with mode 0600.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::UnixTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::credentials::{Credentials, CredentialsError};
use super::files::IdentityFiles;
use super::spiffe::{SpiffeId, SpiffeIdError};

/// How far before "now" issued certificates start, to tolerate clock skew between workloads.
const BACKDATE: Duration = Duration::from_secs(60);
/// Lifetime of a generated CA.
const CA_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Why a CA operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// Certificate generation failed.
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The identity to issue is not a valid SPIFFE ID.
    #[error("invalid identity: {0}")]
    SpiffeId(#[from] SpiffeIdError),
    /// A saved CA could not be understood.
    #[error("cannot load CA: {0}")]
    Load(String),
}

/// A workload identity minted by a [`CertificateAuthority`], as PEM.
#[derive(Clone, Debug)]
pub struct IssuedIdentity {
    /// The leaf, then the CA's intermediates.
    pub cert_chain_pem: String,
    /// The leaf's private key (PKCS#8).
    pub key_pem: String,
    /// The root bundle.
    pub roots_pem: String,
    /// The identity requested (what the leaf carries unless [`IssueOptions`] overrode its SANs).
    pub spiffe_id: SpiffeId,
}

impl IssuedIdentity {
    /// Writes `cert-chain.pem`, `key.pem` (mode 0600) and `root-cert.pem` into `dir` (created if
    /// missing), each replaced atomically (written aside, then renamed), and returns their paths.
    pub fn write_istio_layout(&self, dir: impl AsRef<Path>) -> Result<IdentityFiles, CaError> {
        let dir = dir.as_ref();
        create_dir(dir)?;
        let files = IdentityFiles::in_dir(dir);
        write_file(&files.cert_chain, &self.cert_chain_pem, false)?;
        write_file(&files.key, &self.key_pem, true)?;
        write_file(&files.roots, &self.roots_pem, false)?;
        Ok(files)
    }

    /// Parses and checks the identity at `now`.
    pub fn credentials(&self, now: UnixTime) -> Result<Credentials, CredentialsError> {
        Credentials::from_pem(
            self.cert_chain_pem.as_bytes(),
            self.key_pem.as_bytes(),
            self.roots_pem.as_bytes(),
            now,
        )
    }
}

/// What to put in a leaf certificate.
#[derive(Clone, Debug)]
pub struct IssueOptions {
    spiffe_id: SpiffeId,
    uri_sans: Option<Vec<String>>,
    dns_names: Vec<String>,
    not_before: SystemTime,
    not_after: SystemTime,
    key_pem: Option<String>,
    digital_signature: bool,
}

impl IssueOptions {
    /// A leaf for `spiffe_id`, valid from a minute ago for `ttl`.
    pub fn new(spiffe_id: SpiffeId, ttl: Duration) -> Self {
        let now = SystemTime::now();
        Self {
            spiffe_id,
            uri_sans: None,
            dns_names: Vec::new(),
            not_before: now.checked_sub(BACKDATE).unwrap_or(now),
            not_after: now + ttl,
            key_pem: None,
            digital_signature: true,
        }
    }

    /// Sets the validity window (use a past `not_after` for an expired leaf, a future
    /// `not_before` for a not-yet-valid one).
    pub fn validity(mut self, not_before: SystemTime, not_after: SystemTime) -> Self {
        self.not_before = not_before;
        self.not_after = not_after;
        self
    }

    /// Whether KeyUsage allows `digitalSignature` (default yes; `false` mints a leaf that may
    /// only encipher keys, which peers must refuse).
    pub fn digital_signature(mut self, allowed: bool) -> Self {
        self.digital_signature = allowed;
        self
    }

    /// Replaces the URI SANs (empty for a leaf without SPIFFE ID, two for an invalid SVID).
    pub fn uri_sans(mut self, sans: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.uri_sans = Some(sans.into_iter().map(Into::into).collect());
        self
    }

    /// Adds DNS SANs beside the SPIFFE ID, so clients outside the mesh (curl, a plain gRPC
    /// client) can verify the server by host name during development. Mesh peers still verify
    /// the URI SAN only: a SPIFFE SVID has exactly one URI SAN and may carry DNS SANs.
    pub fn dns_names(mut self, names: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.dns_names = names.into_iter().map(Into::into).collect();
        self
    }

    /// Uses this PKCS#8 PEM private key (e.g. RSA) instead of a fresh ECDSA P-256 key.
    pub fn key_pem(mut self, pem: impl Into<String>) -> Self {
        self.key_pem = Some(pem.into());
        self
    }
}

/// A certificate authority: a root, or an intermediate under one.
pub struct CertificateAuthority {
    trust_domain: String,
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    /// Certificates a leaf's chain carries after the leaf (empty for a root CA).
    chain_pem: String,
    roots_pem: String,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("trust_domain", &self.trust_domain)
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// File name of the CA certificate.
    pub const CA_CERT: &str = "ca-cert.pem";
    /// File name of the CA private key.
    pub const CA_KEY: &str = "ca-key.pem";
    /// File name of the root bundle.
    pub const ROOT_CERT: &str = "root-cert.pem";
    /// File name of the intermediates leaves must carry (absent for a root CA).
    pub const CERT_CHAIN: &str = "cert-chain.pem";

    /// A new self-signed root CA for `trust_domain`.
    pub fn generate(trust_domain: &str) -> Result<Self, CaError> {
        // Validate the trust domain the way SPIFFE IDs will use it.
        SpiffeId::istio(trust_domain, "x", "x")?;
        let key = KeyPair::generate()?;
        let params = ca_params(trust_domain);
        let cert = params.self_signed(&key)?;
        let cert_pem = cert.pem();
        Ok(Self {
            trust_domain: trust_domain.to_owned(),
            issuer: Issuer::new(params, key),
            roots_pem: cert_pem.clone(),
            cert_pem,
            chain_pem: String::new(),
        })
    }

    /// A new intermediate CA signed by this one, in the same trust domain.
    pub fn intermediate(&self) -> Result<Self, CaError> {
        let key = KeyPair::generate()?;
        let mut params = ca_params(&self.trust_domain);
        params
            .distinguished_name
            .push(DnType::CommonName, "mesh intermediate CA");
        let cert = params.signed_by(&key, &self.issuer)?;
        let cert_pem = cert.pem();
        Ok(Self {
            trust_domain: self.trust_domain.clone(),
            issuer: Issuer::new(params, key),
            chain_pem: format!("{cert_pem}{}", self.chain_pem),
            cert_pem,
            roots_pem: self.roots_pem.clone(),
        })
    }

    /// Loads a CA saved by [`save`](Self::save) (or Istio's plug-in CA files).
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, CaError> {
        let dir = dir.as_ref();
        let cert_pem = read_file(&dir.join(Self::CA_CERT))?;
        let key_pem = read_file(&dir.join(Self::CA_KEY))?;
        let roots_pem = read_file(&dir.join(Self::ROOT_CERT))?;
        let chain_path = dir.join(Self::CERT_CHAIN);
        let chain_pem = if chain_path.exists() {
            read_file(&chain_path)?
        } else {
            String::new()
        };
        let key = KeyPair::from_pem(&key_pem)?;
        let trust_domain = trust_domain_of(&cert_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)?;
        Ok(Self {
            trust_domain,
            issuer,
            cert_pem,
            chain_pem,
            roots_pem,
        })
    }

    /// Saves the CA in `dir` (created if missing); the key gets mode 0600.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<(), CaError> {
        let dir = dir.as_ref();
        create_dir(dir)?;
        write_file(&dir.join(Self::CA_CERT), &self.cert_pem, false)?;
        write_file(
            &dir.join(Self::CA_KEY),
            &self.issuer.key().serialize_pem(),
            true,
        )?;
        write_file(&dir.join(Self::ROOT_CERT), &self.roots_pem, false)?;
        if !self.chain_pem.is_empty() {
            write_file(&dir.join(Self::CERT_CHAIN), &self.chain_pem, false)?;
        }
        Ok(())
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The root bundle, PEM.
    pub fn roots_pem(&self) -> &str {
        &self.roots_pem
    }

    /// This CA's own certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A leaf for `namespace`/`service_account` in this CA's trust domain, valid for `ttl`.
    pub fn issue(
        &self,
        namespace: &str,
        service_account: &str,
        ttl: Duration,
    ) -> Result<IssuedIdentity, CaError> {
        let id = SpiffeId::istio(&self.trust_domain, namespace, service_account)?;
        self.issue_with(&IssueOptions::new(id, ttl))
    }

    /// A leaf as described by `options`.
    pub fn issue_with(&self, options: &IssueOptions) -> Result<IssuedIdentity, CaError> {
        let key = match &options.key_pem {
            Some(pem) => KeyPair::from_pem(pem)?,
            None => KeyPair::generate()?,
        };
        let sans = match &options.uri_sans {
            Some(sans) => sans.clone(),
            None => vec![options.spiffe_id.to_string()],
        };
        let mut params = leaf_params(
            sans,
            options.not_before,
            options.not_after,
            options.digital_signature,
        )?;
        for name in &options.dns_names {
            params
                .subject_alt_names
                .push(SanType::DnsName(name.clone().try_into()?));
        }
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(IssuedIdentity {
            cert_chain_pem: format!("{}{}", cert.pem(), self.chain_pem),
            key_pem: key.serialize_pem(),
            roots_pem: self.roots_pem.clone(),
            spiffe_id: options.spiffe_id.clone(),
        })
    }

    /// Signs a PKCS#10 certificate signing request (PEM) the way istiod's CA does
    /// (`security/pkg/pki/ca/ca.go`, `signWithCertChain`, and `security/pkg/pki/util`'s
    /// `GenCertFromCSR`): the CSR gives only the public key (its signature is checked); the
    /// subject, SANs and usages are the CA's, with `spiffe_id` as the one URI SAN whatever the
    /// CSR asks for. Valid from a minute ago for `ttl`. Returns the leaf, PEM; a chain is the
    /// leaf followed by [`chain_pem`](Self::chain_pem).
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        spiffe_id: &SpiffeId,
        ttl: Duration,
    ) -> Result<String, CaError> {
        let csr = rcgen::CertificateSigningRequestParams::from_pem(csr_pem)?;
        let now = SystemTime::now();
        let params = leaf_params(
            vec![spiffe_id.to_string()],
            now.checked_sub(BACKDATE).unwrap_or(now),
            now + ttl,
            true,
        )?;
        let signed = rcgen::CertificateSigningRequestParams {
            params,
            public_key: csr.public_key,
        }
        .signed_by(&self.issuer)?;
        Ok(signed.pem())
    }

    /// The intermediates a leaf's chain carries after the leaf, PEM (empty for a root CA).
    pub fn chain_pem(&self) -> &str {
        &self.chain_pem
    }
}

/// A workload leaf's parameters, as istiod's CA mints them: empty subject, the URI SANs,
/// `digitalSignature` (unless refused) and `keyEncipherment`, server and client auth.
fn leaf_params(
    uri_sans: Vec<String>,
    not_before: SystemTime,
    not_after: SystemTime,
    digital_signature: bool,
) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.not_before = not_before.into();
    params.not_after = not_after.into();
    params.subject_alt_names = uri_sans
        .into_iter()
        .map(|san| Ok(SanType::URI(san.try_into()?)))
        .collect::<Result<_, rcgen::Error>>()?;
    params.key_usages = if digital_signature {
        vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ]
    } else {
        vec![KeyUsagePurpose::KeyEncipherment]
    };
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

fn ca_params(trust_domain: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, trust_domain);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = SystemTime::now();
    params.not_before = now.checked_sub(BACKDATE).unwrap_or(now).into();
    params.not_after = (now + CA_TTL).into();
    params
}

/// The trust domain a saved CA was made for: its subject's `O`.
fn trust_domain_of(cert_pem: &str) -> Result<String, CaError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|e| CaError::Load(format!("{}: {e}", CertificateAuthority::CA_CERT)))?;
    let (_, cert) = X509Certificate::from_der(&der)
        .map_err(|e| CaError::Load(format!("{}: {e}", CertificateAuthority::CA_CERT)))?;
    let org = cert
        .subject()
        .iter_organization()
        .next()
        .and_then(|o| o.as_str().ok())
        .ok_or_else(|| CaError::Load("CA subject has no O=<trust domain>".into()))?;
    SpiffeId::istio(org, "x", "x")?;
    Ok(org.to_owned())
}

fn create_dir(dir: &Path) -> Result<(), CaError> {
    std::fs::create_dir_all(dir).map_err(|source| CaError::Io {
        path: dir.to_owned(),
        source,
    })
}

fn read_file(path: &Path) -> Result<String, CaError> {
    std::fs::read_to_string(path).map_err(|source| CaError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Writes `contents` to a sibling temp file, then renames it over `path`.
fn write_file(path: &Path, contents: &str, private: bool) -> Result<(), CaError> {
    use std::io::Write;
    let io_err = |source| CaError::Io {
        path: path.to_owned(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    // A leftover temp file would keep its old mode: start from nothing.
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(&tmp).map_err(io_err)?;
    file.write_all(contents.as_bytes()).map_err(io_err)?;
    file.sync_all().map_err(io_err)?;
    std::fs::rename(&tmp, path).map_err(io_err)
}
