//! A workload's identity from the control plane's CA, as istio-agent gets it from istiod: a key
//! made here, a CSR sent to `IstioCertificateService/CreateCertificate` over TLS, the signed
//! chain written as the three files Istio mounts (`cert-chain.pem`, `key.pem` mode 0600,
//! `root-cert.pem`, each replaced atomically), and a new one asked for once half the
//! certificate's remaining life is gone (istio-agent's `SECRET_GRACE_PERIOD_RATIO`, 0.5). The files feed
//! mesh's identity the usual way: an [`IdentityWatcher`] on them picks each rotation up.
//!
//! The first request authenticates with a bootstrap token (`authorization: Bearer`); the next
//! ones with the current certificate (mutual TLS), as istio-agent does once it has one. The
//! control plane is trusted through `roots` (the mesh root, given out of band) and must show
//! the control plane's identity (`spiffe://<td>/ns/istio-system/sa/istiod`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hyper_util::rt::TokioIo;
use mesh_core::identity::{
    CaError, Credentials, CredentialsError, IdentityFiles, IdentityWatcher, IssuedIdentity,
    SpiffeId, WatchError, external_client_config,
};
use mesh_core::model::{TlsMode, UpstreamTls};
use rustls_pki_types::{ServerName, UnixTime};
use tokio::sync::{oneshot, watch};
use tonic::transport::Endpoint;

use super::Backoff;
use super::backoff::BackoffState;
use crate::ca_proto::{CREATE_CERTIFICATE, IstioCertificateRequest, IstioCertificateResponse};

/// What the provider needs to know.
#[derive(Clone, Debug)]
pub struct CertificateProviderConfig {
    /// The control plane, `host:port`.
    pub address: String,
    /// PEM roots the control plane's certificate must chain to.
    pub roots: PathBuf,
    /// Where the identity files are written.
    pub output_dir: PathBuf,
    /// The bootstrap token for the first certificate (and whenever the current one is gone).
    pub token: Option<String>,
    /// The identity the CSR names (the CA issues for the authenticated caller regardless).
    pub identity: SpiffeId,
    /// Lifetime to ask for; `None`: the CA's default.
    pub ttl: Option<Duration>,
    /// How long one request may take.
    pub timeout: Duration,
}

