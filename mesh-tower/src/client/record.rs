//! Telemetry of outbound calls: the `reporter="source"` record of each request, completed when
//! its response body ends, plus the headers a client adds (trace context, `x-request-id`, Istio's
//! peer metadata).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use http::{HeaderMap, HeaderValue, Response};
use mesh_core::Workload;
use mesh_core::identity::SpiffeId;
use mesh_core::telemetry::{
    PeerMetadata, PeerWorkload, Reporter, RequestProtocol, RequestRecord, ResponseFlag,
};
use tokio::time::Instant;

use super::body::{BodyOutcome, EndOfStream, MeshBody};
use super::pool::{EndpointPool, UpstreamPeer};
use super::runtime::ClusterRuntime;
use super::send_body::RequestBytes;
use crate::reply::ResponseDetails;
use crate::telemetry::grpc_messages::{CallMessages, ResponseMessages};
use crate::telemetry::{
    RecordHandles, Telemetry, grpc_status, insert_peer_metadata, log_request, remove_peer_metadata,
    request_protocol,
};
use crate::trace::TraceContext;

/// Istio's default cluster id, used in peer metadata.
const CLUSTER_ID: &str = "Kubernetes";

/// Most label combinations whose telemetry handles a cluster keeps; past it, further
/// combinations are looked up per call, as without the cache.
const MAX_RESOLVED: usize = 16;

/// What the client knows of itself for telemetry, computed once.
pub(crate) struct Reporting {
    pub(crate) telemetry: Telemetry,
    /// Shared by every record's key: compared by identity, copied only into a built record.
    source: Arc<PeerWorkload>,
    metadata: Option<(HeaderValue, HeaderValue)>,
    /// Our own SPIFFE id, reported as `source_principal` on calls made over mutual TLS (Istio's
    /// client sidecar reports its certificate's URI SAN).
    local_principal: Option<Arc<str>>,
}

impl Reporting {
    pub(crate) fn new(telemetry: Telemetry, workload: &Workload, domain_suffix: &str) -> Self {
        let metadata = crate::telemetry::peer_metadata_headers(
            &PeerMetadata::from_workload(workload, CLUSTER_ID),
            domain_suffix,
        );
        Self {
            telemetry,
            source: Arc::new(PeerWorkload::from_workload(workload, CLUSTER_ID)),
            metadata,
            local_principal: None,
        }
    }

    /// Reports `principal` (ours) as `source_principal` of calls made over mutual TLS.
    pub(crate) fn with_local_principal(mut self, principal: Option<String>) -> Self {
        self.local_principal = principal.map(Arc::from);
        self
    }

    /// Adds our peer metadata to an outgoing request, as Istio's sidecars do.
    pub(crate) fn add_metadata(&self, headers: &mut HeaderMap) {
        if let Some((encoded, id)) = &self.metadata {
            insert_peer_metadata(headers, encoded, id);
        }
    }

