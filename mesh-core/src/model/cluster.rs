//! Clusters: where a route sends traffic, and how.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

/// A cluster name in Istio's form: `outbound|<port>|<subset>|<fqdn>` (subset empty for the whole
/// service). Cheap to clone.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ClusterName(Arc<str>);

impl ClusterName {
    /// The outbound cluster name for a service port and optional subset.
    ///
    /// ```
    /// use mesh_core::model::ClusterName;
    /// let name = ClusterName::outbound("reviews.default.svc.cluster.local", 9080, Some("v1"));
    /// assert_eq!(name.as_str(), "outbound|9080|v1|reviews.default.svc.cluster.local");
    /// ```
    pub fn outbound(host: &str, port: u16, subset: Option<&str>) -> Self {
        Self(format!("outbound|{port}|{}|{host}", subset.unwrap_or("")).into())
    }

    /// Wraps any name (an xDS control plane may use its own scheme).
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self(name.into())
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Splits an Istio-form name into (port, subset, host); `None` for other forms.
    pub fn parse_outbound(&self) -> Option<(u16, Option<&str>, &str)> {
        let mut parts = self.0.splitn(4, '|');
        if parts.next()? != "outbound" {
            return None;
        }
        let port = parts.next()?.parse().ok()?;
        let subset = parts.next()?;
        let host = parts.next()?;
        Some((port, (!subset.is_empty()).then_some(subset), host))
    }
}

impl fmt::Debug for ClusterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for ClusterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The service a cluster belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct ServiceKey {
    /// Fully qualified host, e.g. `reviews.default.svc.cluster.local`.
    pub host: String,
    /// Namespace the service lives in (the ServiceEntry's), used for telemetry labels.
    pub namespace: String,
    /// Service port.
    pub port: u16,
    /// Subset name, if this cluster is a subset.
    pub subset: Option<String>,
}

/// Application protocol of a service port, from its `protocol` or name prefix (Istio's
/// protocol selection).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Protocol {
    /// HTTP/1.1 (or HTTP/2 when the client speaks it).
    Http,
    /// HTTP/2, cleartext or TLS.
    Http2,
    /// gRPC (HTTP/2).
    Grpc,
    /// Opaque TCP.
    Tcp,
    /// TLS passthrough.
    Tls,
    /// Not declared: sniffed or treated as HTTP.
    Unspecified,
}

impl Protocol {
    /// Reads Istio's protocol names (`HTTP`, `HTTP2`, `GRPC`, `GRPC-Web`, `TCP`, `TLS`, `HTTPS`,
    /// `Mongo`, …) case-insensitively; `None` for unknown names.
    pub fn from_istio(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "http" => Protocol::Http,
            "http2" => Protocol::Http2,
            "grpc" | "grpc-web" => Protocol::Grpc,
            "tcp" | "mongo" | "mysql" | "redis" => Protocol::Tcp,
            "tls" | "https" => Protocol::Tls,
            _ => return None,
        })
    }

    /// Whether calls must use HTTP/2.
    pub fn requires_h2(self) -> bool {
        matches!(self, Protocol::Http2 | Protocol::Grpc)
    }
}

/// How a service's endpoints are found (ServiceEntry `resolution`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Resolution {
    /// Endpoints are IP addresses given in config.
    Static,
    /// Endpoints are host names resolved by DNS at connect time.
    Dns,
    /// Connect to the address the caller asked for.
    None,
}

