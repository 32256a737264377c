//! Recording finished requests: Istio's standard metrics, the service graph and the access log.
//!
//! The client (`reporter="source"`) and the server (`reporter="destination"`) each fill in a
//! [`RequestRecord`] when a request ends and hand it to
//! [`Telemetry::record`]; that is the whole API on the request path.
//!
//! - [`RequestMetrics`]: `istio_requests_total` and the three histograms through the `metrics`
//!   facade, handles cached per label set, bounded.
//! - [`RecordHandles`] ([`Telemetry::resolve`]): a record's metric handles and graph edge,
//!   found once and kept (the server keeps them per connection), so a request is counted with
//!   atomics only, no lookup and no process-wide lock.
//! - [`ServiceGraph`]: recent per-edge rates and latencies for the admin `/graph` and `mesh top`,
//!   with each edge's response codes and its health as Kiali rates it ([`EdgeHealth`]).
//! - [`log_request`]: the access log, `tracing` target `mesh::access`, its message the line of
//!   Istio's default text format ([`istio_text_line`]).
//! - [`request_protocol`], [`grpc_status`], [`peer_workload`], [`insert_peer_metadata`]: the
//!   header facts a record needs, and Istio's metadata exchange; [`PeerMetadataCache`] (in
//!   every [`Telemetry`]) decodes each peer's metadata once.
//! - [`record_config_metrics`]: mesh's own `mesh_config_*` gauges.
//! - [`install_prometheus`] / [`prometheus_builder`]: an exporter with Istio's buckets.
//!
//! Metrics already emitted elsewhere keep their names: `mesh_config_reloads_total{result}`
//! (`Mesh`), `mesh_retries_total`, `mesh_retry_budget_exhausted_total` and
//! `mesh_outlier_ejections_total` (all `{cluster}`, the client), `mesh_endpoints{cluster,state}`
//! (the admin endpoint, per scrape).

mod access_log;
mod code_counts;
mod config_metrics;
mod graph;
pub(crate) mod grpc_messages;
mod headers;
mod health;
mod istio_text;
mod peer_cache;
mod prometheus;
mod request_metrics;

#[cfg(test)]
mod tests;

use std::time::Duration;

use mesh_core::telemetry::RequestRecord;
use tokio::time::Instant;

pub use access_log::{ACCESS_LOG_TARGET, AccessLogMode, log_path, log_request, rfc3339};
pub use config_metrics::{
    CONFIG_APPLIED, CONFIG_APPLIED_TIMESTAMP, CONFIG_CLUSTERS, CONFIG_REJECTED,
    CONFIG_REJECTED_COUNT, CONFIG_WARNINGS, ISTIO_BUILD, record_build_metric,
    record_config_metrics,
};
pub use graph::{
    EdgeHandle, GraphData, GraphEdge, GraphNode, GraphWindow, LATENCY_BUCKETS, NodeId, NodeKind,
    SERVICE_NODE_VERSION, ServiceGraph, quantile,
};
pub(crate) use headers::{GRPC_STATUS, PEER_METADATA};
pub use headers::{
    grpc_status, insert_peer_metadata, peer_metadata_headers, peer_workload, remove_peer_metadata,
    request_protocol,
};
pub use health::{CodeClass, EdgeHealth, Health, ResponseCode};
pub use istio_text::{
    flags_text, http_version_name, istio_text_line, note_request_headers, response_code_details,
};
pub(crate) use peer_cache::LastPeer;
pub use peer_cache::{PEER_CACHE_CAPACITY, PeerMetadataCache};
pub use prometheus::{install_prometheus, prometheus_builder};
pub use request_metrics::{
    DEFAULT_CAPACITY, DEFAULT_MAX_BYTES, LABEL_OVERFLOW_TOTAL, MetricHandles, RequestMetrics,
};

/// The metric handles and graph edge of one combination of label-determining facts
/// ([`Telemetry::resolve`]): recording through them is a few atomic updates. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RecordHandles {
    metrics: MetricHandles,
    edge: EdgeHandle,
    /// [`RequestRecord::is_error`] of the facts (a function of them).
    error: bool,
}

