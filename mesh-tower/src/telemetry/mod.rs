//! Recording finished requests: Istio's standard metrics, the service graph and the access log.
//!
//! The client (`reporter="source"`) and the server (`reporter="destination"`) each fill in a
//! [`RequestRecord`] when a request ends and hand it to
//! [`Telemetry::record`]; that is the whole API on the request path.
//!
//! - [`RequestMetrics`]: `istio_requests_total` and the three histograms through the `metrics`
//!   facade, handles cached per label set, bounded.
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

use mesh_core::telemetry::RequestRecord;
use tokio::time::Instant;

pub use access_log::{ACCESS_LOG_TARGET, AccessLogMode, log_path, log_request, rfc3339};
pub use config_metrics::{
    CONFIG_APPLIED, CONFIG_APPLIED_TIMESTAMP, CONFIG_CLUSTERS, CONFIG_REJECTED,
    CONFIG_REJECTED_COUNT, CONFIG_WARNINGS, ISTIO_BUILD, record_build_metric,
    record_config_metrics,
};
pub use graph::{
    GraphData, GraphEdge, GraphNode, GraphWindow, LATENCY_BUCKETS, NodeId, NodeKind,
    SERVICE_NODE_VERSION, ServiceGraph, quantile,
};
pub use headers::{
    grpc_status, insert_peer_metadata, peer_metadata_headers, peer_workload, remove_peer_metadata,
    request_protocol,
};
pub use health::{CodeClass, EdgeHealth, Health, ResponseCode};
pub use istio_text::{
    flags_text, http_version_name, istio_text_line, note_request_headers, response_code_details,
};
pub use peer_cache::{PEER_CACHE_CAPACITY, PeerMetadataCache};
pub use prometheus::{install_prometheus, prometheus_builder};
pub use request_metrics::{
    DEFAULT_CAPACITY, DEFAULT_MAX_BYTES, LABEL_OVERFLOW_TOTAL, RequestMetrics,
};

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
        self.metrics.record_request(r);
        self.graph.record(r, Instant::now());
        log_request(self.access_log, r);
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