/// One cluster: the endpoints of a service port (or subset of it) and the policies for calling it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cluster {
    /// Istio-form name.
    pub name: ClusterName,
    /// The service, port and subset it stands for.
    pub service: ServiceKey,
    /// Application protocol of the port.
    pub protocol: Protocol,
    /// How endpoints are resolved.
    pub resolution: Resolution,
    /// Endpoints, subset labels already applied.
    pub endpoints: Arc<[Endpoint]>,
    /// Load-balancing policy.
    pub lb: LbPolicy,
    /// Locality-aware balancing configured on the client side (Istio's `localityLbSetting`).
    pub locality_lb: LocalityLbSetting,
    /// Whether the control plane's locality weights ([`Endpoint::locality_weight`]) are used:
    /// within a priority level a locality is chosen by weight × availability, then an endpoint
    /// within it (Envoy's `common_lb_config.locality_weighted_lb_config`). Istio files leave it
    /// off; when on, client-side `locality_lb` is not applied (the control plane already did).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub locality_weighted_lb: bool,
    /// Upstream TLS.
    pub tls: UpstreamTls,
    /// Connection-pool limits (the circuit breaker).
    pub connection_pool: ConnectionPool,
    /// Outlier detection, when configured.
    pub outlier: Option<OutlierDetection>,
    /// The retry budget that caps concurrent retries into this cluster.
    pub retry_budget: RetryBudget,
    /// Slow start (`loadBalancer.warmup`): a new endpoint's weight ramps up over a window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slow_start: Option<SlowStart>,
}

/// Envoy's slow start (`slow_start_config`), which Istio's `loadBalancer.warmup` sets: an
/// endpoint that joined less than `window` ago takes a share of its weight that grows with its
/// age, `max(min_weight_percent / 100, (age / window) ^ (1 / aggression))`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SlowStart {
    /// How long an endpoint is in slow start.
    #[serde(serialize_with = "super::duration::serialize")]
    pub window: Duration,
    /// How fast the weight ramps: 1.0 is linear, higher is faster at first.
    pub aggression: f64,
    /// The least share of its weight an endpoint gets, in percent.
    pub min_weight_percent: f64,
}

impl Eq for SlowStart {}

impl std::hash::Hash for SlowStart {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.window.hash(state);
        self.aggression.to_bits().hash(state);
        self.min_weight_percent.to_bits().hash(state);
    }
}

impl Cluster {
    /// Whether a pick chooses a locality by the control plane's weights before an endpoint:
    /// when the cluster turns them on ([`locality_weighted_lb`](Self::locality_weighted_lb), Envoy's
    /// rule), or when any endpoint carries an explicit [`Endpoint::locality_weight`]. gRPC always
    /// uses locality weights, and istiod does not set the flag for gRPC nodes, so its
    /// `distribute` weights reach a mesh workload only as explicit weights; a weight equal to the
    /// locality's endpoint sum is no weight (`None`), and Istio files never set one.
    pub fn uses_locality_weights(&self) -> bool {
        self.locality_weighted_lb || self.endpoints.iter().any(|e| e.locality_weight.is_some())
    }
}

/// Where an endpoint is reached.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointAddress {
    /// An IP address and port.
    Socket(SocketAddr),
    /// A DNS name and port, resolved when connecting.
    Dns {
        /// Host name.
        host: String,
        /// Port.
        port: u16,
    },
    /// A unix domain socket (Istio's `unix:///path`; `@name` is an abstract socket).
    Unix {
        /// Socket path.
        path: String,
    },
}

impl fmt::Display for EndpointAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointAddress::Socket(a) => write!(f, "{a}"),
            EndpointAddress::Dns { host, port } => write!(f, "{host}:{port}"),
            EndpointAddress::Unix { path } => write!(f, "unix://{path}"),
        }
    }
}

/// Locality: region / zone / subzone, as in `us-east1/us-east1-b/rack7`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Locality {
    /// Region.
    pub region: String,
    /// Zone.
    pub zone: String,
    /// Sub-zone.
    pub subzone: String,
}

impl Locality {
    /// Parses Istio's `region/zone/subzone` form (missing parts empty).
    pub fn parse(s: &str) -> Self {
        let mut parts = s.splitn(3, '/').map(str::to_owned);
        Self {
            region: parts.next().unwrap_or_default(),
            zone: parts.next().unwrap_or_default(),
            subzone: parts.next().unwrap_or_default(),
        }
    }

    /// Whether no part is set.
    pub fn is_empty(&self) -> bool {
        self.region.is_empty() && self.zone.is_empty() && self.subzone.is_empty()
    }
}

impl fmt::Display for Locality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.region, self.zone, self.subzone)
    }
}

