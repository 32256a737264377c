//! The request body the attempts send.
//!
//! A body that is whole at once (a unary call's: known size within the replay limit, its one
//! data frame ready when first polled) is read before the first attempt and sent as bytes,
//! again by a retry or a mirror from the same bytes: no buffer, lock, box or counter. Other
//! bodies are kept for replay only when the route may send the request more than once (a retry
//! policy or a mirror, see `plan.rs`), else passed through once with their bytes counted.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};

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

/// A request body's size for telemetry, whichever way the body is sent.
pub(crate) enum RequestBytes {
    /// Read whole before sending.
    Known(u64),
    /// Counted as the body streams.
    Counted(Arc<dyn ReadBytes>),
}

impl RequestBytes {
    pub(crate) fn read_bytes(&self) -> u64 {
        match self {
            RequestBytes::Known(n) => *n,
            RequestBytes::Counted(c) => c.read_bytes(),
        }
    }
}

/// The body of a request being sent.
pub(crate) enum SendBody<B: Body> {
    /// Read whole: each attempt sends these bytes.
    Whole(Bytes),
    /// Kept for retries and mirrors.
    Replay(ReplayBody<Prefixed<B>>),
    /// Sent once; taken by the first attempt.
    Once(Option<CountedBody<Prefixed<B>>>),
}

impl<B> SendBody<B>
where
    B: Body<Data = Bytes, Error = BoxError> + Send + Unpin + 'static,
{
    /// Wraps the caller's body: read whole now if it is ready whole within `limit` bytes, else
    /// kept for replay if `replay` (up to `limit` bytes), else sent once.
    pub(crate) fn new(body: B, replay: bool, limit: usize) -> Self {
        let body = match read_whole(body, limit) {
            ReadAhead::Whole(bytes) => return SendBody::Whole(bytes),
            ReadAhead::Rest(rest) => rest,
        };
        if replay {
            SendBody::Replay(ReplayBody::new(body, limit))
        } else {
            SendBody::Once(Some(CountedBody {
                inner: body,
                read: Arc::default(),
            }))
        }
    }

    /// The size of the caller's body, or a counter of the bytes read from it, for telemetry.
    pub(crate) fn byte_counter(&self) -> Option<RequestBytes> {
        match self {
            SendBody::Whole(bytes) => Some(RequestBytes::Known(bytes.len() as u64)),
            SendBody::Replay(body) => Some(RequestBytes::Counted(body.byte_counter())),
            SendBody::Once(body) => body.as_ref().map(|b| RequestBytes::Counted(b.read.clone())),
        }
    }

    /// Whether another attempt could still send the whole body.
    pub(crate) fn is_replayable(&self) -> bool {
        match self {
            SendBody::Whole(_) => true,
            SendBody::Replay(body) => body.is_replayable(),
            SendBody::Once(body) => body.is_some(),
        }
    }

    /// The body for the next attempt: the bytes (moved into the `last` attempt, else shared),
    /// a replay of the kept body, or the body itself the first time. `None` once a body sent
    /// only once has been taken.
    pub(crate) fn next(&mut self, last: bool) -> Option<UpstreamBody> {
        match self {
            SendBody::Whole(bytes) => {
                let bytes = if last {
                    std::mem::take(bytes)
                } else {
                    bytes.clone()
                };
                Some(UpstreamBody::Whole((!bytes.is_empty()).then_some(bytes)))
            }
            SendBody::Replay(body) => Some(UpstreamBody::boxed(
                body.clone().map_err(|e| -> BoxError { Box::new(e) }),
            )),
            SendBody::Once(body) => body.take().map(UpstreamBody::boxed),
        }
    }

    /// Whether a mirror can follow this body ([`SendBody::mirror_body`]).
    pub(crate) fn is_kept(&self) -> bool {
        !matches!(self, SendBody::Once(_))
    }

    /// The body of a mirrored copy: the same bytes, or a follower of the kept body (never
    /// reading ahead of the real request). `None` for a body sent once.
    pub(crate) fn mirror_body(&self) -> Option<UpstreamBody> {
        match self {
            SendBody::Whole(bytes) => Some(UpstreamBody::Whole(
                (!bytes.is_empty()).then(|| bytes.clone()),
            )),
            SendBody::Replay(body) => Some(UpstreamBody::boxed(
                body.follower().map_err(|e| -> BoxError { Box::new(e) }),
            )),
            SendBody::Once(_) => None,
        }
    }
}

