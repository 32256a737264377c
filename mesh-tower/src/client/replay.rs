//! A request body that can be sent again, so a failed attempt can be retried (or mirrored).
//!
//! Envoy buffers a request body as it streams it upstream and gives up on retrying once the
//! buffer passes a limit; this is the same idea. The first attempt streams the caller's body and
//! keeps a copy of each chunk (up to [`ReplayBody::new`]'s limit); a replay hands out the copy and
//! then, if the caller's body was not finished, continues from it. Bodies that outgrow the limit
//! simply cannot be replayed ([`ReplayBody::is_replayable`] turns false), so a streaming call is
//! never held back waiting for its end.
//!
//! Only one clone reads the caller's body at a time: a clone that needs it while another holds it
//! waits until the other has finished its poll; a clone behind the others replays the copy.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use super::send_body::ReadBytes;

/// A replayable body; clone it to get a body that replays from the start.
pub struct ReplayBody<B> {
    shared: Arc<SharedBody<B>>,
    /// Chunks this clone has returned.
    position: usize,
    /// Whether this clone has returned the trailers (or the end).
    finished: bool,
    /// A follower never polls the caller's body; it waits for other clones to read it.
    follower: bool,
}

/// What the clones share, in one allocation.
struct SharedBody<B> {
    state: Mutex<Shared<B>>,
    /// Bytes read from the caller's body so far, for telemetry.
    read_bytes: AtomicU64,
}

impl<B: Send> ReadBytes for SharedBody<B> {
    fn read_bytes(&self) -> u64 {
        self.read_bytes.load(Ordering::Relaxed)
    }
}

struct Shared<B> {
    /// The caller's body while no clone is polling it.
    inner: Option<B>,
    /// Copies of the chunks read so far (emptied on overflow).
    chunks: Chunks,
    /// Chunks read from the caller's body, copied or not.
    read: usize,
    buffered: usize,
    limit: usize,
    trailers: Option<HeaderMap>,
    /// The caller's body has ended.
    ended: bool,
    /// More than `limit` bytes were read: the copy is incomplete, no replay possible.
    overflowed: bool,
    /// Clones waiting for the caller's body.
    waiters: Vec<Waker>,
}

impl<B> ReplayBody<B> {
    /// Wraps `body`, keeping up to `limit` bytes for replays.
    pub fn new(body: B, limit: usize) -> Self {
        let shared = Shared {
            inner: Some(body),
            chunks: Chunks::default(),
            read: 0,
            buffered: 0,
            limit,
            trailers: None,
            ended: false,
            overflowed: false,
            waiters: Vec::new(),
        };
        Self {
            shared: Arc::new(SharedBody {
                state: Mutex::new(shared),
                read_bytes: AtomicU64::new(0),
            }),
            position: 0,
            finished: false,
            follower: false,
        }
    }

    /// A counter of the bytes read from the caller's body, shared by every clone.
    pub(crate) fn byte_counter(&self) -> Arc<dyn ReadBytes>
    where
        B: Send + 'static,
    {
        self.shared.clone()
    }

    /// Whether a new clone would still see the whole body.
    pub fn is_replayable(&self) -> bool {
        !lock(&self.shared.state).overflowed
    }
}

fn lock<B>(shared: &Mutex<Shared<B>>) -> MutexGuard<'_, Shared<B>> {
    // Every update is a single step under the lock; a panic elsewhere cannot leave it torn.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<B> ReplayBody<B> {
    /// A clone that only replays what other clones read from the caller's body, waiting for
    /// them as needed; it fails with [`ReplayError::Overflowed`] if the copy outgrows the limit.
    /// A mirror uses one, so a shadow request can never slow or break the real one.
    pub fn follower(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            position: 0,
            finished: false,
            follower: true,
        }
    }
}

impl<B> Clone for ReplayBody<B> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            position: 0,
            finished: false,
            follower: false,
        }
    }
}

/// Why a replay failed.
#[derive(Debug)]
pub enum ReplayError<E> {
    /// The caller's body failed.
    Inner(E),
    /// The body outgrew the replay buffer, so this replay cannot see all of it.
    Overflowed,
}

impl<E: std::fmt::Display> std::fmt::Display for ReplayError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplayError::Inner(e) => e.fmt(f),
            ReplayError::Overflowed => f.write_str("request body too large to replay"),
        }
    }
}

impl<E: std::fmt::Debug + std::fmt::Display> std::error::Error for ReplayError<E> {}