/// Health as the control plane reports it (outlier ejection is runtime state, kept elsewhere).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HealthStatus {
    /// Serving.
    #[default]
    Healthy,
    /// Not serving; never picked.
    Unhealthy,
    /// Shutting down: finish what is open, send nothing new.
    Draining,
}

/// One endpoint of a cluster.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Endpoint {
    /// Where to connect.
    pub address: EndpointAddress,
    /// Workload labels (`app`, `version`, …).
    pub labels: BTreeMap<String, String>,
    /// Relative weight for balancing (at least 1).
    pub weight: u32,
    /// Where it runs.
    pub locality: Locality,
    /// The SPIFFE identity the endpoint is expected to present, from its service account.
    pub identity: Option<String>,
    /// Health from config.
    pub health: HealthStatus,
    /// Priority level the control plane gave the endpoint (EDS `LocalityLbEndpoints.priority`):
    /// 0 is preferred, higher levels take traffic as lower ones lose health. Istio files leave
    /// it 0 (client-side `localityLbSetting` computes levels instead). When any endpoint of a
    /// cluster has a non-zero priority, these are the levels and client-side failover is off.
    #[serde(skip_serializing_if = "is_zero")]
    pub priority: u32,
    /// The weight of the endpoint's locality within its priority level (EDS
    /// `LocalityLbEndpoints.load_balancing_weight`), used when the cluster's
    /// [`locality_weighted_lb`](Cluster::locality_weighted_lb) is on. `None` means the sum of
    /// the weights of the locality's endpoints at that level, which is what istiod sends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locality_weight: Option<u32>,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

/// The key a consistent-hash balancer hashes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HashKey {
    /// A request header's value.
    Header(String),
    /// An HTTP cookie's value (generated with this TTL when absent and a TTL is set).
    Cookie {
        /// Cookie name.
        name: String,
        /// Path attribute for a generated cookie.
        path: Option<String>,
        /// Lifetime of a generated cookie.
        #[serde(serialize_with = "super::duration::serialize_opt")]
        ttl: Option<Duration>,
    },
    /// The caller's IP address.
    SourceIp,
    /// A query parameter's value.
    QueryParameter(String),
}

/// Load-balancing policy (DestinationRule `loadBalancer`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE", tag = "policy")]
pub enum LbPolicy {
    /// Power of two choices on in-flight requests (Envoy's and Istio's default).
    LeastRequest,
    /// Weighted round robin.
    RoundRobin,
    /// Uniform (weighted) random.
    Random,
    /// Power of two choices on peak-EWMA latency × in-flight (linkerd's and Finagle's).
    PeakEwma,
    /// Consistent hashing on a ring (Ketama).
    RingHash {
        /// What to hash.
        key: HashKey,
        /// Minimum number of ring entries.
        minimum_ring_size: u64,
    },
    /// Consistent hashing with Maglev's lookup table.
    Maglev {
        /// What to hash.
        key: HashKey,
        /// Table size (a prime).
        table_size: u64,
    },
}

/// One failover rule of `localityLbSetting.failover`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct LocalityFailover {
    /// Region that fails over.
    pub from: String,
    /// Region it fails over to.
    pub to: String,
}

/// Locality-aware balancing (`localityLbSetting`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct LocalityLbSetting {
    /// Prefer the caller's locality and fail over by priority.
    pub enabled: bool,
    /// Explicit weighted distribution: from locality pattern → (to locality pattern → percent).
    pub distribute: Vec<(String, BTreeMap<String, u32>)>,
    /// Region failover order.
    pub failover: Vec<LocalityFailover>,
    /// Labels whose equality with the caller's raises an endpoint's priority.
    pub failover_priority: Vec<String>,
}

/// TLS towards the upstream (DestinationRule `tls.mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TlsMode {
    /// Plaintext.
    Disable,
    /// TLS verifying the server only.
    Simple,
    /// Mutual TLS with certificates named in the rule.
    Mutual,
    /// Mutual TLS with the workload's own mesh identity (Istio's default inside the mesh).
    IstioMutual,
}

