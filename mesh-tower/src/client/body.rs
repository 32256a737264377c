//! The response body `MeshClient` returns: the upstream's, or one mesh made itself.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use tokio::time::Instant;

use super::attempt::AttemptEnd;
use super::record::RecordEnd;
use crate::telemetry::grpc_messages::ResponseMessages;

/// A response body: streamed from the upstream, or a local reply. When it ends (or is dropped),
/// the request's accounting completes: in-flight count, latency, telemetry.
///
/// The two things that wait for the end are typed slots, not boxed closures: every call has
/// them, and each closure box (and the box chaining them) was an allocation per call.
pub struct MeshBody {
    kind: Kind,
    bytes: u64,
    /// The endpoint's accounting (in-flight count, latency, the pool's waiters).
    attempt: Option<AttemptEnd>,
    /// The call's telemetry record, completed after the attempt's accounting. Inline, not
    /// boxed: every routed call has one.
    record: Option<RecordEnd>,
    /// A gRPC call's message counts, reported as they flow.
    messages: Option<ResponseMessages>,
}

enum Kind {
    Upstream(Incoming),
    Full(Option<Bytes>),
}

/// How a response body ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EndOfStream {
    /// Completely read, errored, or dropped early.
    pub(crate) outcome: BodyOutcome,
    /// `grpc-status` from the trailers, if any.
    pub(crate) grpc_status: Option<i32>,
    /// Body bytes delivered.
    pub(crate) bytes: u64,
}

/// How a body ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyOutcome {
    /// Read to the end.
    Complete,
    /// The upstream failed mid-body.
    Error,
    /// The caller dropped the body before its end.
    Dropped,
}

impl MeshBody {
    pub(crate) fn upstream(body: Incoming) -> Self {
        Self {
            kind: Kind::Upstream(body),
            bytes: 0,
            attempt: None,
            record: None,
            messages: None,
        }
    }

    /// A body of these bytes.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self {
            kind: Kind::Full((!bytes.is_empty()).then_some(bytes)),
            bytes: 0,
            attempt: None,
            record: None,
            messages: None,
        }
    }

    /// An empty body.
    pub fn empty() -> Self {
        Self {
            kind: Kind::Full(None),
            bytes: 0,
            attempt: None,
            record: None,
            messages: None,
        }
    }

    /// Ends `attempt` when the body ends.
    pub(crate) fn on_end_attempt(&mut self, attempt: AttemptEnd) {
        self.attempt = Some(attempt);
    }

    /// Completes and records `record` when the body ends (after the attempt's accounting).
    pub(crate) fn on_end_record(&mut self, record: RecordEnd) {
        self.record = Some(record);
    }

    /// Counts and reports the gRPC messages of the call (`messages`) as the body yields them.
    pub(crate) fn count_messages(&mut self, messages: ResponseMessages) {
        self.messages = Some(messages);
    }

    fn finish(&mut self, outcome: BodyOutcome, grpc_status: Option<i32>) {
        if let Some(mut messages) = self.messages.take() {
            messages.finish();
        }
        if self.attempt.is_none() && self.record.is_none() {
            return;
        }
        // One reading of the clock for both: the endpoint's latency and the call's duration
        // end at the same moment.
        let now = Instant::now();
        if let Some(attempt) = self.attempt.take() {
            attempt.finish(now);
        }
        if let Some(record) = self.record.take() {
            record.finish(
                EndOfStream {
                    outcome,
                    grpc_status,
                    bytes: self.bytes,
                },
                now,
            );
        }
    }
}

impl From<Bytes> for MeshBody {
    fn from(bytes: Bytes) -> Self {
        Self::full(bytes)
    }
}

impl Drop for MeshBody {
    fn drop(&mut self) {
        let outcome = if self.is_end_stream() {
            BodyOutcome::Complete
        } else {
            BodyOutcome::Dropped
        };
        self.finish(outcome, None);
    }
}

impl std::fmt::Debug for MeshBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Upstream(_) => f.write_str("MeshBody::Upstream"),
            Kind::Full(b) => f.debug_tuple("MeshBody::Full").field(b).finish(),
        }
    }
}

impl Body for MeshBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = match &mut this.kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Upstream(body) => Pin::new(body).poll_frame(cx),
        };
        match &polled {
            Poll::Ready(None) => this.finish(BodyOutcome::Complete, None),
            Poll::Ready(Some(Err(_))) => this.finish(BodyOutcome::Error, None),
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.remaining() as u64;
                    if let Some(messages) = this.messages.as_mut() {
                        messages.feed(data);
                    }
                }
                if let Some(trailers) = frame.trailers_ref() {
                    let grpc_status = crate::telemetry::grpc_status(trailers);
                    this.finish(BodyOutcome::Complete, grpc_status);
                } else if this.is_end_stream() {
                    this.finish(BodyOutcome::Complete, None);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(b) => b.is_none(),
            Kind::Upstream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Upstream(body) => body.size_hint(),
        }
    }
}
