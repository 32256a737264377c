//! Test helpers: identities minted at test time, raw rustls peers for certificates mesh itself
//! refuses to load, sockets on 127.0.0.1.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mesh_core::identity::{
    CertificateAuthority, Credentials, IssueOptions, IssuedIdentity, SpiffeId, TlsIdentity,
    system_clock,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::{TcpListener, TcpStream};

pub const HOUR: Duration = Duration::from_secs(3600);
pub const DAY: Duration = Duration::from_secs(24 * 3600);

pub fn ca(trust_domain: &str) -> CertificateAuthority {
    CertificateAuthority::generate(trust_domain).unwrap()
}

pub fn id(s: &str) -> SpiffeId {
    SpiffeId::parse(s).unwrap()
}

/// A good identity for `ns`/`sa` from `ca` (an hour long).
#[allow(unused_imports)] // as `dead_code` above: not every test needs every helper
pub use mesh_testing::tls::identity;

/// Loads `issued` as if it were `at` (so an expired or future leaf loads), but verifies peers
/// with the real clock: the peer that holds a bad certificate without knowing it.
pub fn tls_identity(issued: &IssuedIdentity, at: UnixTime) -> TlsIdentity {
    let creds = issued.credentials(at).unwrap();
    TlsIdentity::with_clock(Arc::new(creds), system_clock()).unwrap()
}

pub fn unix(t: SystemTime) -> UnixTime {
    UnixTime::since_unix_epoch(t.duration_since(SystemTime::UNIX_EPOCH).unwrap())
}

/// An identity whose leaf expired yesterday.
pub fn expired(ca: &CertificateAuthority, ns: &str, sa: &str) -> TlsIdentity {
    let now = SystemTime::now();
    let options = IssueOptions::new(SpiffeId::istio(ca.trust_domain(), ns, sa).unwrap(), DAY)
        .validity(now - 2 * DAY, now - DAY);
    tls_identity(&ca.issue_with(&options).unwrap(), unix(now - DAY - HOUR))
}

/// An identity whose leaf becomes valid tomorrow.
pub fn not_yet_valid(ca: &CertificateAuthority, ns: &str, sa: &str) -> TlsIdentity {
    let now = SystemTime::now();
    let options = IssueOptions::new(SpiffeId::istio(ca.trust_domain(), ns, sa).unwrap(), DAY)
        .validity(now + DAY, now + 2 * DAY);
    tls_identity(&ca.issue_with(&options).unwrap(), unix(now + DAY + HOUR))
}

/// A leaf with these URI SANs: something [`Credentials`] refuses, so it is served raw.
pub fn with_uri_sans(ca: &CertificateAuthority, sans: &[&str]) -> IssuedIdentity {
    let options = IssueOptions::new(id("spiffe://cluster.local/ns/x/sa/x"), HOUR)
        .uri_sans(sans.iter().copied());
    ca.issue_with(&options).unwrap()
}

fn chain_and_key(
    issued: &IssuedIdentity,
) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let chain = CertificateDer::pem_slice_iter(issued.cert_chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap();
    (chain, key)
}

/// mesh's own provider (ring, as no default is installed here), without the deprecated
/// `ring::default_provider` call a newer rustls warns about.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    mesh_core::identity::provider()
}

/// A TLS server presenting `issued` as is, asking for no client certificate.
pub fn raw_server(issued: &IssuedIdentity) -> tokio_rustls::TlsAcceptor {
    let (chain, key) = chain_and_key(issued);
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// A TLS client presenting `issued` as is and trusting any server.
pub fn raw_client(issued: Option<&IssuedIdentity>) -> tokio_rustls::TlsConnector {
    raw_client_with_versions(issued, rustls::DEFAULT_VERSIONS)
}

/// [`raw_client`] limited to `versions`.
pub fn raw_client_with_versions(
    issued: Option<&IssuedIdentity>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> tokio_rustls::TlsConnector {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(TrustAnything));
    let config = match issued {
        Some(issued) => {
            let (chain, key) = chain_and_key(issued);
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

pub fn sni() -> ServerName<'static> {
    ServerName::try_from("reviews.default.svc.cluster.local").unwrap()
}

/// A connected pair of sockets on 127.0.0.1: (client, server).
pub async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
    (client.unwrap(), server.unwrap().0)
}

/// The misconfigured or hostile peer's verifier: accepts every certificate.
#[derive(Debug)]
struct TrustAnything;

impl ServerCertVerifier for TrustAnything {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Credentials for tests that need them directly.
pub fn credentials(issued: &IssuedIdentity) -> Credentials {
    issued.credentials(UnixTime::now()).unwrap()
}

/// Lays `issued` out like a Kubernetes Secret volume (files are symlinks through `..data`) and
/// swaps `..data` atomically, so a watcher never sees half an update.
pub fn k8s_publish(dir: &std::path::Path, generation: u32, issued: &IssuedIdentity) {
    use mesh_core::identity::IdentityFiles;
    let target = format!("..gen_{generation}");
    issued.write_istio_layout(dir.join(&target)).unwrap();
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(&target, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for name in [
        IdentityFiles::CERT_CHAIN,
        IdentityFiles::KEY,
        IdentityFiles::ROOTS,
    ] {
        let link = dir.join(name);
        if link.symlink_metadata().is_err() {
            std::os::unix::fs::symlink(format!("..data/{name}"), link).unwrap();
        }
    }
}

/// An axum app answering `/whoami` with the caller's principal (or `plaintext`) and
/// `/mtls-only` only when the caller has a verified identity.
pub fn app() -> axum::Router {
    use axum::Extension;
    use axum::extract::Request;
    use axum::routing::get;
    use mesh_core::identity::PeerIdentity;
    axum::Router::new()
        .route(
            "/whoami",
            get(|request: Request| async move {
                request
                    .extensions()
                    .get::<PeerIdentity>()
                    .map_or_else(|| "plaintext".to_owned(), |p| p.principal().to_owned())
            }),
        )
        .route(
            "/mtls-only",
            get(|Extension(peer): Extension<PeerIdentity>| async move {
                peer.spiffe_id().to_string()
            }),
        )
}

/// Serves [`app`] on 127.0.0.1 with `acceptor` in `mode`; accept errors are sent to the receiver.
pub async fn spawn_server(
    acceptor: mesh_tower::tls::TlsAcceptor,
    mode: mesh_core::model::MtlsMode,
) -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<mesh_tower::tls::TlsError>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (errors, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let errors = errors.clone();
            tokio::spawn(async move {
                match acceptor.accept(socket, mode).await {
                    Ok(accepted) => {
                        let _ = mesh_tower::tls::serve_connection(accepted, app()).await;
                    }
                    Err(e) => {
                        let _ = errors.send(e);
                    }
                }
            });
        }
    });
    (addr, rx)
}

pub type H2 = hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>>;

/// An HTTP/2 client connection over `io`.
pub async fn h2_client<IO>(io: IO) -> H2
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(io),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    send
}

/// GETs `path`; the status and body.
pub async fn get(client: &mut H2, path: &str) -> Result<(u16, String), hyper::Error> {
    use http_body_util::BodyExt;
    client.ready().await?;
    let request = http::Request::get(format!("http://reviews.default.svc.cluster.local{path}"))
        .body(http_body_util::Empty::new())
        .unwrap();
    let response = client.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