/// Upstream TLS settings of a cluster.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct UpstreamTls {
    /// Mode.
    pub mode: TlsMode,
    /// SNI to send, if any.
    pub sni: Option<String>,
    /// Identities (SPIFFE IDs or DNS SANs) the server may present; empty means any identity of
    /// the trust domain (ISTIO_MUTUAL) or normal hostname verification (SIMPLE).
    pub subject_alt_names: Vec<String>,
    /// Client certificate for MUTUAL.
    pub client_certificate: Option<String>,
    /// Client key for MUTUAL.
    pub private_key: Option<String>,
    /// CA bundle for SIMPLE / MUTUAL.
    pub ca_certificates: Option<String>,
    /// `credentialName`: the Secret holding the client certificate, key and CA, with its
    /// contents when found (never shown by `Debug` or in a config dump).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<TlsCredential>,
}

/// Key material a `credentialName` resolved to: PEM text as istio-agent's SDS serves it
/// (certificate and key from the Secret `<name>`, CA from `<name>-cacert` or else `<name>`).
/// Its contents are secret: `Debug` and `Serialize` show only the name and which parts exist.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TlsCredential {
    /// The `credentialName`.
    pub name: String,
    /// Certificate chain PEM, if the Secret has one.
    pub cert_chain: Option<Arc<str>>,
    /// Private key PEM, if the Secret has one.
    pub private_key: Option<Arc<str>>,
    /// CA bundle PEM, if found.
    pub ca_certificates: Option<Arc<str>>,
}

impl TlsCredential {
    fn parts(&self) -> [(&'static str, bool); 3] {
        [
            ("cert_chain", self.cert_chain.is_some()),
            ("private_key", self.private_key.is_some()),
            ("ca_certificates", self.ca_certificates.is_some()),
        ]
    }
}

impl fmt::Debug for TlsCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TlsCredential");
        d.field("name", &self.name);
        for (part, present) in self.parts() {
            d.field(part, &if present { "<redacted>" } else { "<none>" });
        }
        d.finish()
    }
}

impl Serialize for TlsCredential {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("TlsCredential", 4)?;
        st.serialize_field("name", &self.name)?;
        for (part, present) in self.parts() {
            st.serialize_field(part, &present)?;
        }
        st.end()
    }
}

impl UpstreamTls {
    /// ISTIO_MUTUAL with no explicit SANs: what Istio uses inside the mesh.
    pub fn istio_mutual() -> Self {
        Self {
            mode: TlsMode::IstioMutual,
            sni: None,
            subject_alt_names: Vec::new(),
            client_certificate: None,
            private_key: None,
            ca_certificates: None,
            credential: None,
        }
    }
}

/// Connection-pool limits; exceeding one is a circuit-breaker overflow (503, flag UO).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct ConnectionPool {
    /// Maximum connections to the cluster (`tcp.maxConnections`).
    pub max_connections: u32,
    /// TCP connect timeout.
    #[serde(serialize_with = "super::duration::serialize")]
    pub connect_timeout: Duration,
    /// Maximum requests waiting for a connection (`http.http1MaxPendingRequests`).
    pub max_pending_requests: u32,
    /// Maximum concurrent requests (`http.http2MaxRequests`).
    pub max_requests: u32,
    /// Requests per connection before it is closed; 0 means no limit.
    pub max_requests_per_connection: u32,
    /// Maximum concurrent retries (`http.maxRetries`).
    pub max_retries: u32,
    /// Idle connections are closed after this long.
    #[serde(serialize_with = "super::duration::serialize_opt")]
    pub idle_timeout: Option<Duration>,
    /// Force HTTP/2 upstream (`http.h2UpgradePolicy: UPGRADE`).
    pub h2_upgrade: bool,
    /// SO_KEEPALIVE on upstream sockets (`tcp.tcpKeepalive`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// HTTP/2 PING keep-alive on upstream HTTP/2 connections (`http.http2KeepAlive`); `None`
    /// keeps mesh's default (a PING every 30 s, 20 s to answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http2_keepalive: Option<Http2Keepalive>,
    /// Connections are drained after this long, whatever their use
    /// (`tcp.maxConnectionDuration`, Envoy's `max_connection_duration`).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "super::duration::serialize_opt"
    )]
    pub max_connection_duration: Option<Duration>,
    /// Each request goes upstream in the HTTP version it came in, whatever the port's protocol
    /// (`http.useClientProtocol`, Envoy's `use_downstream_protocol_config`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub use_client_protocol: bool,
}