    /// The start of a request being sent now; `target` is its authority and path, `headers`
    /// its headers with the trace context and request id written. The facts
    /// only the access log shows (method, path, authority, request id, trace id, endpoint
    /// address) are copied only when it may write them ([`Telemetry::logs_requests`]) or the
    /// call is `traced` (its span shows them).
    pub(crate) fn start(
        &self,
        method: &http::Method,
        target: Option<(&str, &str)>,
        headers: &HeaderMap,
        trace: &TraceContext,
        traced: bool,
    ) -> Started {
        let logged = (traced || self.telemetry.logs_requests()).then(|| {
            let mut r = RequestRecord::new(Reporter::Source, SystemTime::now());
            r.method = method.as_str().to_owned();
            let (authority, path) = target.unwrap_or(("", "/"));
            r.path = path.to_owned();
            r.authority = authority.to_owned();
            // The call's id, as `trace::outbound_trace` left it in the headers.
            r.request_id = headers
                .get(crate::trace::X_REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            r.trace_id = Some(trace.trace_id.to_string());
            crate::telemetry::note_request_headers(&mut r, headers);
            Box::new(r)
        });
        Started {
            protocol: request_protocol(headers),
            logged,
        }
    }
}

/// What is known of a call when it is sent.
pub(crate) struct Started {
    protocol: RequestProtocol,
    /// The record the access log would write, when it may, or the span shows.
    logged: Option<Box<RequestRecord>>,
}

impl Started {
    /// Whether the call is gRPC (its request's `content-type`), as Istio's stats filter decides
    /// it (`Grpc::Common::isGrpcRequestHeaders`).
    pub(crate) fn is_grpc(&self) -> bool {
        self.protocol == RequestProtocol::Grpc
    }
}

/// Facts learned while routing and sending, for the record.
#[derive(Default)]
pub(crate) struct CallFacts {
    pub(crate) cluster: Option<Arc<ClusterRuntime>>,
    /// The service and cluster of a call no cluster runtime served (the `BlackHoleCluster`).
    pub(crate) named: Option<(mesh_core::model::ServiceKey, mesh_core::model::ClusterName)>,
    pub(crate) request_bytes: Option<RequestBytes>,
    /// A gRPC call's message counts ([`crate::telemetry::grpc_messages`]).
    pub(crate) messages: Option<Arc<CallMessages>>,
}

/// Which endpoint of which cluster answered.
#[derive(Clone)]
pub(crate) struct UpstreamHost {
    pub(crate) cluster: Arc<ClusterRuntime>,
    pub(crate) index: usize,
}

impl UpstreamHost {
    /// The endpoint's connections.
    fn pool(&self) -> Option<&EndpointPool> {
        self.cluster.pools.get(self.index).map(AsRef::as_ref)
    }
}

/// The destination workload of a record, as far as it labels it.
#[derive(Clone)]
enum Destination {
    /// What the server's peer metadata says (shared with the peer metadata cache).
    Peer(Arc<PeerWorkload>),
    /// What config says of the endpoint that answered.
    Endpoint(UpstreamHost),
    Unknown,
}

/// What varies between the records of one cluster's calls and labels them: every fact of a
/// record the metrics and the graph read, but its cluster's (the cache's owner).
#[derive(Clone)]
struct Key {
    /// The reporting client's workload; compared by identity.
    source: Arc<PeerWorkload>,
    protocol: RequestProtocol,
    response_code: Option<u16>,
    grpc_status: Option<i32>,
    flags: Vec<ResponseFlag>,
    /// The server's SPIFFE id, when it proved one by mutual TLS.
    principal: Option<SpiffeId>,
    destination: Destination,
}

impl Key {
    fn same(&self, other: &Key) -> bool {
        let destination = match (&self.destination, &other.destination) {
            (Destination::Peer(a), Destination::Peer(b)) => Arc::ptr_eq(a, b),
            (Destination::Endpoint(a), Destination::Endpoint(b)) => {
                Arc::ptr_eq(&a.cluster, &b.cluster) && a.index == b.index
            }
            (Destination::Unknown, Destination::Unknown) => true,
            _ => false,
        };
        destination
            && Arc::ptr_eq(&self.source, &other.source)
            && self.protocol == other.protocol
            && self.response_code == other.response_code
            && self.grpc_status == other.grpc_status
            && self.flags == other.flags
            && self.principal == other.principal
    }
}

impl Key {
    /// Whether the calls of `self` and `other` have the same gRPC message series, which do
    /// not carry the response's code, status and flags.
    fn same_stream(&self, other: &Key) -> bool {
        let destination = match (&self.destination, &other.destination) {
            (Destination::Peer(a), Destination::Peer(b)) => Arc::ptr_eq(a, b),
            (Destination::Endpoint(a), Destination::Endpoint(b)) => {
                Arc::ptr_eq(&a.cluster, &b.cluster) && a.index == b.index
            }
            (Destination::Unknown, Destination::Unknown) => true,
            _ => false,
        };
        destination
            && Arc::ptr_eq(&self.source, &other.source)
            && self.protocol == other.protocol
            && self.principal == other.principal
    }
}

/// The gRPC message counters of a stream series, if gRPC's.
type StreamCounters = Option<(metrics::Counter, metrics::Counter)>;

/// The telemetry handles of one cluster's calls by [`Key`], resolved once each
/// ([`Telemetry::resolve`]), so that a call with known labels is recorded with a few atomic
/// updates instead of a record's worth of string copies and lookups; and likewise the gRPC
/// message counters of its streams.
#[derive(Default)]
pub(crate) struct RecordCache {
    resolved: Mutex<Vec<(Key, RecordHandles)>>,
    streams: Mutex<Vec<(Key, StreamCounters)>>,
}

impl RecordCache {
    fn stream_counters(
        &self,
        key: &Key,
        resolve: impl FnOnce() -> StreamCounters,
    ) -> StreamCounters {
        let lock = || self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, c)) = lock().iter().find(|(k, _)| k.same_stream(key)) {
            return c.clone();
        }
        let counters = resolve();
        let mut streams = lock();
        if streams.len() < MAX_RESOLVED {
            streams.push((key.clone(), counters.clone()));
        }
        counters
    }

    fn handles(&self, key: &Key, resolve: impl FnOnce() -> RecordHandles) -> RecordHandles {
        if let Some((_, h)) = self.lock().iter().find(|(k, _)| k.same(key)) {
            return h.clone();
        }
        let handles = resolve();
        if handles.is_reusable() {
            let mut resolved = self.lock();
            if resolved.len() < MAX_RESOLVED {
                resolved.push((key.clone(), handles.clone()));
            }
        }
        handles
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Key, RecordHandles)>> {
        self.resolved.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where a call went, for the record's destination service and cluster.
enum Upstream {
    Cluster(Arc<ClusterRuntime>),
    /// Boxed: only the blackhole's calls have one, and every call's record carries this.
    Named(Box<(mesh_core::model::ServiceKey, mesh_core::model::ClusterName)>),
    None,
}

/// A call's record, waiting in its response body for the end of the response.
pub(crate) struct RecordEnd {
    /// The client's telemetry and identity (shared: a record is one pointer to them).
    reporting: Arc<Reporting>,
    key: Key,
    upstream: Upstream,
    started: Instant,
    request_bytes: Option<RequestBytes>,
    logged: Option<Box<RequestRecord>>,
    /// The call's span, when traced: ended with the record.
    span: Option<crate::trace::span::SpanStart>,
}

impl RecordEnd {
    /// Completes the record with how the body ended, and records it: through its cluster's
    /// handles for its labels, and in the access log if it is written.
    pub(crate) fn finish(self, end: EndOfStream, now: Instant) {
        let RecordEnd {
            reporting,
            mut key,
            upstream,
            started,
            request_bytes,
            logged,
            span,
        } = self;
        let telemetry = &reporting.telemetry;
        let local_principal = &reporting.local_principal;
        let duration = now.saturating_duration_since(started);
        let request_bytes = request_bytes.map_or(0, |b| b.read_bytes());
        if end.grpc_status.is_some() {
            key.grpc_status = end.grpc_status;
        }
        match end.outcome {
            BodyOutcome::Complete => {}
            BodyOutcome::Error => key.flags.push(ResponseFlag::UpstreamConnectionTermination),
            BodyOutcome::Dropped => key
                .flags
                .push(ResponseFlag::DownstreamConnectionTermination),
        }
        let resolve = || {
            let mut record = RequestRecord::new(Reporter::Source, SystemTime::now());
            describe(&mut record, &key, &upstream, local_principal.as_deref());
            telemetry.resolve(&record, now)
        };
        let handles = match &upstream {
            Upstream::Cluster(c) => c.records.handles(&key, resolve),
            Upstream::Named(..) | Upstream::None => resolve(),
        };
        handles.record(duration, request_bytes, end.bytes, now);
        if let Some(mut record) = logged {
            describe(&mut record, &key, &upstream, local_principal.as_deref());
            record.duration = duration;
            record.request_bytes = request_bytes;
            record.response_bytes = end.bytes;
            if telemetry.logs_requests() {
                log_request(telemetry.access_log_mode(), &record);
            }
            if let Some(span) = span {
                span.end(&record);
            }
        }
    }
}

/// Fills in the label-determining facts of a record.
fn describe(
    record: &mut RequestRecord,
    key: &Key,
    upstream: &Upstream,
    local_principal: Option<&str>,
) {
    record.protocol = key.protocol;
    record.source = PeerWorkload::clone(&key.source);
    match upstream {
        Upstream::Cluster(c) => {
            record.destination_service = Some(c.cluster.service.clone());
            record.upstream_cluster = Some(c.cluster.name.clone());
        }
        Upstream::Named(named) => {
            let (service, name) = &**named;
            record.destination_service = Some(service.clone());
            record.upstream_cluster = Some(name.clone());
        }
        Upstream::None => {}
    }
    record.response_code = key.response_code;
    record.grpc_status = key.grpc_status;
    record.response_flags.clone_from(&key.flags);
    record.destination_principal = key.principal.as_ref().map(ToString::to_string);
    // Our certificate was presented only on a mutual-TLS connection (the server proved its
    // identity, so ours was asked for too).
    record.source_principal = key
        .principal
        .as_ref()
        .and(local_principal)
        .map(str::to_owned);
    record.destination = match &key.destination {
        Destination::Peer(w) => PeerWorkload::clone(w),
        Destination::Endpoint(host) => configured_workload(host),
        Destination::Unknown => PeerWorkload::default(),
    };
    // The server's namespace from its certificate, and `latest` as its default revision, as
    // Istio's stats filter fills them in.
    record
        .destination
        .complete_from_principal(record.destination_principal.as_deref());
}

/// Completes the call's record from the response head now and from its body when it ends,
/// then records it (and ends the call's `span`, when traced). `host` is the endpoint that
/// answered, if one did. Strips the peer's
/// metadata headers from the response, as Envoy does.
pub(crate) fn finish(
    reporting: &Arc<Reporting>,
    start: Started,
    started: Instant,
    facts: CallFacts,
    host: Option<UpstreamHost>,
    response: &mut Response<MeshBody>,
    span: Option<crate::trace::span::SpanStart>,
) {
    let telemetry = &reporting.telemetry;
    let upstream = match (facts.cluster, facts.named) {
        (Some(c), _) => Upstream::Cluster(c),
        (None, Some(named)) => Upstream::Named(Box::new(named)),
        (None, None) => Upstream::None,
    };
    let mut flags = Vec::new();
    if let Some(flag) = response.extensions().get::<ResponseFlag>() {
        // The client gives up with URX only after connection failures (`attempt.rs`); Envoy
        // then writes both flags, `UF,URX`, in its table order.
        if *flag == ResponseFlag::UpstreamRetryLimitExceeded {
            flags.push(ResponseFlag::UpstreamConnectionFailure);
        }
        flags.push(*flag);
    }
    let principal = response
        .extensions()
        .get::<UpstreamPeer>()
        .map(|UpstreamPeer(peer)| peer.spiffe_id().clone());
    // The server's metadata is believed only when it proved an identity by mutual TLS; else
    // the configured endpoint stands.
    let destination = principal
        .as_ref()
        .and_then(|_| match host.as_ref().and_then(UpstreamHost::pool) {
            Some(pool) => pool.peer_workload(response.headers(), telemetry),
            None => telemetry.peer_workload_shared(response.headers()),
        })
        .map(Destination::Peer)
        .or_else(|| host.clone().map(Destination::Endpoint))
        .unwrap_or(Destination::Unknown);
    let key = Key {
        source: reporting.source.clone(),
        protocol: start.protocol,
        response_code: Some(response.status().as_u16()),
        grpc_status: grpc_status(response.headers()),
        flags,
        principal,
        destination,
    };
    let mut logged = start.logged;
    if let Some(record) = &mut logged {
        record.details.http_version = crate::telemetry::http_version_name(response.version());
        if let Some(ResponseDetails(d)) = response.extensions().get::<ResponseDetails>() {
            record.details.response_code_details = Some((*d).to_owned());
        }
        if let Some(host) = &host {
            record.peer_address = host
                .cluster
                .cluster
                .endpoints
                .get(host.index)
                .map(|e| e.address.to_string());
        }
    }
    remove_peer_metadata(response.headers_mut());
    if let Some(call) = facts.messages {
        // The response head names the peer, and so the call's message series: report from now.
        let local_principal = reporting.local_principal.as_deref();
        let resolve = || {
            let mut record = RequestRecord::new(Reporter::Source, SystemTime::now());
            describe(&mut record, &key, &upstream, local_principal);
            telemetry.request_metrics().stream_counters(&record)
        };
        let counters = match &upstream {
            Upstream::Cluster(c) => c.records.stream_counters(&key, resolve),
            Upstream::Named(..) | Upstream::None => resolve(),
        };
        call.attach(counters);
        response
            .body_mut()
            .count_messages(ResponseMessages::new(call));
    }
    response.body_mut().on_end_record(RecordEnd {
        reporting: reporting.clone(),
        key,
        upstream,
        started,
        request_bytes: facts.request_bytes,
        logged,
        span,
    });
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
