//! An accepted connection: mutual TLS or plaintext, behind one type.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::server::TlsStream;

use super::rewind::Rewind;

/// A server-side connection as [`super::TlsAcceptor`] hands it over.
#[derive(Debug)]
pub enum ServerStream<IO> {
    /// Mutual TLS, peer verified.
    Tls(Box<TlsStream<Rewind<IO>>>),
    /// Plaintext (PERMISSIVE or DISABLE).
    Plain(Rewind<IO>),
}

impl<IO> ServerStream<IO> {
    /// Whether the connection is TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, Self::Tls(_))
    }

    /// The transport.
    pub fn get_ref(&self) -> &IO {
        match self {
            Self::Tls(tls) => tls.get_ref().0.get_ref(),
            Self::Plain(plain) => plain.get_ref(),
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for ServerStream<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
            Self::Plain(plain) => Pin::new(plain).poll_read(cx, buf),
        }
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for ServerStream<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
            Self::Plain(plain) => Pin::new(plain).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_write_vectored(cx, bufs),
            Self::Plain(plain) => Pin::new(plain).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Tls(tls) => tls.is_write_vectored(),
            Self::Plain(plain) => plain.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
            Self::Plain(plain) => Pin::new(plain).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
            Self::Plain(plain) => Pin::new(plain).poll_shutdown(cx),
        }
    }
}
