//! Opening a connection to an endpoint: TCP with a timeout, then mutual TLS when the cluster's
//! TLS mode asks for it (ISTIO_MUTUAL: the workload's own SPIFFE identity, the server checked
//! against the identities the destination may have).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use mesh_core::identity::{ExpectedIdentities, PeerIdentity};
use mesh_core::model::{Cluster, Endpoint, EndpointAddress, TlsMode};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::tls::{HttpVersion, TlsConnector, TlsError};

/// Why a connection could not be made (a `connect-failure` for retry policies, flag UF).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    /// The TCP connection failed.
    #[error("connect to {address} failed: {source}")]
    Tcp {
        /// Where.
        address: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TCP connection did not complete in time.
    #[error("connect to {address} timed out after {timeout:?}")]
    Timeout {
        /// Where.
        address: String,
        /// The limit.
        timeout: Duration,
    },
    /// The TLS handshake failed or the server's identity was refused.
    #[error("TLS to {address} failed: {source}")]
    Tls {
        /// Where.
        address: String,
        /// Why.
        #[source]
        source: TlsError,
    },
    /// The cluster needs TLS this client cannot do (no workload identity for ISTIO_MUTUAL, or
    /// a mode mesh does not implement); refused rather than sent in plaintext.
    #[error("{0}")]
    TlsUnavailable(String),
    /// The HTTP handshake failed.
    #[error("HTTP handshake failed: {0}")]
    Handshake(String),
}

/// A connected stream and what TLS learned about the peer.
pub(crate) struct Connected {
    pub(crate) io: Io,
    /// The server's verified identity, for mutual TLS.
    pub(crate) peer: Option<PeerIdentity>,
}

/// The byte stream under an upstream connection.
pub(crate) enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Io::Plain($s) => {
                let $s = Pin::new($s);
                $e
            }
            Io::Tls($s) => {
                let $s = Pin::new(&mut **$s);
                $e
            }
        }
    };
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        delegate!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        delegate!(self, s => s.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        delegate!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        delegate!(self, s => s.poll_shutdown(cx))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        delegate!(self, s => s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// How connections to one endpoint are secured.
#[derive(Clone, Debug)]
pub(crate) enum Security {
    /// Plaintext (DISABLE).
    Plaintext,
    /// Mutual TLS with the workload identity.
    Mutual {
        connector: TlsConnector,
        server_name: ServerName<'static>,
        expected: ExpectedIdentities,
    },
    /// TLS is required but cannot be done; every connect fails with this reason.
    Unavailable(String),
}

impl Security {
    /// The security for `endpoint` of `cluster`, with the workload's TLS connector if it has an
    /// identity.
    pub(crate) fn for_endpoint(
        cluster: &Cluster,
        endpoint: &Endpoint,
        tls: Option<&TlsConnector>,
    ) -> Self {
        match cluster.tls.mode {
            TlsMode::Disable => Security::Plaintext,
            TlsMode::IstioMutual => {
                let Some(connector) = tls else {
                    return Security::Unavailable(format!(
                        "cluster {} requires ISTIO_MUTUAL but this workload has no identity",
                        cluster.name
                    ));
                };
                // Who the server may be: the cluster's subjectAltNames, else the endpoint's
                // service account, else anyone in our trust domain (as Istio does).
                let ids: Vec<&str> = if !cluster.tls.subject_alt_names.is_empty() {
                    cluster
                        .tls
                        .subject_alt_names
                        .iter()
                        .map(String::as_str)
                        .collect()
                } else {
                    endpoint.identity.iter().map(String::as_str).collect()
                };
                let expected = match ExpectedIdentities::parse(ids) {
                    Ok(e) => e,
                    Err(e) => {
                        return Security::Unavailable(format!(
                            "cluster {}: bad expected identity: {e}",
                            cluster.name
                        ));
                    }
                };
                Security::Mutual {
                    connector: connector.clone(),
                    server_name: sni(cluster),
                    expected,
                }
            }
            mode @ (TlsMode::Simple | TlsMode::Mutual) => Security::Unavailable(format!(
                "cluster {}: TLS mode {mode:?} towards external servers is not implemented; refusing to send plaintext",
                cluster.name
            )),
        }
    }
}

/// The SNI Istio sends for mesh-internal mTLS (`outbound_.9080_.v1_.reviews.default.svc…`), or
/// the rule's `sni`.
fn sni(cluster: &Cluster) -> ServerName<'static> {
    let name = cluster.tls.sni.clone().unwrap_or_else(|| {
        let s = &cluster.service;
        format!(
            "outbound_.{}_.{}_.{}",
            s.port,
            s.subset.as_deref().unwrap_or(""),
            s.host
        )
    });
    ServerName::try_from(name.clone())
        .or_else(|_| ServerName::try_from(cluster.service.host.clone()))
        .unwrap_or_else(|_| ServerName::try_from("mesh.invalid").expect("a valid DNS name"))
}

/// Connects to one endpoint.
#[derive(Clone, Debug)]
pub(crate) struct Connector {
    address: EndpointAddress,
    timeout: Duration,
    security: Security,
}

impl Connector {
    pub(crate) fn new(address: EndpointAddress, timeout: Duration, security: Security) -> Self {
        Self {
            address,
            timeout,
            security,
        }
    }

    /// Opens a connection that will speak HTTP/2 (`http2`) or HTTP/1.1.
    pub(crate) async fn connect(&self, http2: bool) -> Result<Connected, ConnectError> {
        if let Security::Unavailable(reason) = &self.security {
            return Err(ConnectError::TlsUnavailable(reason.clone()));
        }
        let address = self.address.to_string();
        let connect = async {
            match &self.address {
                EndpointAddress::Socket(addr) => TcpStream::connect(*addr).await,
                EndpointAddress::Dns { host, port } => {
                    TcpStream::connect((host.as_str(), *port)).await
                }
            }
        };
        let tcp = match tokio::time::timeout(self.timeout, connect).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(source)) => return Err(ConnectError::Tcp { address, source }),
            Err(_) => {
                return Err(ConnectError::Timeout {
                    address,
                    timeout: self.timeout,
                });
            }
        };
        // Requests are small and latency matters more than packet count.
        let _ = tcp.set_nodelay(true);
        match &self.security {
            Security::Mutual {
                connector,
                server_name,
                expected,
            } => {
                let version = if http2 {
                    HttpVersion::Http2
                } else {
                    HttpVersion::Http1
                };
                let tls = connector
                    .connect_http(tcp, server_name.clone(), expected, version)
                    .await
                    .map_err(|source| ConnectError::Tls { address, source })?;
                Ok(Connected {
                    io: Io::Tls(Box::new(tls.stream)),
                    peer: Some(tls.peer),
                })
            }
            _ => Ok(Connected {
                io: Io::Plain(tcp),
                peer: None,
            }),
        }
    }
}
