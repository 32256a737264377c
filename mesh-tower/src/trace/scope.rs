//! The request context of the inbound request being handled, in a task-local, so the outbound
//! client continues the same trace and request id without the application passing them along.
//!
//! The server calls [`inbound`] on the request's headers and runs the handler inside
//! [`scope`]; the client calls [`outbound`] on each outgoing request's headers. Work the handler
//! spawns onto other tasks does not inherit the context (task-locals do not cross
//! `tokio::spawn`); wrap such futures in [`scope`] with [`current`]`()` to carry it.

use std::future::Future;

use http::HeaderMap;
use rand::Rng;
use tokio::task::futures::TaskLocalFuture;

use super::context::{RequestIdSource, TraceContext};
use super::request_id::{ensure_request_id, incoming_request_id};

/// What is carried from an inbound request to the calls made while handling it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestContext {
    /// The inbound request's span (a child of the caller's, or a new trace's root).
    pub trace: TraceContext,
    /// `x-request-id`.
    pub request_id: String,
}

impl RequestContext {
    /// A `tracing` span carrying the ids, to enter for the request's duration.
    ///
    /// The ids are formatted only if the subscriber records the span.
    pub fn span(&self) -> tracing::Span {
        tracing::info_span!(
            "mesh.request",
            trace_id = %self.trace.trace_id,
            span_id = %self.trace.span_id,
            parent_span_id = self.trace.parent_span_id.map(|p| p.to_string()).as_deref(),
            request_id = %self.request_id,
        )
    }
}

tokio::task_local! {
    static CURRENT: RequestContext;
}

/// The server side: the context of an incoming request. Continues the caller's trace with a
/// new span (or starts a trace), and makes sure `headers` carry an `x-request-id`.
pub fn inbound(headers: &mut HeaderMap, rng: &mut impl Rng) -> RequestContext {
    let trace = match TraceContext::extract(headers) {
        Some(caller) => caller.child(rng),
        None => TraceContext::new_root(rng),
    };
    RequestContext {
        trace,
        request_id: ensure_request_id(headers, rng),
    }
}

/// Runs `f` with `ctx` as the current request context.
pub fn scope<F: Future>(ctx: RequestContext, f: F) -> TaskLocalFuture<RequestContext, F> {
    CURRENT.scope(ctx, f)
}

/// The current request context, inside [`scope`].
pub fn current() -> Option<RequestContext> {
    CURRENT.try_with(Clone::clone).ok()
}

/// The client side: inside a handler, writes a child of the current context and the request id
/// into an outgoing request's `headers` and returns it. Outside one, starts a new trace and
/// request id for the call (an application's own background call is a trace of its own),
/// keeping any `x-request-id` the application set. The trace headers are written in the
/// context's [`formats`](TraceContext::formats): those the inbound request came with, or, for a
/// new trace, [`Formats::for_new_trace`](super::Formats::for_new_trace)'s.
pub fn outbound(headers: &mut HeaderMap, rng: &mut impl Rng) -> RequestContext {
    let trace = outbound_trace(headers, rng);
    let request_id = CURRENT
        .try_with(|parent| parent.request_id.clone())
        .ok()
        .or_else(|| incoming_request_id(headers).map(str::to_owned))
        .unwrap_or_default();
    RequestContext { trace, request_id }
}

/// [`outbound`] without the owned request id: the call's `x-request-id` is in `headers`
/// afterwards (written, or the application's kept). What `MeshClient` calls on every request:
/// the current context is read in place, not cloned, and a new id is generated straight into
/// the trace headers' shared buffer ([`TraceContext::inject_with`]).
pub(crate) fn outbound_trace(headers: &mut HeaderMap, rng: &mut impl Rng) -> TraceContext {
    let in_handler = CURRENT.try_with(|parent| {
        let trace = parent.trace.child(rng);
        trace.inject_with(headers, Some(RequestIdSource::Known(&parent.request_id)));
        trace
    });
    if let Ok(trace) = in_handler {
        return trace;
    }
    let trace = TraceContext::new_root(rng);
    let new_id = incoming_request_id(headers)
        .is_none()
        .then_some(RequestIdSource::New(rng));
    trace.inject_with(headers, new_id);
    trace
}
