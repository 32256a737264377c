//! The client side of mesh mutual TLS.

use std::time::Duration;

use mesh_core::identity::{ExpectedIdentities, IdentitySource, PeerIdentity};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::client::TlsStream;

use super::alpn::HttpVersion;
use super::error::TlsError;

/// Default bound on a TLS handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens mutual-TLS connections with the workload's identity.
///
/// The identity is read from its [`IdentitySource`] at each connect, so after a rotation every
/// new connection presents the new certificate and trusts the new roots; open connections are
/// left alone.
#[derive(Clone, Debug)]
pub struct TlsConnector {
    source: IdentitySource,
    handshake_timeout: Duration,
}

/// An established client connection.
#[derive(Debug)]
pub struct ClientTls<IO> {
    /// The TLS stream.
    pub stream: TlsStream<IO>,
    /// The server's verified identity.
    pub peer: PeerIdentity,
    /// The HTTP version agreed by ALPN (`None` if the server chose none: speak HTTP/1.1).
    pub http: Option<HttpVersion>,
}

impl TlsConnector {
    /// A connector presenting the identity from `source`.
    pub fn new(source: impl Into<IdentitySource>) -> Self {
        Self {
            source: source.into(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// Sets the handshake timeout (default 10 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Handshakes over `io`, sending `server_name` as SNI, and accepts the server only if its
    /// certificate chains to our roots and its SPIFFE ID is in `expected` (or, when that is
    /// empty, in our trust domain).
    pub async fn connect<IO>(
        &self,
        io: IO,
        server_name: ServerName<'static>,
        expected: &ExpectedIdentities,
    ) -> Result<ClientTls<IO>, TlsError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        self.connect_offering(io, server_name, expected, None).await
    }

    /// Like [`connect`](Self::connect), but offering only `version` by ALPN, for a connection
    /// pool that has already chosen the protocol it will speak (a server would otherwise pick
    /// HTTP/2 for a pool of HTTP/1.1 connections).
    pub async fn connect_http<IO>(
        &self,
        io: IO,
        server_name: ServerName<'static>,
        expected: &ExpectedIdentities,
        version: HttpVersion,
    ) -> Result<ClientTls<IO>, TlsError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        self.connect_offering(io, server_name, expected, Some(version))
            .await
    }

    async fn connect_offering<IO>(
        &self,
        io: IO,
        server_name: ServerName<'static>,
        expected: &ExpectedIdentities,
        only: Option<HttpVersion>,
    ) -> Result<ClientTls<IO>, TlsError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let mut config = self.source.current().client_config(expected)?;
        if let Some(version) = only {
            let mut restricted = (*config).clone();
            restricted.alpn_protocols = vec![version.alpn_id().to_vec()];
            config = std::sync::Arc::new(restricted);
        }
        let connector = tokio_rustls::TlsConnector::from(config);
        let stream =
            tokio::time::timeout(self.handshake_timeout, connector.connect(server_name, io))
                .await
                .map_err(|_| TlsError::Timeout(self.handshake_timeout))?
                .map_err(TlsError::from_handshake)?;
        let (_, conn) = stream.get_ref();
        let leaf = conn
            .peer_certificates()
            .and_then(|certs| certs.first())
            .ok_or(TlsError::Handshake(rustls::Error::NoCertificatesPresented))?;
        let peer = PeerIdentity::from_certificate(leaf)?;
        let http = conn.alpn_protocol().and_then(HttpVersion::from_alpn);
        Ok(ClientTls { stream, peer, http })
    }
}