impl RecordHandles {
    /// Counts one finished request in the metrics and the graph (not the access log).
    pub fn record(
        &self,
        duration: Duration,
        request_bytes: u64,
        response_bytes: u64,
        now: Instant,
    ) {
        self.metrics.record(duration, request_bytes, response_bytes);
        self.edge.record(duration, self.error, now);
    }

    /// Counts a gRPC request's messages each way (`istio_request_messages_total`,
    /// `istio_response_messages_total`); nothing for label sets that are not gRPC.
    pub fn count_messages(&self, request: u64, response: u64) {
        self.metrics.count_messages(request, response);
    }

    /// Whether these handles may be kept for later requests: not when the metrics' label
    /// limit or the graph's edge limit was reached ([`MetricHandles::is_overflow`],
    /// [`EdgeHandle::is_folded`]), where each request must be looked up again.
    pub fn is_reusable(&self) -> bool {
        !self.metrics.is_overflow() && !self.edge.is_folded()
    }
}

/// Everything a finished request is recorded into. Cheap to clone: build one per process and
/// give clones to the client and the server.
#[derive(Clone, Debug, Default)]
pub struct Telemetry {
    metrics: RequestMetrics,
    graph: ServiceGraph,
    access_log: AccessLogMode,
    peers: PeerMetadataCache,
}

impl Telemetry {
    /// Metrics with the default cache capacity, a one-minute graph, every request logged.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets which requests are access-logged.
    pub fn access_log(mut self, mode: AccessLogMode) -> Self {
        self.access_log = mode;
        self
    }

    /// Uses `metrics` (e.g. with another cache capacity).
    pub fn metrics(mut self, metrics: RequestMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Uses `graph` (e.g. with other windows).
    pub fn graph(mut self, graph: ServiceGraph) -> Self {
        self.graph = graph;
        self
    }

    /// Records one finished request: metrics, graph, access log.
    pub fn record(&self, r: &RequestRecord) {
        let now = Instant::now();
        let handles = self.resolve(r, now);
        handles.record(r.duration, r.request_bytes, r.response_bytes, now);
        handles.count_messages(r.details.request_messages, r.details.response_messages);
        log_request(self.access_log, r);
    }

    /// The metric handles and the graph edge of `r`'s label-determining facts, to record
    /// later requests with the same facts without looking them up ([`RecordHandles::record`]
    /// does what [`record`](Self::record) does, but the access log). `now` as for
    /// [`ServiceGraph::edge`].
    pub fn resolve(&self, r: &RequestRecord, now: Instant) -> RecordHandles {
        RecordHandles {
            metrics: self.metrics.resolve(r),
            edge: self.graph.edge(r, now),
            error: r.is_error(),
        }
    }

    /// Whether a finished request may be access-logged: the mode is not
    /// [`AccessLogMode::Off`] and the `tracing` subscriber wants [`ACCESS_LOG_TARGET`]'s
    /// events. When it is `false`, [`log_request`] would emit nothing, and a recorder may skip
    /// gathering the facts only the log shows.
    pub fn logs_requests(&self) -> bool {
        self.access_log != AccessLogMode::Off
            && tracing::enabled!(target: ACCESS_LOG_TARGET, tracing::Level::INFO)
    }

    /// The peer's workload from its `x-envoy-peer-metadata` ([`peer_workload`]), each distinct
    /// value decoded once. The caller decides whether the peer may be believed: only a peer
    /// authenticated by mutual TLS (Istio runs metadata exchange over mTLS only).
    pub fn peer_workload(
        &self,
        headers: &http::HeaderMap,
    ) -> Option<mesh_core::telemetry::PeerWorkload> {
        self.peers.peer_workload(headers)
    }

    /// [`peer_workload`](Self::peer_workload), shared with the cache: a known peer's
    /// workload costs a lookup and a reference count, no string copies.
    pub fn peer_workload_shared(
        &self,
        headers: &http::HeaderMap,
    ) -> Option<std::sync::Arc<mesh_core::telemetry::PeerWorkload>> {
        self.peers.peer_workload_shared(headers)
    }

    /// The service graph (for the admin endpoint).
    pub fn service_graph(&self) -> &ServiceGraph {
        &self.graph
    }

    /// The request metrics.
    pub fn request_metrics(&self) -> &RequestMetrics {
        &self.metrics
    }

    /// The access log mode.
    pub fn access_log_mode(&self) -> AccessLogMode {
        self.access_log
    }
}