/// The whole of `body` when it is ready whole now: ended, or one data frame within `limit`
/// followed by its end (seen from `is_end_stream`, or from a second poll: a tonic unary body
/// says so only then). Else the body, with the frames those polls took still to come first. A
/// body whose size is known to pass `limit` is not polled.
///
/// The polls use a no-op waker: a body not ready registers it, and registers the real one when
/// the attempt polls it again, as every poll does.
fn read_whole<B>(mut body: B, limit: usize) -> ReadAhead<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    if body.is_end_stream() {
        return ReadAhead::Whole(Bytes::new());
    }
    if body.size_hint().lower() > limit as u64 {
        return ReadAhead::Rest(Prefixed::new(body, []));
    }
    let mut cx = Context::from_waker(Waker::noop());
    let data = match Pin::new(&mut body).poll_frame(&mut cx) {
        Poll::Ready(None) => return ReadAhead::Whole(Bytes::new()),
        Poll::Pending => return ReadAhead::Rest(Prefixed::new(body, [])),
        Poll::Ready(Some(Err(e))) => return ReadAhead::Rest(Prefixed::new(body, [Err(e)])),
        Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
            Ok(data) if data.len() <= limit => data,
            Ok(data) => return ReadAhead::Rest(Prefixed::new(body, [Ok(Frame::data(data))])),
            Err(frame) => return ReadAhead::Rest(Prefixed::new(body, [Ok(frame)])),
        },
    };
    if body.is_end_stream() {
        return ReadAhead::Whole(data);
    }
    match Pin::new(&mut body).poll_frame(&mut cx) {
        Poll::Ready(None) => ReadAhead::Whole(data),
        Poll::Pending => ReadAhead::Rest(Prefixed::new(body, [Ok(Frame::data(data))])),
        Poll::Ready(Some(second)) => {
            ReadAhead::Rest(Prefixed::new(body, [Ok(Frame::data(data)), second]))
        }
    }
}

/// What [`read_whole`] found.
enum ReadAhead<B: Body> {
    /// The whole body.
    Whole(Bytes),
    /// A body that goes on, with what was read of it.
    Rest(Prefixed<B>),
}

/// The caller's body, with the frames [`read_whole`] took from it first.
pub(crate) struct Prefixed<B: Body> {
    /// Taken from the front.
    read: [Option<Result<Frame<Bytes>, B::Error>>; 2],
    inner: B,
}

impl<B: Body> Prefixed<B> {
    fn new<const N: usize>(inner: B, read: [Result<Frame<Bytes>, B::Error>; N]) -> Self {
        let mut frames = [None, None];
        for (slot, frame) in frames.iter_mut().zip(read) {
            *slot = Some(frame);
        }
        Self {
            read: frames,
            inner,
        }
    }
}

