//! Telemetry of outbound calls: the `reporter="source"` record of each request, completed when
//! its response body ends, plus the headers a client adds (trace context, `x-request-id`, Istio's
//! peer metadata).

use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderMap, HeaderValue, Response};
use mesh_core::Workload;
use mesh_core::telemetry::{PeerMetadata, PeerWorkload, Reporter, RequestRecord, ResponseFlag};
use tokio::time::Instant;

use super::body::{BodyOutcome, EndOfStream, MeshBody};
use super::pool::UpstreamPeer;
use super::runtime::ClusterRuntime;
use super::send_body::RequestBytes;
use crate::telemetry::{
    AccessLogMode, Telemetry, grpc_status, insert_peer_metadata, remove_peer_metadata,
    request_protocol,
};
use crate::trace::RequestContext;

/// Istio's default cluster id, used in peer metadata.
const CLUSTER_ID: &str = "Kubernetes";

/// What the client knows of itself for telemetry, computed once.
pub(crate) struct Reporting {
    pub(crate) telemetry: Telemetry,
    source: PeerWorkload,
    metadata: Option<(HeaderValue, HeaderValue)>,
}

impl Reporting {
    pub(crate) fn new(telemetry: Telemetry, workload: &Workload, domain_suffix: &str) -> Self {
        let metadata = crate::telemetry::peer_metadata_headers(
            &PeerMetadata::from_workload(workload, CLUSTER_ID),
            domain_suffix,
        );
        Self {
            telemetry,
            source: PeerWorkload::from_workload(workload, CLUSTER_ID),
            metadata,
        }
    }

    /// Adds our peer metadata to an outgoing request, as Istio's sidecars do.
    pub(crate) fn add_metadata(&self, headers: &mut HeaderMap) {
        if let Some((encoded, id)) = &self.metadata {
            insert_peer_metadata(headers, encoded, id);
        }
    }

    /// Whether finished calls may be access-logged: only then are the facts only the log
    /// shows (method, path, authority, request id, trace id, endpoint address) copied into
    /// each record.
    pub(crate) fn logs_requests(&self) -> bool {
        self.telemetry.access_log_mode() != AccessLogMode::Off
    }

    /// A record of a request being sent now; `target` is its authority and path, read only
    /// when the access log may show them or the call is `traced` (its span shows them).
    pub(crate) fn start(
        &self,
        method: &http::Method,
        target: Option<(&str, &str)>,
        headers: &HeaderMap,
        ctx: &RequestContext,
        traced: bool,
    ) -> RequestRecord {
        let mut r = RequestRecord::new(Reporter::Source, SystemTime::now());
        r.protocol = request_protocol(headers);
        r.source = self.source.clone();
        if traced || self.logs_requests() {
            r.method = method.as_str().to_owned();
            let (authority, path) = target.unwrap_or(("", "/"));
            r.path = path.to_owned();
            r.authority = authority.to_owned();
            r.request_id = Some(ctx.request_id.clone());
            r.trace_id = Some(ctx.trace.trace_id.to_string());
        }
        r
    }
}

/// Facts learned while routing and sending, for the record.
#[derive(Default)]
pub(crate) struct CallFacts {
    pub(crate) cluster: Option<Arc<ClusterRuntime>>,
    /// The service and cluster of a call no cluster runtime served (the `BlackHoleCluster`).
    pub(crate) named: Option<(mesh_core::model::ServiceKey, mesh_core::model::ClusterName)>,
    pub(crate) request_bytes: Option<RequestBytes>,
}

/// Which endpoint of which cluster answered.
#[derive(Clone)]
pub(crate) struct UpstreamHost {
    pub(crate) cluster: Arc<ClusterRuntime>,
    pub(crate) index: usize,
}

/// A call's record, waiting in its response body for the end of the response.
pub(crate) struct RecordEnd {
    telemetry: Telemetry,
    record: RequestRecord,
    started: Instant,
    request_bytes: Option<RequestBytes>,
    /// The call's span, when traced: ended with the record.
    span: Option<crate::trace::span::SpanStart>,
}

