//! The response body `MeshClient` returns: the upstream's, or one mesh made itself.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

/// A response body: streamed from the upstream, or a local reply. When an upstream body ends
/// (or is dropped), the request's accounting completes: in-flight count, latency, telemetry.
pub struct MeshBody {
    kind: Kind,
}

enum Kind {
    Upstream {
        body: Incoming,
        on_end: Option<Box<dyn FnOnce(EndOfStream) + Send + Sync>>,
    },
    Full(Option<Bytes>),
}

/// How an upstream body ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EndOfStream {
    /// Completely read; `grpc_status` from the trailers, if any.
    Complete {
        /// The trailers' `grpc-status`.
        grpc_status: Option<u16>,
    },
    /// The upstream failed mid-body.
    Error,
    /// The caller dropped the body before its end.
    Dropped,
}

impl MeshBody {
    pub(crate) fn upstream(
        body: Incoming,
        on_end: impl FnOnce(EndOfStream) + Send + Sync + 'static,
    ) -> Self {
        Self {
            kind: Kind::Upstream {
                body,
                on_end: Some(Box::new(on_end)),
            },
        }
    }

    /// A body of these bytes.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Self {
            kind: Kind::Full((!bytes.is_empty()).then_some(bytes)),
        }
    }

    /// An empty body.
    pub fn empty() -> Self {
        Self {
            kind: Kind::Full(None),
        }
    }

    fn finish(&mut self, end: EndOfStream) {
        if let Kind::Upstream { on_end, .. } = &mut self.kind
            && let Some(f) = on_end.take()
        {
            f(end);
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
        let end = match &self.kind {
            Kind::Upstream { body, .. } if body.is_end_stream() => {
                EndOfStream::Complete { grpc_status: None }
            }
            _ => EndOfStream::Dropped,
        };
        self.finish(end);
    }
}

impl std::fmt::Debug for MeshBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Upstream { .. } => f.write_str("MeshBody::Upstream"),
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
        match &mut this.kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Upstream { body, .. } => {
                let polled = Pin::new(body).poll_frame(cx);
                match &polled {
                    Poll::Ready(None) => this.finish(EndOfStream::Complete { grpc_status: None }),
                    Poll::Ready(Some(Err(_))) => this.finish(EndOfStream::Error),
                    Poll::Ready(Some(Ok(frame))) => {
                        if let Some(trailers) = frame.trailers_ref() {
                            let grpc_status = trailers
                                .get("grpc-status")
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| v.parse().ok());
                            this.finish(EndOfStream::Complete { grpc_status });
                        }
                    }
                    Poll::Pending => {}
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(b) => b.is_none(),
            Kind::Upstream { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Upstream { body, .. } => body.size_hint(),
        }
    }
}
