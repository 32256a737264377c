//! The request body the attempts send: kept for replay only when the route may send the
//! request more than once (a retry policy or a mirror, see `plan.rs`), else passed through
//! once with its bytes counted, with no buffer, lock or copy.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use super::pool::UpstreamBody;
use super::replay::ReplayBody;
use super::service::BoxError;

/// Bytes read from a request body so far, for telemetry.
pub(crate) trait ReadBytes: Send + Sync {
    fn read_bytes(&self) -> u64;
}

impl ReadBytes for AtomicU64 {
    fn read_bytes(&self) -> u64 {
        self.load(Ordering::Relaxed)
    }
}

/// A request body's byte counter, whichever way the body is sent.
pub(crate) type RequestBytes = Arc<dyn ReadBytes>;

/// The body of a request being sent.
pub(crate) enum SendBody<B> {
    /// Kept for retries and mirrors.
    Replay(ReplayBody<B>),
    /// Sent once; taken by the first attempt.
    Once(Option<CountedBody<B>>),
}

impl<B> SendBody<B>
where
    B: Body<Data = Bytes, Error = BoxError> + Send + Unpin + 'static,
{
    /// Wraps the caller's body, keeping it for replay if `replay`, up to `limit` bytes.
    pub(crate) fn new(body: B, replay: bool, limit: usize) -> Self {
        if replay {
            SendBody::Replay(ReplayBody::new(body, limit))
        } else {
            SendBody::Once(Some(CountedBody {
                inner: body,
                read: Arc::default(),
            }))
        }
    }

    /// A counter of the bytes read from the caller's body, for telemetry.
    pub(crate) fn byte_counter(&self) -> Option<RequestBytes> {
        match self {
            SendBody::Replay(body) => Some(body.byte_counter()),
            SendBody::Once(body) => body.as_ref().map(|b| -> RequestBytes { b.read.clone() }),
        }
    }

    /// Whether another attempt could still send the whole body.
    pub(crate) fn is_replayable(&self) -> bool {
        match self {
            SendBody::Replay(body) => body.is_replayable(),
            SendBody::Once(body) => body.is_some(),
        }
    }

    /// The body for the next attempt: a replay of the kept body, or the body itself the first
    /// time. `None` once a body sent only once has been taken.
    pub(crate) fn next(&mut self) -> Option<UpstreamBody> {
        match self {
            SendBody::Replay(body) => Some(UpstreamBody::new(
                body.clone().map_err(|e| -> BoxError { Box::new(e) }),
            )),
            SendBody::Once(body) => body.take().map(UpstreamBody::new),
        }
    }

    /// The kept body, for a mirror to follow.
    pub(crate) fn replay(&self) -> Option<&ReplayBody<B>> {
        match self {
            SendBody::Replay(body) => Some(body),
            SendBody::Once(_) => None,
        }
    }
}

/// The caller's body, counting the bytes read from it.
pub(crate) struct CountedBody<B> {
    inner: B,
    read: Arc<AtomicU64>,
}

impl<B> Body for CountedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.read
                .fetch_add(data.remaining() as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    fn boxed(bytes: &'static [u8]) -> impl Body<Data = Bytes, Error = BoxError> + Send + Unpin {
        Full::new(Bytes::from_static(bytes)).map_err(|e| -> BoxError { match e {} })
    }

    #[tokio::test]
    async fn a_body_sent_once_is_counted_and_not_kept() {
        let mut body = SendBody::new(boxed(b"hello"), false, 64);
        let counter = body.byte_counter().unwrap();
        assert!(
            body.replay().is_none(),
            "no replay buffer without retry or mirror"
        );
        let first = body.next().unwrap();
        assert!(!body.is_replayable());
        assert!(body.next().is_none(), "sent once");
        assert_eq!(first.collect().await.unwrap().to_bytes(), "hello");
        assert_eq!(counter.read_bytes(), 5);
    }

    #[tokio::test]
    async fn a_kept_body_is_sent_again() {
        let mut body = SendBody::new(boxed(b"hello"), true, 64);
        let counter = body.byte_counter().unwrap();
        for _ in 0..2 {
            let sent = body.next().unwrap();
            assert_eq!(sent.collect().await.unwrap().to_bytes(), "hello");
        }
        assert!(body.is_replayable());
        assert_eq!(counter.read_bytes(), 5);
    }
}