impl RecordEnd {
    /// Completes the record with how the body ended, and records it.
    pub(crate) fn finish(self: Box<Self>, end: EndOfStream) {
        let RecordEnd {
            telemetry,
            mut record,
            started,
            request_bytes,
            span,
        } = *self;
        record.duration = started.elapsed();
        record.response_bytes = end.bytes;
        record.request_bytes = request_bytes.map_or(0, |b| b.read_bytes());
        if end.grpc_status.is_some() {
            record.grpc_status = end.grpc_status;
        }
        match end.outcome {
            BodyOutcome::Complete => {}
            BodyOutcome::Error => record
                .response_flags
                .push(ResponseFlag::UpstreamConnectionTermination),
            BodyOutcome::Dropped => record
                .response_flags
                .push(ResponseFlag::DownstreamConnectionTermination),
        }
        telemetry.record(&record);
        if let Some(span) = span {
            span.end(&record);
        }
    }
}

/// Completes `record` from the response head now and from its body when it ends, then
/// records it (and ends the call's `span`, when traced). `host` is the endpoint that answered,
/// if one did. Strips the peer's metadata headers from the response, as Envoy does.
pub(crate) fn finish(
    reporting: &Reporting,
    mut record: RequestRecord,
    started: Instant,
    facts: CallFacts,
    host: Option<UpstreamHost>,
    response: &mut Response<MeshBody>,
    span: Option<crate::trace::span::SpanStart>,
) {
    let telemetry = &reporting.telemetry;
    let cluster = facts.cluster;
    if let Some(c) = &cluster {
        record.destination_service = Some(c.cluster.service.clone());
        record.upstream_cluster = Some(c.cluster.name.clone());
    } else if let Some((service, name)) = facts.named {
        record.destination_service = Some(service);
        record.upstream_cluster = Some(name);
    }
    record.response_code = Some(response.status().as_u16());
    record.grpc_status = grpc_status(response.headers());
    if let Some(flag) = response.extensions().get::<ResponseFlag>() {
        record.response_flags.push(*flag);
    }
    let peer = response.extensions().get::<UpstreamPeer>();
    if let Some(UpstreamPeer(peer)) = peer {
        record.destination_principal = Some(peer.spiffe_id().to_string());
    }
    // The server's metadata is believed only when it proved an identity by mutual TLS; else
    // the configured endpoint stands.
    record.destination = peer
        .and_then(|_| telemetry.peer_workload(response.headers()))
        .or_else(|| host.as_ref().map(configured_workload))
        .unwrap_or_default();
    if let Some(host) = &host
        && (span.is_some() || reporting.logs_requests())
    {
        record.peer_address = host
            .cluster
            .cluster
            .endpoints
            .get(host.index)
            .map(|e| e.address.to_string());
    }
    remove_peer_metadata(response.headers_mut());
    response.body_mut().on_end_record(Box::new(RecordEnd {
        telemetry: telemetry.clone(),
        record,
        started,
        request_bytes: facts.request_bytes,
        span,
    }));
}

/// The destination workload as config describes the endpoint (when the server sent no peer
/// metadata): its namespace and its `app` / `version` labels.
fn configured_workload(host: &UpstreamHost) -> PeerWorkload {
    let cluster = &host.cluster.cluster;
    let labels = host
        .cluster
        .cluster
        .endpoints
        .get(host.index)
        .map(|e| &e.labels);
    let label = |k: &str| labels.and_then(|l| l.get(k)).cloned();
    PeerWorkload {
        name: None,
        namespace: Some(cluster.service.namespace.clone()),
        app: label("app"),
        version: label("version"),
        canonical_service: label("service.istio.io/canonical-name").or_else(|| label("app")),
        canonical_revision: label("service.istio.io/canonical-revision")
            .or_else(|| label("version")),
        cluster: None,
    }
}
