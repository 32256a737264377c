//! The spans mesh reports, one per served request (kind SERVER) and one per client call (kind
//! CLIENT), with the tags Istio's proxies put on theirs, and the sampling decision that goes
//! with them.
//!
//! A span starts where the request's trace context is made ([`start_server`] after
//! [`inbound`](super::inbound), [`start_client`] after [`outbound`](super::outbound)) and ends
//! where its telemetry record is completed ([`SpanStart::end`]), so its ids are the ones sent in
//! `traceparent`/B3 and its tags come from the record. Nothing is done when tracing is off
//! beyond one atomic load.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

use http::HeaderMap;
use mesh_core::telemetry::{PeerWorkload, Reporter, RequestRecord};
use opentelemetry::trace::{
    SpanContext, SpanKind, Status, TraceContextExt, TraceFlags, TraceState,
};
use opentelemetry::{Context, InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use rand::Rng;

use super::context::TraceContext;
use super::export::{self, Tracing};
use super::ids::{SpanId, TraceId};
use super::scope::RequestContext;

/// Envoy's header that forces a trace for a request (client-forced).
pub const X_CLIENT_TRACE_ID: &str = "x-client-trace-id";
/// Envoy's header that forces a trace for a request (service-forced).
pub const X_ENVOY_FORCE_TRACE: &str = "x-envoy-force-trace";

/// Whether a request is traced. A caller's decision (`traceparent` flags, `x-b3-sampled`) is
/// kept, as Envoy's OpenTelemetry tracer keeps the parent's sampled flag
/// (`source/extensions/tracers/opentelemetry/opentelemetry_tracer_impl.cc`, `Driver::startSpan`).
/// Without one, `x-client-trace-id` or `x-envoy-force-trace` (`forced`) forces the trace (Envoy's
/// client sampling, 100% by default, and service-forced tracing:
/// `source/common/http/conn_manager_utility.cc`, `ConnectionManagerUtility::mutateTracingRequestHeader`),
/// and otherwise `percent` of the traces are sampled (Istio's `tracing.sampling`, Envoy's
/// `random_sampling`).
pub fn decide(
    incoming: Option<bool>,
    client_trace_id: bool,
    percent: f64,
    rng: &mut impl Rng,
) -> bool {
    match incoming {
        Some(decision) => decision,
        None if client_trace_id => true,
        None if percent >= 100.0 => true,
        None if percent <= 0.0 => false,
        None => rng.random::<f64>() * 100.0 < percent,
    }
}

/// Whether the request asks for a trace (`x-client-trace-id` set, or `x-envoy-force-trace`).
pub(crate) fn forced(headers: &HeaderMap) -> bool {
    headers
        .get(X_CLIENT_TRACE_ID)
        .is_some_and(|v| !v.as_bytes().is_empty())
        || headers.contains_key(X_ENVOY_FORCE_TRACE)
}

/// A span being timed; ended (and queued for export) with its request's record.
#[derive(Debug)]
pub struct SpanStart {
    tracing: Arc<Tracing>,
    trace_id: TraceId,
    span_id: SpanId,
    parent: Option<SpanId>,
    kind: SpanKind,
}

/// What the server keeps of a request's trace while it is handled: the OpenTelemetry context
/// made current while the handler runs (so the application's `tracing-opentelemetry` spans are
/// children of mesh's server span), and the span itself when the request is sampled.
#[derive(Debug)]
pub struct ServerSpan {
    /// Current while the handler's future is polled.
    pub context: Context,
    /// The server span, when sampled.
    pub span: Option<SpanStart>,
}

/// The server side, right after [`inbound`](super::inbound): decides sampling for a request that
/// brings no decision (writing it into `ctx`, so the calls the handler makes carry it) and
/// starts the server span. `None` when tracing is off.
pub fn start_server(
    ctx: &mut RequestContext,
    headers: &HeaderMap,
    rng: &mut impl Rng,
) -> Option<ServerSpan> {
    let tracing = export::installed()?;
    let t = &mut ctx.trace;
    let sampled = decide(
        t.sampled,
        forced(headers),
        tracing.config.sampling_percent,
        rng,
    );
    t.sampled = Some(sampled);
    let context =
        Context::new().with_remote_span_context(span_context(t.trace_id, t.span_id, sampled));
    let span = sampled.then(|| SpanStart {
        trace_id: t.trace_id,
        span_id: t.span_id,
        parent: t.parent_span_id,
        kind: SpanKind::Server,
        tracing,
    });
    Some(ServerSpan { context, span })
}

/// Runs `f` with the server span's context current (when traced): a `tracing` span made in `f`
/// is, through `tracing-opentelemetry`, a child of mesh's server span.
pub fn in_context<T>(server: Option<&ServerSpan>, f: impl FnOnce() -> T) -> T {
    let _current = server.map(|s| s.context.clone().attach());
    f()
}

/// The client side, right after [`outbound`](super::outbound) wrote `ctx` into `headers`: when
/// the application has an OpenTelemetry span current (its own `tracing-opentelemetry` span) the
/// call becomes its child; a trace the call starts gets its sampling decision; the headers are
/// rewritten to match. Returns the client span when sampled; `None` when tracing is off.
pub fn start_client(
    ctx: &mut RequestContext,
    headers: &mut HeaderMap,
    rng: &mut impl Rng,
) -> Option<SpanStart> {
    start_client_trace(&mut ctx.trace, headers, rng)
}

/// [`start_client`] on the call's trace context alone (what `MeshClient` keeps of it).
pub(crate) fn start_client_trace(
    t: &mut TraceContext,
    headers: &mut HeaderMap,
    rng: &mut impl Rng,
) -> Option<SpanStart> {
    let tracing = export::installed()?;
    let current = Context::current();
    let app = current.span().span_context().clone();
    if app.is_valid() {
        let app_trace = TraceId(app.trace_id().to_bytes());
        if app_trace == t.trace_id {
            t.parent_span_id = Some(SpanId(app.span_id().to_bytes()));
        } else if t.parent_span_id.is_none() {
            // mesh started a trace for this call, but the application is inside one of its
            // own: continue the application's.
            t.trace_id = app_trace;
            t.parent_span_id = Some(SpanId(app.span_id().to_bytes()));
            t.sampled = Some(app.is_sampled());
        }
    }
    let sampled = decide(
        t.sampled,
        forced(headers),
        tracing.config.sampling_percent,
        rng,
    );
    t.sampled = Some(sampled);
    t.inject(headers);
    sampled.then(|| SpanStart {
        trace_id: t.trace_id,
        span_id: t.span_id,
        parent: t.parent_span_id,
        kind: SpanKind::Client,
        tracing,
    })
}

fn span_context(trace: TraceId, span: SpanId, sampled: bool) -> SpanContext {
    SpanContext::new(
        opentelemetry::TraceId::from_bytes(trace.0),
        opentelemetry::SpanId::from_bytes(span.0),
        if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        },
        false,
        TraceState::NONE,
    )
}