impl<B> Body for Prefixed<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        if let Some(frame) = self.read.iter_mut().find_map(Option::take) {
            return Poll::Ready(Some(frame));
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.read.iter().all(Option::is_none) && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.inner.size_hint();
        let read: u64 = self
            .read
            .iter()
            .flatten()
            .filter_map(|f| f.as_ref().ok()?.data_ref().map(|d| d.len() as u64))
            .sum();
        // The upper bound first: a lower bound above it would not be accepted.
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper + read);
        }
        hint.set_lower(hint.lower() + read);
        hint
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
    use http_body_util::{Full, StreamBody};

    fn boxed(bytes: &'static [u8]) -> impl Body<Data = Bytes, Error = BoxError> + Send + Unpin {
        Full::new(Bytes::from_static(bytes)).map_err(|e| -> BoxError { match e {} })
    }

    /// A body of unknown size in two frames, so it is streamed, not read whole.
    fn streamed(
        bytes: &'static [u8],
    ) -> impl Body<Data = Bytes, Error = BoxError> + Send + Unpin + 'static {
        let (a, b) = bytes.split_at(bytes.len() / 2);
        let frames = vec![
            Ok::<_, BoxError>(Frame::data(Bytes::from_static(a))),
            Ok(Frame::data(Bytes::from_static(b))),
        ];
        StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn a_body_sent_once_is_counted_and_not_kept() {
        let mut body = SendBody::new(streamed(b"hello"), false, 64);
        let counter = body.byte_counter().unwrap();
        assert!(
            !body.is_kept() && body.mirror_body().is_none(),
            "no replay buffer without retry or mirror"
        );
        let first = body.next(false).unwrap();
        assert!(!body.is_replayable());
        assert!(body.next(false).is_none(), "sent once");
        assert_eq!(first.collect().await.unwrap().to_bytes(), "hello");
        assert_eq!(counter.read_bytes(), 5);
    }

    #[tokio::test]
    async fn a_kept_body_is_sent_again() {
        let mut body = SendBody::new(streamed(b"hello"), true, 64);
        let counter = body.byte_counter().unwrap();
        for _ in 0..2 {
            let sent = body.next(false).unwrap();
            assert_eq!(sent.collect().await.unwrap().to_bytes(), "hello");
        }
        assert!(body.is_replayable());
        assert_eq!(counter.read_bytes(), 5);
    }

    /// A body ready whole is read before the first attempt: every attempt and mirror sends the
    /// same bytes, with their exact size and end of stream known up front.
    #[tokio::test]
    async fn a_whole_body_is_read_once_and_resent() {
        for replay in [false, true] {
            let mut body = SendBody::new(boxed(b"hello"), replay, 64);
            assert!(matches!(body, SendBody::Whole(_)));
            assert_eq!(body.byte_counter().unwrap().read_bytes(), 5);
            let mirror = body.mirror_body().unwrap();
            let first = body.next(false).unwrap();
            assert_eq!(first.size_hint().exact(), Some(5));
            assert!(!first.is_end_stream());
            assert_eq!(first.collect().await.unwrap().to_bytes(), "hello");
            assert!(body.is_replayable());
            let last = body.next(true).unwrap();
            assert_eq!(last.collect().await.unwrap().to_bytes(), "hello");
            assert_eq!(mirror.collect().await.unwrap().to_bytes(), "hello");
        }
        // One frame of unknown size whose end shows only at the next poll (a tonic unary
        // request's body): read whole too.
        let one = StreamBody::new(futures_util::stream::iter(vec![Ok::<_, BoxError>(
            Frame::data(Bytes::from_static(b"hello")),
        )]));
        let mut one = SendBody::new(one, true, 64);
        assert!(matches!(one, SendBody::Whole(_)));
        assert_eq!(one.next(true).unwrap().size_hint().exact(), Some(5));
        // Empty: ended at once, so the headers carry END_STREAM.
        let mut empty = SendBody::new(boxed(b""), true, 64);
        assert!(empty.next(false).unwrap().is_end_stream());
        // Past the limit: streamed, with the frame the read took sent first.
        let mut big = SendBody::new(boxed(b"0123456789"), true, 4);
        assert!(matches!(big, SendBody::Replay(_)));
        let sent = big.next(false).unwrap();
        assert_eq!(sent.collect().await.unwrap().to_bytes(), "0123456789");
    }

    /// What tonic's client sends for a unary call (`tonic::client::Grpc::unary`: an
    /// `EncodeBody` over one message, boxed in `tonic::body::Body`) is read whole: the message
    /// comes at the first poll, the end at the second.
    #[tokio::test]
    async fn a_tonic_unary_request_body_is_read_whole() {
        use tonic::codec::Codec as _;
        let encoder = tonic_prost::ProstCodec::<String, String>::default().encoder();
        let source = futures_util::stream::iter(vec![Ok::<_, tonic::Status>("hi".to_owned())]);
        let body = tonic::body::Body::new(tonic::codec::EncodeBody::new_client(
            encoder, source, None, None,
        ))
        .map_err(|e| -> BoxError { Box::new(e) });
        let mut body = SendBody::new(body, true, 64);
        assert!(matches!(body, SendBody::Whole(_)));
        // The gRPC frame: flag, length, the string field of 2 bytes with its tag and length.
        assert_eq!(body.byte_counter().unwrap().read_bytes(), 5 + 4);
        let sent = body.next(true).unwrap();
        assert_eq!(sent.collect().await.unwrap().to_bytes().len(), 9);
    }

    /// A body whose first frame was read but is not over keeps that frame first.
    #[tokio::test]
    async fn a_body_read_ahead_keeps_its_first_frame() {
        let frames = vec![
            Ok::<_, BoxError>(Frame::data(Bytes::from_static(b"ab"))),
            Ok(Frame::data(Bytes::from_static(b"cd"))),
        ];
        // Claims an exact size, so the first frame is read ahead; two frames follow.
        struct Sized4<S>(S);
        impl<S: Body<Data = Bytes> + Unpin> Body for Sized4<S> {
            type Data = Bytes;
            type Error = S::Error;
            fn poll_frame(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<Option<Result<Frame<Bytes>, S::Error>>> {
                Pin::new(&mut self.0).poll_frame(cx)
            }
            fn size_hint(&self) -> SizeHint {
                SizeHint::with_exact(4)
            }
        }
        let body = Sized4(StreamBody::new(futures_util::stream::iter(frames)));
        let mut body = SendBody::new(body, false, 64);
        let counter = body.byte_counter().unwrap();
        let sent = body.next(true).unwrap();
        assert_eq!(sent.collect().await.unwrap().to_bytes(), "abcd");
        assert_eq!(counter.read_bytes(), 4);
    }
}
