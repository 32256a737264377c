//! DestinationRule.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{PortSelector, WorkloadSelector};
use crate::istio::decode::NotImplemented;

/// `spec` of a DestinationRule.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DestinationRuleSpec {
    pub(crate) host: Option<String>,
    pub(crate) traffic_policy: Option<TrafficPolicy>,
    #[serde(default)]
    pub(crate) subsets: Vec<Subset>,
    #[serde(default)]
    pub(crate) export_to: Vec<String>,
    pub(crate) workload_selector: Option<WorkloadSelector>,
}

/// A subset.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Subset {
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) traffic_policy: Option<TrafficPolicy>,
}

/// `trafficPolicy`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TrafficPolicy {
    pub(crate) load_balancer: Option<LoadBalancerSettings>,
    pub(crate) connection_pool: Option<ConnectionPoolSettings>,
    pub(crate) outlier_detection: Option<OutlierDetectionSettings>,
    pub(crate) tls: Option<ClientTlsSettings>,
    #[serde(default)]
    pub(crate) port_level_settings: Vec<PortTrafficPolicy>,
    pub(crate) tunnel: NotImplemented,
    pub(crate) proxy_protocol: NotImplemented,
    pub(crate) retry_budget: Option<RetryBudgetSettings>,
}

/// `trafficPolicy.retryBudget`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RetryBudgetSettings {
    pub(crate) percent: Option<f64>,
    pub(crate) min_retry_concurrency: Option<u32>,
    pub(crate) budget_interval: NotImplemented,
}

/// `portLevelSettings[]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PortTrafficPolicy {
    pub(crate) port: Option<PortSelector>,
    pub(crate) load_balancer: Option<LoadBalancerSettings>,
    pub(crate) connection_pool: Option<ConnectionPoolSettings>,
    pub(crate) outlier_detection: Option<OutlierDetectionSettings>,
    pub(crate) tls: Option<ClientTlsSettings>,
}

/// `loadBalancer`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LoadBalancerSettings {
    pub(crate) simple: Option<SimpleLb>,
    pub(crate) consistent_hash: Option<ConsistentHash>,
    pub(crate) locality_lb_setting: Option<LocalityLbSetting>,
    pub(crate) warmup_duration_secs: Option<String>,
    pub(crate) warmup: Option<Warmup>,
}

/// `loadBalancer.warmup`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Warmup {
    pub(crate) duration: Option<String>,
    pub(crate) minimum_percent: Option<f64>,
    pub(crate) aggression: Option<f64>,
}

/// `loadBalancer.simple`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum SimpleLb {
    Unspecified,
    LeastConn,
    Random,
    Passthrough,
    RoundRobin,
    LeastRequest,
}

/// `loadBalancer.consistentHash`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConsistentHash {
    pub(crate) http_header_name: Option<String>,
    pub(crate) http_cookie: Option<HttpCookie>,
    pub(crate) use_source_ip: Option<bool>,
    pub(crate) http_query_parameter_name: Option<String>,
    pub(crate) ring_hash: Option<RingHash>,
    pub(crate) maglev: Option<Maglev>,
    pub(crate) minimum_ring_size: Option<u64>,
}

/// `consistentHash.httpCookie`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HttpCookie {
    pub(crate) name: Option<String>,
    pub(crate) path: Option<String>,
    pub(crate) ttl: Option<String>,
    pub(crate) attributes: NotImplemented,
}

/// `consistentHash.ringHash`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RingHash {
    pub(crate) minimum_ring_size: Option<u64>,
}

/// `consistentHash.maglev`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Maglev {
    pub(crate) table_size: Option<u64>,
}

/// `loadBalancer.localityLbSetting`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LocalityLbSetting {
    #[serde(default)]
    pub(crate) distribute: Vec<LocalityDistribute>,
    #[serde(default)]
    pub(crate) failover: Vec<LocalityFailover>,
    #[serde(default)]
    pub(crate) failover_priority: Vec<String>,
    pub(crate) enabled: Option<bool>,
}

/// `localityLbSetting.distribute[]`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct LocalityDistribute {
    pub(crate) from: Option<String>,
    #[serde(default)]
    pub(crate) to: BTreeMap<String, u32>,
}

/// `localityLbSetting.failover[]`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct LocalityFailover {
    pub(crate) from: Option<String>,
    pub(crate) to: Option<String>,
}

/// `connectionPool`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct ConnectionPoolSettings {
    pub(crate) tcp: Option<TcpSettings>,
    pub(crate) http: Option<HttpSettings>,
}

/// `connectionPool.tcp`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TcpSettings {
    pub(crate) max_connections: Option<u32>,
    pub(crate) connect_timeout: Option<String>,
    pub(crate) tcp_keepalive: Option<TcpKeepalive>,
    pub(crate) max_connection_duration: Option<String>,
    pub(crate) idle_timeout: Option<String>,
}

/// `connectionPool.tcp.tcpKeepalive`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct TcpKeepalive {
    pub(crate) probes: Option<u32>,
    pub(crate) time: Option<String>,
    pub(crate) interval: Option<String>,
}

/// `connectionPool.http.http2KeepAlive`.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct Http2KeepAlive {
    pub(crate) interval: Option<String>,
    pub(crate) timeout: Option<String>,
}

/// `connectionPool.http`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HttpSettings {
    pub(crate) http1_max_pending_requests: Option<u32>,
    pub(crate) http2_max_requests: Option<u32>,
    pub(crate) max_requests_per_connection: Option<u32>,
    pub(crate) max_retries: Option<u32>,
    pub(crate) idle_timeout: Option<String>,
    pub(crate) h2_upgrade_policy: Option<H2UpgradePolicy>,
    pub(crate) use_client_protocol: Option<bool>,
    pub(crate) max_concurrent_streams: NotImplemented,
    pub(crate) http2_keep_alive: Option<Http2KeepAlive>,
}

/// `http.h2UpgradePolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum H2UpgradePolicy {
    Default,
    DoNotUpgrade,
    Upgrade,
}

/// `outlierDetection`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OutlierDetectionSettings {
    pub(crate) split_external_local_origin_errors: Option<bool>,
    pub(crate) consecutive_local_origin_failures: Option<u32>,
    pub(crate) consecutive_gateway_errors: Option<u32>,
    #[serde(rename = "consecutive5xxErrors")]
    pub(crate) consecutive_5xx_errors: Option<u32>,
    pub(crate) consecutive_errors: Option<u32>,
    pub(crate) interval: Option<String>,
    pub(crate) base_ejection_time: Option<String>,
    pub(crate) max_ejection_percent: Option<u32>,
    pub(crate) min_health_percent: Option<u32>,
}

/// `tls`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ClientTlsSettings {
    pub(crate) mode: Option<TlsModeSetting>,
    pub(crate) client_certificate: Option<String>,
    pub(crate) private_key: Option<String>,
    pub(crate) ca_certificates: Option<String>,
    pub(crate) credential_name: Option<String>,
    #[serde(default)]
    pub(crate) subject_alt_names: Vec<String>,
    pub(crate) sni: Option<String>,
    pub(crate) insecure_skip_verify: NotImplemented,
    pub(crate) ca_crl: NotImplemented,
}

/// `tls.mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum TlsModeSetting {
    Disable,
    Simple,
    Mutual,
    IstioMutual,
}
