//! The server side of mesh mutual TLS, per PeerAuthentication mode.
//!
//! | mode | TLS client | plaintext client |
//! | --- | --- | --- |
//! | STRICT | mutual TLS, client certificate required | refused: [`TlsError::PlaintextOnStrictPort`] |
//! | PERMISSIVE | mutual TLS, client certificate required | served as plaintext |
//! | DISABLE | not detected: bytes are served as plaintext | served as plaintext |
//!
//! STRICT and PERMISSIVE sniff the first bytes ([`super::sniff`]) so one port can tell the two
//! apart and so a plaintext client on a STRICT port gets a clear error rather than a TLS parse
//! failure. DISABLE reads nothing ahead, like Istio, which puts no TLS inspector on such ports.
//! The whole of detection plus handshake is bounded by the handshake timeout, so a client that
//! connects and sends nothing does not hold a task forever.

use std::time::Duration;

use bytes::BytesMut;
use mesh_core::identity::{IdentitySource, PeerIdentity};
use mesh_core::model::MtlsMode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

use super::alpn::HttpVersion;
use super::connector::DEFAULT_HANDSHAKE_TIMEOUT;
use super::error::TlsError;
use super::rewind::Rewind;
use super::sniff::{MAX_SNIFF, Protocol, classify};
use super::stream::ServerStream;

/// Accepts inbound connections according to an [`MtlsMode`].
///
/// Reads the current identity from its [`IdentitySource`] for each connection, so rotated
/// certificates and roots apply to every connection accepted after the rotation.
#[derive(Clone, Debug)]
pub struct TlsAcceptor {
    source: IdentitySource,
    handshake_timeout: Duration,
}

/// An accepted connection.
#[derive(Debug)]
pub struct Accepted<IO> {
    /// The stream, TLS or plain.
    pub stream: ServerStream<IO>,
    /// The client's verified identity; `None` on plaintext.
    pub peer: Option<PeerIdentity>,
    /// The HTTP version: from ALPN on TLS, from the first bytes on sniffed plaintext; `None`
    /// when unknown (hyper-util's auto server can still tell).
    pub http: Option<HttpVersion>,
}

impl<IO> Accepted<IO> {
    /// Istio's `connection_security_policy` label: `mutual_tls` or `none`.
    pub fn security_policy(&self) -> &'static str {
        if self.stream.is_tls() {
            "mutual_tls"
        } else {
            "none"
        }
    }
}

impl TlsAcceptor {
    /// An acceptor serving the identity from `source`.
    pub fn new(source: impl Into<IdentitySource>) -> Self {
        Self {
            source: source.into(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }

    /// Sets the bound on protocol detection plus handshake (default 10 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Accepts `io` under `mode`.
    pub async fn accept<IO>(&self, io: IO, mode: MtlsMode) -> Result<Accepted<IO>, TlsError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        tokio::time::timeout(self.handshake_timeout, self.accept_inner(io, mode))
            .await
            .map_err(|_| TlsError::Timeout(self.handshake_timeout))?
    }

    async fn accept_inner<IO>(&self, mut io: IO, mode: MtlsMode) -> Result<Accepted<IO>, TlsError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        if mode == MtlsMode::Disable {
            return Ok(plain(BytesMut::new(), io, None));
        }
        let (prefix, protocol) = sniff(&mut io).await?;
        match (protocol, mode) {
            (Protocol::Tls, _) => self.handshake(prefix, io).await,
            (other, MtlsMode::Strict) => Err(TlsError::PlaintextOnStrictPort(other)),
            (Protocol::Http2, _) => Ok(plain(prefix, io, Some(HttpVersion::Http2))),
            (Protocol::Http1, _) => Ok(plain(prefix, io, Some(HttpVersion::Http1))),
            (Protocol::Unknown, _) => Ok(plain(prefix, io, None)),
        }
    }

    async fn handshake<IO>(&self, prefix: BytesMut, io: IO) -> Result<Accepted<IO>, TlsError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.source.current().server_config());
        let stream = acceptor
            .accept(Rewind::new(prefix.freeze(), io))
            .await
            .map_err(TlsError::from_handshake)?;
        let (_, conn) = stream.get_ref();
        let leaf = conn
            .peer_certificates()
            .and_then(|certs| certs.first())
            .ok_or(TlsError::Handshake(rustls::Error::NoCertificatesPresented))?;
        let peer = PeerIdentity::from_certificate(leaf)?;
        let http = conn.alpn_protocol().and_then(HttpVersion::from_alpn);
        Ok(Accepted {
            stream: ServerStream::Tls(Box::new(stream)),
            peer: Some(peer),
            http,
        })
    }
}

fn plain<IO>(prefix: BytesMut, io: IO, http: Option<HttpVersion>) -> Accepted<IO> {
    Accepted {
        stream: ServerStream::Plain(Rewind::new(prefix.freeze(), io)),
        peer: None,
        http,
    }
}

/// Reads just enough of `io` to classify it.
async fn sniff<IO: AsyncRead + Unpin>(io: &mut IO) -> Result<(BytesMut, Protocol), TlsError> {
    let mut buf = BytesMut::with_capacity(MAX_SNIFF);
    loop {
        if let Some(protocol) = classify(&buf) {
            return Ok((buf, protocol));
        }
        let mut chunk = [0u8; MAX_SNIFF];
        let want = MAX_SNIFF - buf.len();
        let n = io.read(&mut chunk[..want]).await.map_err(TlsError::Io)?;
        if n == 0 {
            return match buf.is_empty() {
                true => Err(TlsError::ClosedEarly),
                false => Ok((buf, Protocol::Unknown)),
            };
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
