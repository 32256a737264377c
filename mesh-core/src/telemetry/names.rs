//! Istio's standard metric names, label names and histogram buckets, spelled exactly as Istio's
//! proxies export them, so existing dashboards (Grafana's Istio boards, Kiali) read mesh's
//! metrics unchanged.
//!
//! See <https://istio.io/latest/docs/reference/config/metrics/>.

/// Counter: one per request handled (`istio_requests_total`).
pub const REQUESTS_TOTAL: &str = "istio_requests_total";
/// Histogram: request duration in milliseconds.
pub const REQUEST_DURATION_MILLISECONDS: &str = "istio_request_duration_milliseconds";
/// Histogram: request body size in bytes.
pub const REQUEST_BYTES: &str = "istio_request_bytes";
/// Histogram: response body size in bytes.
pub const RESPONSE_BYTES: &str = "istio_response_bytes";

/// Counter: gRPC messages sent by clients, gRPC requests only (`istio_request_messages_total`;
/// istio/proxy `istio_stats.cc`, from Envoy's `grpc_stats` filter).
pub const REQUEST_MESSAGES_TOTAL: &str = "istio_request_messages_total";
/// Counter: gRPC messages sent by servers, gRPC requests only.
pub const RESPONSE_MESSAGES_TOTAL: &str = "istio_response_messages_total";

/// Istio's default buckets for `istio_request_duration_milliseconds`.
pub const DURATION_BUCKETS_MS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// Istio's default buckets for `istio_request_bytes` and `istio_response_bytes`: Istio's
/// bootstrap sets no `histogram_bucket_settings` for its `istiocustom` stats, so every Istio
/// histogram, the two size ones included, has Envoy's default buckets
/// (envoy `source/common/stats/histogram_impl.cc`, `HistogramSettingsImpl::defaultBuckets`),
/// the same bounds as [`DURATION_BUCKETS_MS`]: a scrape of an Istio sidecar shows
/// `istio_request_bytes_bucket{le="0.5"}` … `{le="3.6e+06"}`.
pub const BYTES_BUCKETS: [f64; 19] = DURATION_BUCKETS_MS;

/// The value of a label whose fact is not known (Istio's `unknown`).
pub const UNKNOWN: &str = "unknown";

/// Number of labels on every standard request metric.
pub const LABEL_COUNT: usize = 25;

/// The labels of the standard request metrics, in the order Istio's proxies emit them.
pub const LABEL_NAMES: [&str; LABEL_COUNT] = [
    "reporter",
    "source_workload",
    "source_canonical_service",
    "source_canonical_revision",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_cluster",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_service_name",
    "destination_service_namespace",
    "destination_cluster",
    "request_protocol",
    "response_code",
    "grpc_response_status",
    "response_flags",
    "connection_security_policy",
];

/// Counter `{result}`: configs applied or refused (emitted by `Mesh`).
pub const CONFIG_RELOADS_TOTAL: &str = "mesh_config_reloads_total";
/// Counter `{cluster}`: retries sent (emitted by the client).
pub const RETRIES_TOTAL: &str = "mesh_retries_total";
/// Counter `{cluster}`: retries not sent because the retry budget was spent.
pub const RETRY_BUDGET_EXHAUSTED_TOTAL: &str = "mesh_retry_budget_exhausted_total";
/// Counter `{cluster}`: endpoints ejected by outlier detection.
pub const OUTLIER_EJECTIONS_TOTAL: &str = "mesh_outlier_ejections_total";