impl SpanStart {
    /// A span of `tracing` with these ids (tests build one without installing tracing).
    #[cfg(test)]
    pub(crate) fn new(
        tracing: Arc<Tracing>,
        trace_id: TraceId,
        span_id: SpanId,
        parent: Option<SpanId>,
        kind: SpanKind,
    ) -> Self {
        Self {
            tracing,
            trace_id,
            span_id,
            parent,
            kind,
        }
    }

    /// Ends the span with what `record` says of the request and queues it for export (never
    /// waiting: a full queue drops it and counts the drop).
    pub fn end(self, record: &RequestRecord) {
        let data = self.data(record);
        let me = self.workload(record);
        let resource = self.tracing.resource(
            me.canonical_service.as_deref().unwrap_or("unknown"),
            me.namespace.as_deref().unwrap_or("default"),
        );
        self.tracing.push(resource, data);
    }

    /// This side's workload: the destination for a server span, the source for a client span.
    fn workload<'r>(&self, record: &'r RequestRecord) -> &'r PeerWorkload {
        match record.reporter {
            Reporter::Destination => &record.destination,
            Reporter::Source => &record.source,
        }
    }

    /// The exported span.
    pub(crate) fn data(&self, record: &RequestRecord) -> SpanData {
        let parent = self.parent.map_or(opentelemetry::SpanId::INVALID, |p| {
            opentelemetry::SpanId::from_bytes(p.0)
        });
        let error = is_error(record);
        SpanData {
            span_context: span_context(self.trace_id, self.span_id, true),
            parent_span_id: parent,
            parent_span_is_remote: self.kind == SpanKind::Server,
            span_kind: self.kind.clone(),
            name: Cow::Owned(operation(record)),
            start_time: record.start,
            end_time: record
                .start
                .checked_add(record.duration)
                .unwrap_or_else(SystemTime::now),
            attributes: self.attributes(record, error),
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: if error {
                Status::error("")
            } else {
                Status::Unset
            },
            instrumentation_scope: InstrumentationScope::builder("mesh").build(),
        }
    }

    /// Envoy's tags (`source/common/tracing/http_tracer_impl.cc`,
    /// `HttpTracerUtility::finalizeDownstreamSpan` / `finalizeUpstreamSpan`) and Istio's
    /// (`pilot/pkg/networking/core/tracing.go`, `buildServiceTags`).
    fn attributes(&self, r: &RequestRecord, error: bool) -> Vec<KeyValue> {
        let config = &self.tracing.config;
        let max = config.max_tag_length;
        let me = self.workload(r);
        let text = |s: &str| cut(s, max);
        let namespace = me.namespace.clone().unwrap_or_default();
        let name = me.name.clone().unwrap_or_default();
        let mut a = vec![
            KeyValue::new("component", "proxy"),
            KeyValue::new(
                "node_id",
                format!(
                    "sidecar~{}~{name}.{namespace}~{namespace}.svc.cluster.local",
                    config.instance_ip
                ),
            ),
            KeyValue::new(
                "guid:x-request-id",
                text(r.request_id.as_deref().unwrap_or("")),
            ),
            KeyValue::new("http.method", r.method.clone()),
            KeyValue::new(
                "http.url",
                text(&format!("http://{}{}", r.authority, r.path)),
            ),
            KeyValue::new("http.protocol", r.protocol.as_str()),
            KeyValue::new("downstream_cluster", "-"),
            KeyValue::new("request_size", r.request_bytes as i64),
            KeyValue::new("response_size", r.response_bytes as i64),
            KeyValue::new("http.status_code", r.response_code.map_or(0, i64::from)),
            KeyValue::new("response_flags", response_flags(r)),
            KeyValue::new("istio.mesh_id", config.mesh_id.clone()),
            KeyValue::new("istio.namespace", namespace),
            KeyValue::new(
                "istio.canonical_service",
                me.canonical_service.clone().unwrap_or_default(),
            ),
            KeyValue::new(
                "istio.canonical_revision",
                me.canonical_revision
                    .clone()
                    .unwrap_or_else(|| "latest".into()),
            ),
            KeyValue::new(
                "istio.cluster_id",
                me.cluster.clone().unwrap_or_else(|| "Kubernetes".into()),
            ),
        ];
        match self.kind {
            SpanKind::Server => {
                let port = r.destination_service.as_ref().map_or(0, |s| s.port);
                let cluster = format!("inbound|{port}||");
                a.push(KeyValue::new("upstream_cluster", cluster.clone()));
                a.push(KeyValue::new("upstream_cluster.name", cluster));
                if let Some(peer) = &r.peer_address {
                    a.push(KeyValue::new("peer.address", peer.clone()));
                }
            }
            _ => {
                let cluster = r
                    .upstream_cluster
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), ToString::to_string);
                a.push(KeyValue::new("upstream_cluster", cluster.clone()));
                a.push(KeyValue::new("upstream_cluster.name", cluster));
                if let Some(peer) = &r.peer_address {
                    a.push(KeyValue::new("upstream_address", peer.clone()));
                    a.push(KeyValue::new("peer.address", peer.clone()));
                }
            }
        }
        if let Some(status) = r.grpc_status {
            a.push(KeyValue::new("grpc.status_code", i64::from(status)));
        }
        if error {
            a.push(KeyValue::new("error", "true"));
        }
        a
    }
}

/// Istio's route decorator: `<service host>:<port>/*` (`pilot/pkg/networking/core/route`,
/// `BuildDefaultHTTPOutboundRoute`'s `Decorator`), else the authority the request named.
fn operation(r: &RequestRecord) -> String {
    match &r.destination_service {
        Some(s) if !s.host.is_empty() => format!("{}:{}/*", s.host, s.port),
        _ if r.authority.is_empty() => "unknown/*".to_owned(),
        _ => format!("{}/*", r.authority),
    }
}

/// Envoy marks a span an error for a 5xx, no response, or a gRPC status other than OK.
fn is_error(r: &RequestRecord) -> bool {
    r.response_code.is_none_or(|c| c == 0 || c >= 500) || r.grpc_status.is_some_and(|s| s != 0)
}

/// Envoy's short response flags joined by `,`; `-` for none.
fn response_flags(r: &RequestRecord) -> String {
    if r.response_flags.is_empty() {
        return "-".to_owned();
    }
    r.response_flags
        .iter()
        .map(|f| f.code())
        .collect::<Vec<_>>()
        .join(",")
}

/// `s` cut to at most `max` bytes at a character boundary (Envoy's `max_tag_length`).
fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}
