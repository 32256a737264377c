//! Request ids, trace propagation and span export.
//!
//! mesh keeps traces connected, as a sidecar does: every request
//! gets an `x-request-id` ([`ensure_request_id`]), the trace context of an incoming request is
//! read from W3C `traceparent`/`tracestate` or Zipkin B3 headers ([`TraceContext::extract`];
//! invalid input starts a new trace), and each outgoing call carries a child span of it in the
//! format(s) it arrived in, or for a trace mesh starts in those `OTEL_PROPAGATORS` names (W3C by
//! default) ([`Formats`], [`TraceContext::inject`]). The server makes the context current for the handler's
//! duration ([`inbound`] + [`scope`]) and the client continues it ([`outbound`]), so the
//! application's own tracer (reading the same headers) and `tracing` spans
//! ([`RequestContext::span`]) line up.
//!
//! With tracing installed ([`install`], [`install_from_env`]), every served request and every
//! client call is also a span ([`span`]) with Istio's tags, sampled as Istio samples, and
//! exported over OTLP (gRPC or HTTP) through a bounded queue ([`queue`]) whose overflow is
//! counted in `mesh_trace_spans_dropped_total`. The application's own `tracing` spans join the
//! trace through `tracing-opentelemetry` and [`Tracing::tracer_provider`]:
//!
//! ```ignore
//! let guard = mesh_tower::trace::install_from_env()?;          // OTEL_EXPORTER_OTLP_ENDPOINT, ...
//! if let Some(guard) = &guard {
//!     let provider = guard.tracing().tracer_provider("frontend", "shop");
//!     use opentelemetry::trace::TracerProvider as _;
//!     tracing_subscriber::registry()
//!         .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("frontend")))
//!         .init();
//! }
//! ```
//! While mesh runs a handler, the server span's OpenTelemetry context is current, so a
//! `tracing` span the handler opens (with no `tracing` parent) is a child of mesh's server span,
//! and a `MeshClient` call made inside it is a child of that span.

pub mod b3;
mod config;
mod context;
mod export;
mod formats;
mod header_bytes;
mod hpack;
mod ids;
pub mod queue;
mod request_id;
mod scope;
pub mod span;
pub mod w3c;

#[cfg(test)]
mod export_tests;
#[cfg(test)]
mod tests;

pub use config::{Protocol, TraceConfig, TraceConfigError};
pub use context::TraceContext;
pub use export::{
    TraceGuard, TraceInstallError, Tracing, install, install_from_env, install_with_exporter,
};
pub use formats::{Formats, set_new_trace_formats};
pub(crate) use hpack::index_trace_names;
pub use ids::{SpanId, TraceId};
pub use request_id::{MAX_REQUEST_ID_LEN, X_REQUEST_ID, ensure_request_id, uuid_v4};
pub(crate) use scope::outbound_trace;
pub use scope::{RequestContext, current, inbound, outbound, scope};