impl CertificateProviderConfig {
    /// A config with a 10 s timeout, the CA's default lifetime and no token.
    pub fn new(
        address: impl Into<String>,
        roots: impl Into<PathBuf>,
        output_dir: impl Into<PathBuf>,
        identity: SpiffeId,
    ) -> Self {
        Self {
            address: address.into(),
            roots: roots.into(),
            output_dir: output_dir.into(),
            token: None,
            identity,
            ttl: None,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Why a certificate could not be obtained.
#[derive(Debug, thiserror::Error)]
pub enum CertificateProviderError {
    /// TLS towards the control plane could not be set up (e.g. unreadable roots).
    #[error("control-plane TLS: {0}")]
    Tls(String),
    /// The connection failed.
    #[error("cannot reach the CA at {address}: {source}")]
    Connect {
        /// The control plane.
        address: String,
        /// Why.
        source: tonic::transport::Error,
    },
    /// The CA refused or failed.
    #[error("CA refused: {0}")]
    Refused(#[from] tonic::Status),
    /// The answer is not a usable identity.
    #[error("CA answer unusable: {0}")]
    Answer(String),
    /// A key or CSR could not be made.
    #[error("key or CSR: {0}")]
    Csr(#[from] rcgen::Error),
    /// The files could not be written.
    #[error(transparent)]
    Write(#[from] CaError),
    /// The identity watcher on the files could not start.
    #[error(transparent)]
    Watch(#[from] WatchError),
}

impl From<CredentialsError> for CertificateProviderError {
    fn from(e: CredentialsError) -> Self {
        Self::Answer(e.to_string())
    }
}

/// A running provider: the files exist and are kept fresh until it drops.
#[derive(Debug)]
pub struct CertificateProvider {
    files: IdentityFiles,
    renewals: watch::Receiver<u64>,
    _stop: oneshot::Sender<()>,
}

impl CertificateProvider {
    /// Gets the first certificate (an error when the CA cannot be reached or refuses), writes
    /// the files, then keeps renewing in the background (retrying with backoff on failure).
    pub async fn start(
        config: CertificateProviderConfig,
    ) -> Result<Self, CertificateProviderError> {
        let files = IdentityFiles::in_dir(&config.output_dir);
        let first = fetch(&config, &files).await?;
        let (stop, mut stopped) = oneshot::channel();
        let (renewed, renewals) = watch::channel(0u64);
        let task_files = files.clone();
        tokio::spawn(async move {
            let mut renew_at = first;
            let mut backoff = BackoffState::new(Backoff::default(), rand::random());
            loop {
                let wait = renew_at
                    .duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO);
                tokio::select! {
                    _ = &mut stopped => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                match fetch(&config, &task_files).await {
                    Ok(next) => {
                        backoff.reset();
                        renew_at = next;
                        renewed.send_modify(|n| *n += 1);
                    }
                    Err(error) => {
                        let delay = backoff.next_delay();
                        tracing::warn!(%error, retry_in = ?delay, "certificate renewal failed");
                        renew_at = SystemTime::now() + delay;
                    }
                }
            }
        });
        Ok(Self {
            files,
            renewals,
            _stop: stop,
        })
    }

    /// The files the identity is written to.
    pub fn files(&self) -> &IdentityFiles {
        &self.files
    }

    /// Starts an [`IdentityWatcher`] on the files: what a mesh server or client serves with.
    pub async fn watch(&self) -> Result<IdentityWatcher, CertificateProviderError> {
        Ok(IdentityWatcher::builder(self.files.clone()).start().await?)
    }

    /// How many renewals succeeded so far, changing with each one.
    pub fn renewals(&self) -> watch::Receiver<u64> {
        self.renewals.clone()
    }
}

/// Asks for a certificate, checks and writes it; returns when to renew it.
async fn fetch(
    config: &CertificateProviderConfig,
    files: &IdentityFiles,
) -> Result<SystemTime, CertificateProviderError> {
    // The current certificate, when there is a valid one, authenticates the request.
    let current = Credentials::load(files, UnixTime::now()).ok();
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = vec![rcgen::SanType::URI(config.identity.as_str().try_into()?)];
    let csr = params.serialize_request(&key)?.pem()?;
    let mut request = tonic::Request::new(IstioCertificateRequest {
        csr,
        validity_duration: config
            .ttl
            .map(|t| i64::try_from(t.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0),
    });
    request.set_timeout(config.timeout);
    if current.is_none()
        && let Some(token) = &config.token
    {
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| CertificateProviderError::Tls("token is not valid header text".into()))?;
        request.metadata_mut().insert("authorization", value);
    }
    let tls = tls_config(config, files, current.is_some())?;
    let channel = connect(config, tls).await?;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| CertificateProviderError::Answer(e.to_string()))?;
    let response: tonic::Response<IstioCertificateResponse> = grpc
        .unary(
            request,
            http::uri::PathAndQuery::from_static(CREATE_CERTIFICATE),
            tonic_prost::ProstCodec::default(),
        )
        .await?;
    let mut chain = response.into_inner().cert_chain;
    let Some(root) = chain.pop().filter(|_| !chain.is_empty()) else {
        return Err(CertificateProviderError::Answer(
            "expected the leaf, any intermediates and the root".into(),
        ));
    };
    let issued = IssuedIdentity {
        cert_chain_pem: chain.iter().map(|c| ensure_newline(c)).collect(),
        key_pem: key.serialize_pem(),
        roots_pem: ensure_newline(&root),
        spiffe_id: config.identity.clone(),
    };
    let credentials = issued.credentials(UnixTime::now())?;
    issued.write_istio_layout(&config.output_dir)?;
    // Half of the life left now: the CA backdates `notBefore` for clock skew, which would
    // otherwise count as life already spent.
    let now = SystemTime::now();
    let to = credentials.leaf_not_after().to_system_time();
    tracing::info!(identity = %credentials.spiffe_id(), ?to, "workload certificate obtained");
    Ok(now + to.duration_since(now).unwrap_or_default() / 2)
}

fn ensure_newline(pem: &str) -> String {
    if pem.ends_with('\n') {
        pem.to_owned()
    } else {
        format!("{pem}\n")
    }
}

/// TLS towards the control plane: its certificate must chain to `roots` and carry the control
/// plane's identity; with `mutual`, the current workload certificate is shown.
fn tls_config(
    config: &CertificateProviderConfig,
    files: &IdentityFiles,
    mutual: bool,
) -> Result<rustls::ClientConfig, CertificateProviderError> {
    let istiod = SpiffeId::istio(config.identity.trust_domain(), "istio-system", "istiod")
        .map_err(|e| CertificateProviderError::Tls(e.to_string()))?;
    let path = |p: &std::path::Path| p.display().to_string();
    let upstream = UpstreamTls {
        mode: if mutual {
            TlsMode::Mutual
        } else {
            TlsMode::Simple
        },
        sni: None,
        subject_alt_names: vec![istiod.to_string()],
        client_certificate: mutual.then(|| path(&files.cert_chain)),
        private_key: mutual.then(|| path(&files.key)),
        ca_certificates: Some(path(&config.roots)),
        credential: None,
    };
    external_client_config(&upstream, &[b"h2"])
        .map_err(|e| CertificateProviderError::Tls(e.to_string()))
}

async fn connect(
    config: &CertificateProviderConfig,
    tls: rustls::ClientConfig,
) -> Result<tonic::transport::Channel, CertificateProviderError> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let address = config.address.clone();
    let err = |source| CertificateProviderError::Connect {
        address: config.address.clone(),
        source,
    };
    Endpoint::from_shared(format!("http://{}", config.address))
        .map_err(err)?
        .connect_timeout(config.timeout)
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let (connector, address) = (connector.clone(), address.clone());
            async move {
                let tcp = tokio::net::TcpStream::connect(&address).await?;
                tcp.set_nodelay(true)?;
                let name = ServerName::try_from("istiod.istio-system.svc")
                    .map_err(std::io::Error::other)?;
                let tls = connector.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }))
        .await
        .map_err(err)
}
