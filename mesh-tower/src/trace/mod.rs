//! Request ids and trace propagation.
//!
//! mesh does not export spans; it keeps traces connected, as a sidecar does: every request
//! gets an `x-request-id` ([`ensure_request_id`]), the trace context of an incoming request is
//! read from W3C `traceparent`/`tracestate` or Zipkin B3 headers ([`TraceContext::extract`];
//! invalid input starts a new trace), and each outgoing call carries a child span of it in both
//! formats ([`TraceContext::inject`]). The server makes the context current for the handler's
//! duration ([`inbound`] + [`scope`]) and the client continues it ([`outbound`]), so the
//! application's own tracer (reading the same headers) and `tracing` spans
//! ([`RequestContext::span`]) line up.

pub mod b3;
mod context;
mod ids;
mod request_id;
mod scope;
pub mod w3c;

#[cfg(test)]
mod tests;

pub use context::TraceContext;
pub use ids::{SpanId, TraceId};
pub use request_id::{MAX_REQUEST_ID_LEN, X_REQUEST_ID, ensure_request_id, uuid_v4};
pub use scope::{RequestContext, current, inbound, outbound, scope};
