//! Opening a connection to an endpoint: TCP (or a unix domain socket, Istio's `unix://`
//! endpoints) with a timeout and the cluster's TCP keep-alive, then TLS when the cluster's mode
//! asks for it: ISTIO_MUTUAL with the workload's own SPIFFE identity, the server checked against
//! the identities the destination may have; SIMPLE / MUTUAL towards servers outside the mesh
//! with the rule's CA, client certificate or `credentialName`
//! ([`external_client_config`](mesh_core::identity::external_client_config)).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use std::sync::Arc;

use mesh_core::identity::{ExpectedIdentities, PeerIdentity, external_client_config};
use mesh_core::model::{Cluster, Endpoint, EndpointAddress, TcpKeepalive, TlsMode};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
#[cfg(unix)]
use tokio::net::UnixStream;
use tokio_rustls::client::TlsStream;

use crate::tls::{DEFAULT_HANDSHAKE_TIMEOUT, HttpVersion, TlsConnector, TlsError};

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
    #[cfg(unix)]
    Unix(UnixStream),
    #[cfg(unix)]
    UnixTls(Box<TlsStream<UnixStream>>),
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
            #[cfg(unix)]
            Io::Unix($s) => {
                let $s = Pin::new($s);
                $e
            }
            #[cfg(unix)]
            Io::UnixTls($s) => {
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
            #[cfg(unix)]
            Io::Unix(s) => s.is_write_vectored(),
            #[cfg(unix)]
            Io::UnixTls(s) => s.is_write_vectored(),
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
    /// TLS to a server outside the mesh (SIMPLE / MUTUAL): configs offering HTTP/1.1 (no ALPN)
    /// and HTTP/2 (`h2`), built once per pool.
    External {
        http1: Arc<rustls::ClientConfig>,
        http2: Arc<rustls::ClientConfig>,
        server_name: ServerName<'static>,
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
            TlsMode::Simple | TlsMode::Mutual => {
                let configs = external_client_config(&cluster.tls, &[])
                    .and_then(|h1| Ok((h1, external_client_config(&cluster.tls, &[b"h2"])?)));
                match configs {
                    Ok((http1, http2)) => Security::External {
                        http1: Arc::new(http1),
                        http2: Arc::new(http2),
                        server_name: external_sni(cluster, endpoint),
                    },
                    Err(e) => {
                        // Names files and credential names only, never key material.
                        tracing::warn!(cluster = %cluster.name, error = %e, "upstream TLS unavailable");
                        Security::Unavailable(format!(
                            "cluster {}: TLS mode {:?}: {e}; refusing to send plaintext",
                            cluster.name, cluster.tls.mode
                        ))
                    }
                }
            }
        }
    }
}

/// The SNI for SIMPLE / MUTUAL: the rule's `sni`, else the service host (Envoy's `auto_sni`
/// takes the request's host, which is the service host mesh routed by), else the endpoint's DNS
/// name for a wildcard service.
fn external_sni(cluster: &Cluster, endpoint: &Endpoint) -> ServerName<'static> {
    let host = &cluster.service.host;
    let name = cluster
        .tls
        .sni
        .clone()
        .unwrap_or_else(|| match &endpoint.address {
            EndpointAddress::Dns { host: dns, .. } if host.starts_with('*') => dns.clone(),
            _ => host.clone(),
        });
    ServerName::try_from(name)
        .unwrap_or_else(|_| ServerName::try_from("mesh.invalid").expect("a valid DNS name"))
}

/// Sets SO_KEEPALIVE with the cluster's probe settings on an upstream socket (Envoy's
/// `upstream_connection_options.tcp_keepalive`); unset values stay the OS defaults.
fn apply_keepalive(socket: socket2::SockRef<'_>, ka: &TcpKeepalive) -> std::io::Result<()> {
    socket.set_keepalive(true)?;
    let mut params = socket2::TcpKeepalive::new();
    let mut any = false;
    if let Some(time) = ka.time {
        params = params.with_time(time);
        any = true;
    }
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_os = "macos",
        target_os = "freebsd"
    ))]
    {
        if let Some(interval) = ka.interval {
            params = params.with_interval(interval);
            any = true;
        }
        if let Some(probes) = ka.probes {
            params = params.with_retries(probes);
            any = true;
        }
    }
    if any {
        socket.set_tcp_keepalive(&params)?;
    }
    Ok(())
}

/// TLS over `io` with a rustls config for an external server, bounded by the handshake timeout.
async fn external_handshake<IO>(
    config: &Arc<rustls::ClientConfig>,
    server_name: &ServerName<'static>,
    io: IO,
    address: &str,
) -> Result<TlsStream<IO>, ConnectError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let connector = tokio_rustls::TlsConnector::from(config.clone());
    let handshake = connector.connect(server_name.clone(), io);
    match tokio::time::timeout(DEFAULT_HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(ConnectError::Tls {
            address: address.to_owned(),
            source: TlsError::from_handshake(e),
        }),
        Err(_) => Err(ConnectError::Tls {
            address: address.to_owned(),
            source: TlsError::Timeout(DEFAULT_HANDSHAKE_TIMEOUT),
        }),
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
    keepalive: Option<TcpKeepalive>,
}

impl Connector {
    pub(crate) fn new(address: EndpointAddress, timeout: Duration, security: Security) -> Self {
        Self {
            address,
            timeout,
            security,
            keepalive: None,
        }
    }

