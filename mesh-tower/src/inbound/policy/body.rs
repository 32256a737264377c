use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use mesh_core::telemetry::ResponseFlag;
use pin_project_lite::pin_project;

use super::future::Pending;
use crate::telemetry::grpc_messages::{CallMessages, ResponseMessages, SharedCount};
use crate::telemetry::grpc_status;

pin_project! {
    /// A request body that counts the bytes the application reads (`istio_request_bytes`).
    #[derive(Debug)]
    pub struct RequestBody<B> {
        #[pin]
        inner: B,
        received: Arc<AtomicU64>,
        messages: Option<SharedCount>,
    }
}

impl<B> RequestBody<B> {
    pub(super) fn new(inner: B, received: Arc<AtomicU64>) -> Self {
        Self {
            inner,
            received,
            messages: None,
        }
    }

    /// Also counts the gRPC messages read, into `messages`.
    pub(super) fn count_messages(mut self, messages: Option<Arc<CallMessages>>) -> Self {
        self.messages = messages.map(SharedCount::new);
        self
    }

    /// The body as received.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }
}

impl<B: Body> Body for RequestBody<B> {
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
        {
            this.received
                .fetch_add(data.remaining() as u64, Ordering::Relaxed);
            if let Some(messages) = this.messages.as_mut() {
                messages.feed(data);
            }
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

pin_project! {
    /// The response body of [`Inbound`](super::Inbound): the application's (or mesh's refusal),
    /// counted; the request is recorded when it ends, fails, or is dropped unfinished (`DC`:
    /// the client went away).
    pub struct InboundBody<B: Body> {
        #[pin]
        inner: B,
        sent: u64,
        pending: Option<Pending>,
        messages: Option<ResponseMessages>,
    }

    impl<B: Body> PinnedDrop for InboundBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(mut pending) = this.pending.take() {
                if !this.inner.is_end_stream() {
                    pending.key.flags.push(ResponseFlag::DownstreamConnectionTermination);
                }
                if let Some(m) = this.messages {
                    m.finish();
                    pending.response_messages = m.messages();
                }
                pending.finish(*this.sent);
            }
        }
    }
}

impl<B: Body> InboundBody<B> {
    pub(super) fn new(inner: B, pending: Pending) -> Self {
        // gRPC requests only: they alone have a call's message counts.
        let messages = pending.request_messages.clone().map(ResponseMessages::new);
        Self {
            inner,
            sent: 0,
            pending: Some(pending),
            messages,
        }
    }

    /// The body inside.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }
}

impl<B: Body> std::fmt::Debug for InboundBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundBody")
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

impl<B: Body> Body for InboundBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    *this.sent += data.remaining() as u64;
                    if let Some(m) = this.messages.as_mut() {
                        m.feed(data);
                    }
                } else if let Some(trailers) = frame.trailers_ref()
                    && let Some(pending) = this.pending.as_mut()
                    && let Some(status) = grpc_status(trailers)
                {
                    pending.key.grpc_status = Some(status);
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => {
                if let Some(mut pending) = this.pending.take() {
                    if let Some(m) = this.messages {
                        m.finish();
                        pending.response_messages = m.messages();
                    }
                    pending.finish(*this.sent);
                }
            }
            Poll::Pending => {}
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
