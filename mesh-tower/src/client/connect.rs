//! Opening a connection to an endpoint: TCP with a timeout, then TLS when the cluster asks.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use mesh_core::model::EndpointAddress;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

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
    /// The HTTP handshake failed.
    #[error("HTTP handshake failed: {0}")]
    Handshake(String),
}

/// A connected stream.
pub(crate) struct Connected {
    pub(crate) io: Io,
}

/// The byte stream under an upstream connection.
pub(crate) enum Io {
    Plain(TcpStream),
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Plain(s) => s.is_write_vectored(),
        }
    }
}

/// Connects to one endpoint.
#[derive(Clone, Debug)]
pub(crate) struct Connector {
    address: EndpointAddress,
    timeout: Duration,
}

impl Connector {
    pub(crate) fn new(address: EndpointAddress, timeout: Duration) -> Self {
        Self { address, timeout }
    }

    pub(crate) async fn connect(&self) -> Result<Connected, ConnectError> {
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
        Ok(Connected { io: Io::Plain(tcp) })
    }

    /// The socket address, when the endpoint has one.
    #[allow(dead_code)]
    pub(crate) fn socket_addr(&self) -> Option<SocketAddr> {
        match self.address {
            EndpointAddress::Socket(a) => Some(a),
            EndpointAddress::Dns { .. } => None,
        }
    }
}
