//! The control-plane port over TLS, as istiod's 15012: the server shows a certificate its own CA
//! issued (`spiffe://<td>/ns/istio-system/sa/istiod`, and istiod's DNS name
//! `istiod.istio-system.svc` for clients that verify a host name, re-issued at half its life), and asks for
//! a client certificate without requiring one. A client that shows one must chain to the mesh
//! roots (rustls's webpki verifier refuses the handshake otherwise); its SPIFFE ID is then the
//! connection's identity. A client that shows none (a workload's first certificate request)
//! must authenticate each call with a bootstrap token ([`super::auth`]).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use mesh_core::identity::{CertificateAuthority, SpiffeId, provider, spiffe_id_of};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::UnixTime;
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::security::SecurityError;

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Lifetime of the server's own certificate.
const SERVER_CERT_TTL: Duration = Duration::from_secs(24 * 3600);

/// What the transport proved about a connection, found in each request's extensions.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    /// The client's address.
    pub remote_addr: Option<std::net::SocketAddr>,
    /// The SPIFFE ID of the client certificate, when the client showed one (verified).
    pub spiffe_id: Option<SpiffeId>,
}

/// One accepted, handshaken connection.
pub(super) struct TlsConn {
    io: TlsStream<TcpStream>,
    info: PeerInfo,
}

impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// The server's TLS config: its rotating certificate, client certificates optional but
/// verified against the CA's roots, ALPN `h2`.
pub(super) fn server_config(ca: &Arc<CertificateAuthority>) -> Result<ServerConfig, SecurityError> {
    let mut roots = RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca.roots_pem().as_bytes()) {
        let cert = cert.map_err(|e| SecurityError::Roots(e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| SecurityError::Roots(e.to_string()))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| SecurityError::Roots(e.to_string()))?;
    let resolver = ServerCert::new(ca.clone())?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| SecurityError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// The control plane's own identity.
pub fn server_identity(trust_domain: &str) -> Result<SpiffeId, mesh_core::identity::SpiffeIdError> {
    SpiffeId::istio(trust_domain, "istio-system", "istiod")
}

/// The server certificate, issued by the CA and issued again once half its life is gone.
struct ServerCert {
    ca: Arc<CertificateAuthority>,
    current: Mutex<(Arc<CertifiedKey>, SystemTime)>,
}

impl std::fmt::Debug for ServerCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCert").finish_non_exhaustive()
    }
}

impl ServerCert {
    fn new(ca: Arc<CertificateAuthority>) -> Result<Self, SecurityError> {
        let first = issue(&ca)?;
        Ok(Self {
            ca,
            current: Mutex::new(first),
        })
    }
}

/// A fresh server certificate and when to replace it.
fn issue(ca: &CertificateAuthority) -> Result<(Arc<CertifiedKey>, SystemTime), SecurityError> {
    let id = server_identity(ca.trust_domain()).map_err(|e| SecurityError::Tls(e.to_string()))?;
    let issued = ca
        .issue_with(
            &mesh_core::identity::IssueOptions::new(id, SERVER_CERT_TTL)
                .dns_names([crate::ISTIOD_DNS_NAME]),
        )
        .map_err(|e| SecurityError::Tls(e.to_string()))?;
    let credentials = issued
        .credentials(UnixTime::now())
        .map_err(|e| SecurityError::Tls(e.to_string()))?;
    Ok((
        credentials.certified_key().clone(),
        SystemTime::now() + SERVER_CERT_TTL / 2,
    ))
}

impl ResolvesServerCert for ServerCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if SystemTime::now() >= current.1 {
            match issue(&self.ca) {
                Ok(next) => *current = next,
                Err(error) => tracing::error!(%error, "control-plane certificate renewal failed"),
            }
        }
        Some(current.0.clone())
    }
}

/// Accepts TCP connections on `listener` and yields them once their TLS handshake is done
/// (each handshake on its own task, bounded in time, at most `max_pending` at once: the next
/// connection is accepted when one finishes); stops when the receiver is dropped.
pub(super) fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    max_pending: usize,
) -> mpsc::Receiver<Result<TlsConn, std::io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    let acceptor = TlsAcceptor::from(config);
    let pending = Arc::new(Semaphore::new(max_pending));
    tokio::spawn(async move {
        loop {
            let permit = tokio::select! {
                _ = tx.closed() => return,
                permit = pending.clone().acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => return, // never closed
                },
            };
            let accepted = tokio::select! {
                _ = tx.closed() => return,
                accepted = listener.accept() => accepted,
            };
            let (tcp, remote) = match accepted {
                Ok(a) => a,
                Err(error) => {
                    tracing::warn!(%error, "control-plane accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await;
                drop(permit);
                let io = match handshake {
                    Ok(Ok(io)) => io,
                    Ok(Err(error)) => {
                        tracing::info!(%remote, %error, "control-plane TLS handshake refused");
                        return;
                    }
                    Err(_) => {
                        tracing::info!(%remote, "control-plane TLS handshake timed out");
                        return;
                    }
                };
                let spiffe_id = io
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(|leaf| spiffe_id_of(leaf).ok());
                let info = PeerInfo {
                    remote_addr: Some(remote),
                    spiffe_id,
                };
                let _ = tx.send(Ok(TlsConn { io, info })).await;
            });
        }
    });
    rx
}