/// TCP keep-alive probes (Envoy's `upstream_connection_options.tcp_keepalive`): unset values are
/// the operating system's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct TcpKeepalive {
    /// Unanswered probes before the connection is dropped (`TCP_KEEPCNT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probes: Option<u32>,
    /// Idle time before the first probe (`TCP_KEEPIDLE`).
    #[serde(serialize_with = "super::duration::serialize_opt")]
    pub time: Option<Duration>,
    /// Time between probes (`TCP_KEEPINTVL`).
    #[serde(serialize_with = "super::duration::serialize_opt")]
    pub interval: Option<Duration>,
}

/// HTTP/2 PING keep-alive (Envoy's `http2_protocol_options.connection_keepalive`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Http2Keepalive {
    /// A PING is sent after this long without one.
    #[serde(serialize_with = "super::duration::serialize")]
    pub interval: Duration,
    /// The connection is closed when a PING is not answered within this.
    #[serde(serialize_with = "super::duration::serialize")]
    pub timeout: Duration,
}

impl Default for ConnectionPool {
    /// Envoy's defaults as Istio leaves them: effectively unlimited, 10 s connect timeout,
    /// 1 h idle timeout.
    fn default() -> Self {
        Self {
            max_connections: u32::MAX,
            connect_timeout: Duration::from_secs(10),
            max_pending_requests: u32::MAX,
            max_requests: u32::MAX,
            max_requests_per_connection: 0,
            max_retries: u32::MAX,
            idle_timeout: Some(Duration::from_secs(3600)),
            h2_upgrade: false,
            tcp_keepalive: None,
            http2_keepalive: None,
            max_connection_duration: None,
            use_client_protocol: false,
        }
    }
}

/// Passive health checking (DestinationRule `outlierDetection`), Envoy's semantics.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct OutlierDetection {
    /// Consecutive 5xx (or locally originated failures) before ejection; 0 disables.
    pub consecutive_5xx: u32,
    /// Consecutive 502/503/504 before ejection; 0 disables.
    pub consecutive_gateway_errors: u32,
    /// Consecutive connect failures before ejection when `split_external_local_origin_errors`.
    pub consecutive_local_origin_failures: u32,
    /// Whether local (connect) failures are counted apart from upstream responses.
    pub split_external_local_origin_errors: bool,
    /// How often ejections are reviewed.
    #[serde(serialize_with = "super::duration::serialize")]
    pub interval: Duration,
    /// Base ejection time, multiplied by the number of times the host was ejected.
    #[serde(serialize_with = "super::duration::serialize")]
    pub base_ejection_time: Duration,
    /// Ejection time never exceeds this.
    #[serde(serialize_with = "super::duration::serialize")]
    pub max_ejection_time: Duration,
    /// At most this percent of the cluster is ejected (at least one host is always ejectable).
    pub max_ejection_percent: u32,
    /// Below this percent of healthy hosts, ejection is disabled.
    pub min_health_percent: u32,
}

impl Default for OutlierDetection {
    /// Istio's defaults.
    fn default() -> Self {
        Self {
            consecutive_5xx: 5,
            consecutive_gateway_errors: 0,
            consecutive_local_origin_failures: 5,
            split_external_local_origin_errors: false,
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_percent: 10,
            min_health_percent: 0,
        }
    }
}

/// Caps retries to a share of active requests, so retries never storm.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct RetryBudget {
    /// Concurrent retries may be at most this percent of active requests.
    pub budget_percent: u32,
    /// Retries allowed regardless of the percentage.
    pub min_retry_concurrency: u32,
}

impl Default for RetryBudget {
    /// Envoy's defaults: 20 % with at least 3.
    fn default() -> Self {
        Self {
            budget_percent: 20,
            min_retry_concurrency: 3,
        }
    }
}