    /// Sets TCP keep-alive on every connection (`connectionPool.tcp.tcpKeepalive`).
    pub(crate) fn with_tcp_keepalive(mut self, keepalive: Option<TcpKeepalive>) -> Self {
        self.keepalive = keepalive;
        self
    }

    /// Opens a connection that will speak HTTP/2 (`http2`) or HTTP/1.1.
    pub(crate) async fn connect(&self, http2: bool) -> Result<Connected, ConnectError> {
        if let Security::Unavailable(reason) = &self.security {
            return Err(ConnectError::TlsUnavailable(reason.clone()));
        }
        let address = self.address.to_string();
        #[cfg(unix)]
        if let EndpointAddress::Unix { path } = &self.address {
            let stream = self.connect_unix(path, &address).await?;
            return self.secure_unix(stream, http2, address).await;
        }
        let connect = async {
            match &self.address {
                EndpointAddress::Socket(addr) => TcpStream::connect(*addr).await,
                EndpointAddress::Dns { host, port } => {
                    TcpStream::connect((host.as_str(), *port)).await
                }
                EndpointAddress::Unix { .. } => Err(std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "unix domain sockets are not available on this platform",
                )),
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
        if let Some(ka) = &self.keepalive
            && let Err(source) = apply_keepalive(socket2::SockRef::from(&tcp), ka)
        {
            return Err(ConnectError::Tcp { address, source });
        }
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
            Security::External {
                http1,
                http2: h2,
                server_name,
            } => {
                let config = if http2 { h2 } else { http1 };
                let stream = external_handshake(config, server_name, tcp, &address).await?;
                Ok(Connected {
                    io: Io::Tls(Box::new(stream)),
                    peer: None,
                })
            }
            Security::Plaintext | Security::Unavailable(_) => Ok(Connected {
                io: Io::Plain(tcp),
                peer: None,
            }),
        }
    }

    /// Connects to a unix domain socket (`@name` is an abstract socket, Linux only).
    #[cfg(unix)]
    async fn connect_unix(&self, path: &str, address: &str) -> Result<UnixStream, ConnectError> {
        let connect = async {
            match path.strip_prefix('@') {
                #[cfg(any(target_os = "linux", target_os = "android"))]
                Some(name) => {
                    use std::os::linux::net::SocketAddrExt;
                    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                    let std = std::os::unix::net::UnixStream::connect_addr(&addr)?;
                    std.set_nonblocking(true)?;
                    UnixStream::from_std(std)
                }
                _ => UnixStream::connect(path).await,
            }
        };
        match tokio::time::timeout(self.timeout, connect).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(source)) => Err(ConnectError::Tcp {
                address: address.to_owned(),
                source,
            }),
            Err(_) => Err(ConnectError::Timeout {
                address: address.to_owned(),
                timeout: self.timeout,
            }),
        }
    }

    /// The cluster's TLS over a unix domain socket.
    #[cfg(unix)]
    async fn secure_unix(
        &self,
        stream: UnixStream,
        http2: bool,
        address: String,
    ) -> Result<Connected, ConnectError> {
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
                    .connect_http(stream, server_name.clone(), expected, version)
                    .await
                    .map_err(|source| ConnectError::Tls { address, source })?;
                Ok(Connected {
                    io: Io::UnixTls(Box::new(tls.stream)),
                    peer: Some(tls.peer),
                })
            }
            Security::External {
                http1,
                http2: h2,
                server_name,
            } => {
                let config = if http2 { h2 } else { http1 };
                let tls = external_handshake(config, server_name, stream, &address).await?;
                Ok(Connected {
                    io: Io::UnixTls(Box::new(tls)),
                    peer: None,
                })
            }
            Security::Plaintext | Security::Unavailable(_) => Ok(Connected {
                io: Io::Unix(stream),
                peer: None,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// istiod's `setKeepAliveSettings` (pilot/pkg/networking/core/cluster.go) turns
    /// `tcpKeepalive` into Envoy's `upstream_connection_options.tcp_keepalive`: SO_KEEPALIVE on
    /// every upstream socket, with the given idle time, interval and probe count.
    #[tokio::test]
    async fn tcp_keepalive_is_set_on_upstream_sockets() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = EndpointAddress::Socket(listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                drop(s);
            }
        });
        let connector =
            Connector::new(address.clone(), Duration::from_secs(1), Security::Plaintext)
                .with_tcp_keepalive(Some(TcpKeepalive {
                    probes: Some(4),
                    time: Some(Duration::from_secs(600)),
                    interval: Some(Duration::from_secs(30)),
                }));
        let Connected { io, .. } = connector.connect(false).await.unwrap();
        let Io::Plain(tcp) = io else {
            panic!("a plaintext TCP stream")
        };
        let sock = socket2::SockRef::from(&tcp);
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(600));
        #[cfg(target_os = "linux")]
        {
            assert_eq!(
                sock.tcp_keepalive_interval().unwrap(),
                Duration::from_secs(30)
            );
            assert_eq!(sock.tcp_keepalive_retries().unwrap(), 4);
        }
        // Without tcpKeepalive, Envoy (and mesh) leave SO_KEEPALIVE off.
        let plain = Connector::new(address, Duration::from_secs(1), Security::Plaintext);
        let Connected { io, .. } = plain.connect(false).await.unwrap();
        let Io::Plain(tcp) = io else {
            panic!("a plaintext TCP stream")
        };
        assert!(!socket2::SockRef::from(&tcp).keepalive().unwrap());
    }
}
