//! gRPC message counting on a body (`istio_request_messages_total`,
//! `istio_response_messages_total`): a [`GrpcFrameCounter`] fed the data frames a body yields,
//! its count published through an atomic when the counting and the recording sides differ (the
//! request body is read by the application's task).
//!
//! Both sides report a call's messages as they flow, as Istio's stats filter does for a gRPC
//! stream (istio/proxy `istio_stats.cc`: `decodeHeaders` arms a report timer for gRPC requests
//! only, and `reportHelper` adds the deltas of the `grpc_stats` filter's counts since the last
//! report, once the peer is known or the stream ends). The server knows its peer from the
//! request, the client when the response head arrives: from then on each message is added as
//! it is counted (a long stream's counters move while it runs, never later than Istio's
//! five-second report), and whatever remains is added when the stream ends. [`CallMessages`]
//! is what the request body and the response body (read by different tasks) share: one
//! allocation per gRPC call, none for any other call.

use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use mesh_core::telemetry::GrpcFrameCounter;
use metrics::Counter;
use pin_project_lite::pin_project;

/// Most chunks of one data frame read. Frames of hyper, tonic and axum bodies are `Bytes`, one
/// chunk; a frame of more chunks than this is counted on its first `MAX_CHUNKS` chunks (a
/// `Buf` cannot be read past them without consuming it).
const MAX_CHUNKS: usize = 64;

/// Feeds the chunks of `data` (without consuming it) to `counter`.
pub(crate) fn feed(counter: &mut GrpcFrameCounter, data: &impl Buf) {
    if data.chunk().len() == data.remaining() {
        counter.feed(data.chunk());
        return;
    }
    let mut slices = [IoSlice::new(&[]); MAX_CHUNKS];
    let n = data.chunks_vectored(&mut slices);
    for s in &slices[..n] {
        counter.feed(s);
    }
}

/// A request body's message counter whose total the call's [`CallMessages`] reports.
#[derive(Debug)]
pub(crate) struct SharedCount {
    counter: GrpcFrameCounter,
    call: Arc<CallMessages>,
}

impl SharedCount {
    /// A counter counting into `call`.
    pub(crate) fn new(call: Arc<CallMessages>) -> Self {
        Self {
            counter: GrpcFrameCounter::new(),
            call,
        }
    }

    /// Counts the messages begun in `data` (reported at once when the series is known).
    pub(crate) fn feed(&mut self, data: &impl Buf) {
        feed(&mut self.counter, data);
        self.call.count(self.counter.messages());
    }
}

/// The message counts of one outbound gRPC call, shared by its request and response bodies.
#[derive(Debug, Default)]
pub(crate) struct CallMessages {
    /// Request messages counted so far.
    counted: AtomicU64,
    /// Request messages already added to the request counter.
    reported: AtomicU64,
    /// The call's (request, response) message counters, once the response head says which
    /// series they are (`None` inside: the series is not gRPC's).
    counters: OnceLock<Option<(Counter, Counter)>>,
}

impl CallMessages {
    /// Starts reporting into `counters`, adding the request messages counted so far.
    pub(crate) fn attach(&self, counters: Option<(Counter, Counter)>) {
        let _ = self.counters.set(counters);
        self.flush();
    }

    /// Sets the request messages counted so far and reports them if the series is known.
    fn count(&self, total: u64) {
        self.counted.store(total, Ordering::Relaxed);
        self.flush();
    }

    /// Adds the request messages counted but not yet reported. Called from both bodies'
    /// tasks: `fetch_max` makes each message added once whichever reports it.
    fn flush(&self) {
        if let Some(Some((request, _))) = self.counters.get() {
            let n = self.counted.load(Ordering::Relaxed);
            let before = self.reported.fetch_max(n, Ordering::Relaxed);
            if n > before {
                request.increment(n - before);
            }
        }
    }

    /// Request messages counted so far (for the access log).
    pub(crate) fn counted(&self) -> u64 {
        self.counted.load(Ordering::Relaxed)
    }

    fn response_counter(&self) -> Option<&Counter> {
        self.counters.get().and_then(Option::as_ref).map(|(_, r)| r)
    }
}

/// The shared counts of an outbound call when it is gRPC (`grpc`), for
/// [`RequestMessages::new`] and [`ResponseMessages::new`]; nothing is allocated otherwise.
pub(crate) fn outbound(grpc: bool) -> Option<Arc<CallMessages>> {
    grpc.then(Arc::default)
}

pin_project! {
    /// An outbound request body counting the gRPC messages the caller sends (as Envoy's
    /// `grpc_stats` filter does before the router: each message once, however often a retry
    /// or a mirror resends it).
    pub(crate) struct RequestMessages<B> {
        #[pin]
        inner: B,
        count: Option<(GrpcFrameCounter, Arc<CallMessages>)>,
    }
}

impl<B> RequestMessages<B> {
    /// `inner`, counted into `call` when there is one.
    pub(crate) fn new(inner: B, call: Option<Arc<CallMessages>>) -> Self {
        Self {
            inner,
            count: call.map(|c| (GrpcFrameCounter::new(), c)),
        }
    }
}

impl<B: Body> Body for RequestMessages<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
            && let Some((frames, call)) = this.count.as_mut()
        {
            feed(frames, data);
            call.count(frames.messages());
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

/// The response side of an outbound gRPC call: counts the messages of the response body and
/// reports both directions as they are counted, and at the end.
#[derive(Debug)]
pub(crate) struct ResponseMessages {
    frames: GrpcFrameCounter,
    reported: u64,
    call: Arc<CallMessages>,
}

impl ResponseMessages {
    /// Counts the response of `call` (whose counters are attached, or will never be).
    pub(crate) fn new(call: Arc<CallMessages>) -> Self {
        Self {
            frames: GrpcFrameCounter::new(),
            reported: 0,
            call,
        }
    }

    /// Counts the messages begun in `data` and reports them.
    pub(crate) fn feed(&mut self, data: &impl Buf) {
        feed(&mut self.frames, data);
        self.flush();
    }

    /// Response messages counted so far (for the access log).
    pub(crate) fn messages(&self) -> u64 {
        self.frames.messages()
    }

    /// Reports what is left of both directions (the response body ended).
    pub(crate) fn finish(&mut self) {
        self.flush();
        self.call.flush();
    }

    fn flush(&mut self) {
        let n = self.frames.messages();
        if n > self.reported
            && let Some(counter) = self.call.response_counter()
        {
            counter.increment(n - self.reported);
            self.reported = n;
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::{Buf as _, Bytes};

    use super::*;

    #[test]
    fn counts_over_chained_chunks() {
        let frame = |n: u8| Bytes::from(vec![0, 0, 0, 0, 2, n, n]);
        let chained = frame(1).chain(frame(2)).chain(frame(3));
        let call = Arc::new(CallMessages::default());
        let mut count = SharedCount::new(call.clone());
        count.feed(&chained);
        count.feed(&frame(4));
        assert_eq!(call.counted(), 4);
    }
}
