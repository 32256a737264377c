//! A connection's transport, stamping its [`ConnState`] whenever bytes move, so the
//! supervisor can tell a stalled request (a client that stopped reading its response or
//! sending its body) from a busy one, and whether a write is waiting on the peer.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::registry::ConnState;

/// `io` with activity stamps.
#[derive(Debug)]
pub(super) struct ActivityIo<IO> {
    io: IO,
    state: Arc<ConnState>,
}

impl<IO> ActivityIo<IO> {
    pub(super) fn new(io: IO, state: Arc<ConnState>) -> Self {
        Self { io, state }
    }
}

impl<IO> ActivityIo<IO> {
    fn wrote(&self, polled: &Poll<io::Result<usize>>) {
        match polled {
            Poll::Ready(Ok(n)) if *n > 0 => {
                self.state.touch_io();
                self.state.set_write_blocked(false);
            }
            Poll::Pending => self.state.set_write_blocked(true),
            Poll::Ready(_) => {}
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for ActivityIo<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.touch_io();
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for ActivityIo<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.wrote(&polled);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.wrote(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