impl<B> Body for ReplayBody<B>
where
    B: Body + Unpin,
    B::Data: Buf,
{
    type Data = Bytes;
    type Error = ReplayError<B::Error>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.finished {
            return Poll::Ready(None);
        }
        let shared = this.shared.clone();
        let mut state = lock(&shared.state);
        // The copy first.
        if let Some(chunk) = state.chunks.get(this.position) {
            this.position += 1;
            return Poll::Ready(Some(Ok(Frame::data(chunk.clone()))));
        }
        if this.position < state.read || (this.follower && state.overflowed) {
            // Behind what was read, and the copy is gone.
            return Poll::Ready(Some(Err(ReplayError::Overflowed)));
        }
        if state.ended {
            this.finished = true;
            return Poll::Ready(state.trailers.clone().map(|t| Ok(Frame::trailers(t))));
        }
        if this.follower {
            state.waiters.push(cx.waker().clone());
            return Poll::Pending;
        }
        // Then the caller's body, which one clone polls at a time.
        let Some(mut inner) = state.inner.take() else {
            state.waiters.push(cx.waker().clone());
            return Poll::Pending;
        };
        drop(state);
        let polled = Pin::new(&mut inner).poll_frame(cx);
        let mut state = lock(&shared.state);
        state.inner = Some(inner);
        let waiters = std::mem::take(&mut state.waiters);
        let result = match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                state.ended = true;
                this.finished = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(ReplayError::Inner(e)))),
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(mut data) => {
                    let bytes = data.copy_to_bytes(data.remaining());
                    shared
                        .read_bytes
                        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    state.read += 1;
                    this.position = state.read;
                    if !state.overflowed {
                        if state.buffered + bytes.len() > state.limit {
                            state.overflowed = true;
                            state.chunks = Chunks::default();
                        } else {
                            state.buffered += bytes.len();
                            state.chunks.push(bytes.clone());
                        }
                    }
                    Poll::Ready(Some(Ok(Frame::data(bytes))))
                }
                Err(frame) => match frame.into_trailers() {
                    Ok(trailers) => {
                        state.trailers = Some(trailers.clone());
                        state.ended = true;
                        this.finished = true;
                        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
                    }
                    // A frame kind this body does not know: skip it and poll again.
                    Err(_) => {
                        cx.waker().wake_by_ref();
                        Poll::Pending
                    }
                },
            },
        };
        drop(state);
        waiters.into_iter().for_each(Waker::wake);
        result
    }

    fn is_end_stream(&self) -> bool {
        if self.finished {
            return true;
        }
        let state = lock(&self.shared.state);
        // Caught up with what was read, and the caller's body has ended (read to its end, or
        // saying so before that last poll, so the end goes out with the last data frame).
        self.position >= state.read
            && ((state.ended && state.trailers.is_none())
                || state.inner.as_ref().is_some_and(Body::is_end_stream))
    }

    fn size_hint(&self) -> SizeHint {
        let state = lock(&self.shared.state);
        if state.ended && !state.overflowed {
            let sent: usize = state
                .chunks
                .iter()
                .take(self.position)
                .map(Bytes::len)
                .sum();
            return SizeHint::with_exact((state.buffered - sent) as u64);
        }
        match &state.inner {
            Some(inner) if state.read == 0 => inner.size_hint(),
            _ => SizeHint::default(),
        }
    }
}

/// The copied chunks: the first inline (a unary call's body is one chunk, kept with no
/// allocation of its own), the rest in a vector.
#[derive(Default)]
struct Chunks {
    first: Option<Bytes>,
    rest: Vec<Bytes>,
}

impl Chunks {
    fn get(&self, i: usize) -> Option<&Bytes> {
        match i {
            0 => self.first.as_ref(),
            _ => self.rest.get(i - 1),
        }
    }

    fn push(&mut self, chunk: Bytes) {
        if self.first.is_none() {
            self.first = Some(chunk);
        } else {
            self.rest.push(chunk);
        }
    }

    fn iter(&self) -> impl Iterator<Item = &Bytes> {
        self.first.iter().chain(&self.rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full, StreamBody};

    #[tokio::test]
    async fn replays_a_small_body() {
        let body = ReplayBody::new(Full::new(Bytes::from_static(b"hello")), 64);
        let again = body.clone();
        assert_eq!(body.collect().await.unwrap().to_bytes(), "hello");
        assert_eq!(again.clone().collect().await.unwrap().to_bytes(), "hello");
        assert!(again.is_replayable());
    }

    #[tokio::test]
    async fn replay_continues_an_unfinished_body() {
        let chunks = vec![
            Ok::<_, std::io::Error>(Frame::data(Bytes::from_static(b"ab"))),
            Ok(Frame::data(Bytes::from_static(b"cd"))),
        ];
        let body = ReplayBody::new(StreamBody::new(futures_util::stream::iter(chunks)), 64);
        let mut first = body.clone();
        // The first attempt reads one chunk, then fails and is dropped.
        let frame = first.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "ab");
        drop(first);
        assert_eq!(body.clone().collect().await.unwrap().to_bytes(), "abcd");
    }

    #[tokio::test]
    async fn large_bodies_are_not_replayable() {
        let body = ReplayBody::new(Full::new(Bytes::from(vec![0u8; 100])), 64);
        assert_eq!(body.clone().collect().await.unwrap().to_bytes().len(), 100);
        assert!(!body.is_replayable());
        assert!(matches!(
            body.clone().collect().await,
            Err(ReplayError::Overflowed)
        ));
    }

    #[tokio::test]
    async fn a_follower_waits_for_the_leader() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
        let stream =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|f| (f, rx)) },
            );
        let body = ReplayBody::new(StreamBody::new(Box::pin(stream)), 64);
        let follower = tokio::spawn(body.follower().collect());
        let mut leader = body.clone();
        tx.send(Ok(Frame::data(Bytes::from_static(b"ab"))))
            .await
            .unwrap();
        assert_eq!(
            leader.frame().await.unwrap().unwrap().into_data().unwrap(),
            "ab"
        );
        tx.send(Ok(Frame::data(Bytes::from_static(b"cd"))))
            .await
            .unwrap();
        drop(tx);
        assert_eq!(leader.collect().await.unwrap().to_bytes(), "cd");
        assert_eq!(follower.await.unwrap().unwrap().to_bytes(), "abcd");
    }

    #[tokio::test]
    async fn trailers_are_replayed() {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        let frames = vec![
            Ok::<_, std::io::Error>(Frame::data(Bytes::from_static(b"x"))),
            Ok(Frame::trailers(trailers)),
        ];
        let body = ReplayBody::new(StreamBody::new(futures_util::stream::iter(frames)), 64);
        for _ in 0..2 {
            let collected = body.clone().collect().await.unwrap();
            assert_eq!(collected.trailers().unwrap()["grpc-status"], "0");
        }
    }
}
