//! CDS: Envoy `Cluster` ↔ model [`Cluster`] (endpoints come from EDS or the inline assignment).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::{
    CircuitBreakers, Cluster as XdsCluster, OutlierDetection as XdsOutlier,
    circuit_breakers::{Thresholds, thresholds::RetryBudget as XdsRetryBudget},
    cluster::{
        ClusterDiscoveryType, CommonLbConfig, DiscoveryType, EdsClusterConfig, LbConfig,
        LbPolicy as XdsLb, MaglevLbConfig, RingHashLbConfig,
        common_lb_config::{LocalityConfigSpecifier, LocalityWeightedLbConfig},
    },
};
use envoy_types::pb::envoy::config::core::v3::HttpProtocolOptions;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions as UpstreamHttpOptions,
    http_protocol_options::{
        ExplicitHttpConfig, UpstreamProtocolOptions, UseDownstreamHttpConfig,
        explicit_http_config::ProtocolConfig,
    },
};
use envoy_types::pb::envoy::r#type::v3::Percent as XdsPercent;
use envoy_types::pb::google::protobuf::Value;
use mesh_core::model::{
    Cluster, ClusterName, ConnectionPool, HashKey, LbPolicy, LocalityFailover, LocalityLbSetting,
    OutlierDetection, Protocol, Resolution, RetryBudget, ServiceKey, TlsMode, UpstreamTls,
};

use super::NodeKind;
use super::endpoints;
use super::error::{ResourceKind, Scope, XdsError};
use super::meta::{self, ISTIO, MESH};
use super::proto::{self, duration_from, duration_to, pack, u32v, u64v, unpack};
use super::tls;
use super::upstream_options;

/// The key of the upstream HTTP options in a cluster's `typed_extension_protocol_options`.
pub(crate) const HTTP_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// A validated cluster, before its endpoints are known.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodedCluster {
    /// The cluster; `endpoints` is filled from EDS at assembly (or already, for inline
    /// assignments).
    pub cluster: Cluster,
    /// The EDS service name whose assignment holds the endpoints; `None` for clusters whose
    /// endpoints are inline.
    pub eds_service_name: Option<String>,
    /// Whether a consistent-hash key must come from the routes' `hash_policy`.
    pub hash_from_routes: bool,
    /// Warnings (unimplemented fields).
    pub warnings: Vec<mesh_core::config::Diagnostic>,
}

/// Envoy's circuit-breaker defaults, used when a threshold is absent.
const ENVOY_DEFAULT_LIMIT: u32 = 1024;
const ENVOY_DEFAULT_RETRIES: u32 = 3;

// ---------------------------------------------------------------- model → xDS

/// The CDS resource for `cluster` (and, for DNS clusters, its inline endpoints).
pub(crate) fn to_xds(cluster: &Cluster, node: NodeKind) -> XdsCluster {
    let mut c = XdsCluster {
        name: cluster.name.to_string(),
        connect_timeout: Some(duration_to(cluster.connection_pool.connect_timeout)),
        ..Default::default()
    };
    let discovery = match cluster.resolution {
        Resolution::Static => {
            c.eds_cluster_config = Some(EdsClusterConfig {
                eds_config: Some(tls::ads_source()),
                service_name: cluster.name.to_string(),
            });
            DiscoveryType::Eds
        }
        Resolution::Dns => {
            c.load_assignment = Some(endpoints::to_xds(cluster));
            DiscoveryType::StrictDns
        }
        Resolution::None => DiscoveryType::OriginalDst,
    };
    c.cluster_discovery_type = Some(ClusterDiscoveryType::Type(discovery as i32));
    let mut mesh_meta: HashMap<String, Value> = HashMap::new();
    // gRPC takes only ROUND_ROBIN and RING_HASH (istiod sends it ROUND_ROBIN for the others);
    // the policy mesh means travels in its metadata, so a mesh client keeps it.
    let grpc = node == NodeKind::ProxylessGrpc;
    let mut mesh_lb = |name: &str| {
        mesh_meta.insert("lb".into(), proto::string_value(name));
    };
    c.lb_policy = match &cluster.lb {
        LbPolicy::LeastRequest if grpc => {
            mesh_lb("LEAST_REQUEST");
            XdsLb::RoundRobin
        }
        LbPolicy::Random if grpc => {
            mesh_lb("RANDOM");
            XdsLb::RoundRobin
        }
        LbPolicy::PeakEwma if grpc => {
            mesh_lb("PEAK_EWMA");
            XdsLb::RoundRobin
        }
        LbPolicy::LeastRequest => XdsLb::LeastRequest,
        LbPolicy::RoundRobin => XdsLb::RoundRobin,
        LbPolicy::Random => XdsLb::Random,
        LbPolicy::PeakEwma => {
            mesh_lb("PEAK_EWMA");
            XdsLb::LeastRequest
        }
        LbPolicy::RingHash {
            minimum_ring_size, ..
        } => {
            c.lb_config = Some(LbConfig::RingHashLbConfig(RingHashLbConfig {
                minimum_ring_size: u64v(*minimum_ring_size),
                ..Default::default()
            }));
            XdsLb::RingHash
        }
        LbPolicy::Maglev { table_size, .. } if grpc => {
            mesh_lb("MAGLEV");
            mesh_meta.insert(
                "maglev_table_size".into(),
                proto::number_value(*table_size as f64),
            );
            XdsLb::RingHash
        }
        LbPolicy::Maglev { table_size, .. } => {
            c.lb_config = Some(LbConfig::MaglevLbConfig(MaglevLbConfig {
                table_size: u64v(*table_size),
            }));
            XdsLb::Maglev
        }
    } as i32;
    if let Some(slow_start) = &cluster.slow_start {
        c.lb_config = upstream_options::slow_start_to_xds(slow_start, c.lb_policy);
    }
    let pool = &cluster.connection_pool;
    c.upstream_connection_options = pool
        .tcp_keepalive
        .as_ref()
        .map(upstream_options::tcp_keepalive_to_xds);
    c.circuit_breakers = Some(CircuitBreakers {
        thresholds: vec![Thresholds {
            max_connections: u32v(pool.max_connections),
            max_pending_requests: u32v(pool.max_pending_requests),
            max_requests: u32v(pool.max_requests),
            max_retries: u32v(pool.max_retries),
            retry_budget: Some(XdsRetryBudget {
                budget_percent: Some(XdsPercent {
                    value: f64::from(cluster.retry_budget.budget_percent),
                }),
                min_retry_concurrency: u32v(cluster.retry_budget.min_retry_concurrency),
                budget_interval: None,
            }),
            ..Default::default()
        }],
        per_host_thresholds: Vec::new(),
    });
    let h2 = cluster.protocol.requires_h2() || pool.h2_upgrade;
    let options = UpstreamHttpOptions {
        common_http_protocol_options: Some(HttpProtocolOptions {
            idle_timeout: Some(duration_to(pool.idle_timeout.unwrap_or(Duration::ZERO))),
            max_requests_per_connection: (pool.max_requests_per_connection > 0)
                .then(|| u32v(pool.max_requests_per_connection))
                .flatten(),
            // istiod's `applyConnectionPool`: `tcp.maxConnectionDuration`.
            max_connection_duration: pool.max_connection_duration.map(duration_to),
            ..Default::default()
        }),
        // istiod's `setUseDownstreamProtocol` for `useClientProtocol`, else explicit HTTP/2.
        upstream_protocol_options: if pool.use_client_protocol {
            Some(UpstreamProtocolOptions::UseDownstreamProtocolConfig(
                UseDownstreamHttpConfig {
                    http2_protocol_options: Some(upstream_options::http2_options(
                        pool.http2_keepalive.as_ref(),
                    )),
                    ..Default::default()
                },
            ))
        } else if h2 {
            Some(UpstreamProtocolOptions::ExplicitHttpConfig(
                ExplicitHttpConfig {
                    protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(
                        upstream_options::http2_options(pool.http2_keepalive.as_ref()),
                    )),
                },
            ))
        } else {
            // Envoy requires the field: istiod's `clusterWrapper.build` (cluster_builder.go)
            // fills in explicit HTTP/1.1 when nothing set it.
            Some(UpstreamProtocolOptions::ExplicitHttpConfig(
                ExplicitHttpConfig {
                    protocol_config: Some(ProtocolConfig::HttpProtocolOptions(Default::default())),
                },
            ))
        },
        ..Default::default()
    };
    c.typed_extension_protocol_options
        .insert(HTTP_OPTIONS.to_owned(), pack(&options));
    if let Some(o) = &cluster.outlier {
        let enforcing = |on: bool| u32v(if on { 100 } else { 0 });
        c.outlier_detection = Some(XdsOutlier {
            consecutive_5xx: u32v(o.consecutive_5xx),
            enforcing_consecutive_5xx: enforcing(o.consecutive_5xx > 0),
            consecutive_gateway_failure: u32v(o.consecutive_gateway_errors),
            enforcing_consecutive_gateway_failure: enforcing(o.consecutive_gateway_errors > 0),
            consecutive_local_origin_failure: u32v(o.consecutive_local_origin_failures),
            enforcing_consecutive_local_origin_failure: enforcing(
                o.consecutive_local_origin_failures > 0,
            ),
            split_external_local_origin_errors: o.split_external_local_origin_errors,
            interval: Some(duration_to(o.interval)),
            base_ejection_time: Some(duration_to(o.base_ejection_time)),
            max_ejection_time: Some(duration_to(o.max_ejection_time)),
            max_ejection_percent: u32v(o.max_ejection_percent),
            enforcing_success_rate: u32v(0),
            ..Default::default()
        });
        c.common_lb_config = Some(CommonLbConfig {
            healthy_panic_threshold: Some(XdsPercent {
                value: f64::from(o.min_health_percent),
            }),
            ..Default::default()
        });
    }
    if cluster.locality_weighted_lb {
        // gRPC always weighs localities and ignores this; Envoy needs it.
        c.common_lb_config
            .get_or_insert_with(CommonLbConfig::default)
            .locality_config_specifier = Some(LocalityConfigSpecifier::LocalityWeightedLbConfig(
            LocalityWeightedLbConfig {},
        ));
    }
    // Istio pins an ISTIO_MUTUAL cluster's servers to the service accounts behind it. mesh checks
    // each endpoint's own identity; gRPC and Envoy check the cluster's SAN list, so it lists
    // them, marked as derived so a mesh client reads them back as endpoint identities only.
    let mut endpoint_sans: Vec<String> = cluster
        .endpoints
        .iter()
        .filter_map(|e| e.identity.clone())
        .collect();
    endpoint_sans.sort();
    endpoint_sans.dedup();
    c.transport_socket = if cluster.tls.mode == TlsMode::IstioMutual
        && cluster.tls.subject_alt_names.is_empty()
        && !endpoint_sans.is_empty()
    {
        mesh_meta.insert("sans_from_endpoints".into(), proto::bool_value(true));
        let pinned = UpstreamTls {
            subject_alt_names: endpoint_sans,
            ..cluster.tls.clone()
        };
        tls::to_transport_socket(&pinned, node)
    } else {
        tls::to_transport_socket(&cluster.tls, node)
    };
    mesh_meta.insert(
        "protocol".into(),
        proto::string_value(protocol_name(cluster.protocol)),
    );
    if pool.h2_upgrade {
        mesh_meta.insert("h2_upgrade".into(), proto::bool_value(true));
    }
    if let LbPolicy::RingHash { key, .. } | LbPolicy::Maglev { key, .. } = &cluster.lb {
        mesh_meta.insert("hash_key".into(), hash_key_to_value(key));
    }
    if cluster.locality_lb != LocalityLbSetting::default() {
        mesh_meta.insert(
            "locality_lb".into(),
            locality_to_value(&cluster.locality_lb),
        );
    }
    let service = &cluster.service;
    let short = service.host.split('.').next().unwrap_or_default();
    let istio_service = proto::struct_value(HashMap::from([
        ("host".to_owned(), proto::string_value(service.host.clone())),
        ("name".to_owned(), proto::string_value(short)),
        (
            "namespace".to_owned(),
            proto::string_value(service.namespace.clone()),
        ),
    ]));
    c.metadata = meta::metadata(vec![
        (
            ISTIO,
            HashMap::from([(
                "services".to_owned(),
                proto::list_value(vec![istio_service]),
            )]),
        ),
        (MESH, mesh_meta),
    ]);
    c
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Http => "HTTP",
        Protocol::Http2 => "HTTP2",
        Protocol::Grpc => "GRPC",
        Protocol::Tcp => "TCP",
        Protocol::Tls => "TLS",
        Protocol::Unspecified => "UNSPECIFIED",
    }
}

fn locality_to_value(l: &LocalityLbSetting) -> Value {
    let distribute = l
        .distribute
        .iter()
        .map(|(from, to)| {
            proto::struct_value(HashMap::from([
                ("from".to_owned(), proto::string_value(from.clone())),
                (
                    "to".to_owned(),
                    proto::struct_value(
                        to.iter()
                            .map(|(k, v)| (k.clone(), proto::number_value(f64::from(*v))))
                            .collect(),
                    ),
                ),
            ]))
        })
        .collect();
    let failover = l
        .failover
        .iter()
        .map(|f| {
            proto::struct_value(HashMap::from([
                ("from".to_owned(), proto::string_value(f.from.clone())),
                ("to".to_owned(), proto::string_value(f.to.clone())),
            ]))
        })
        .collect();
    proto::struct_value(HashMap::from([
        ("enabled".to_owned(), proto::bool_value(l.enabled)),
        ("distribute".to_owned(), proto::list_value(distribute)),
        ("failover".to_owned(), proto::list_value(failover)),
        (
            "failover_priority".to_owned(),
            proto::list_value(
                l.failover_priority
                    .iter()
                    .map(|s| proto::string_value(s.clone()))
                    .collect(),
            ),
        ),
    ]))
}

fn hash_key_to_value(key: &HashKey) -> Value {
    let (kind, name, path, ttl) = match key {
        HashKey::Header(h) => ("header", h.as_str(), None, None),
        HashKey::Cookie { name, path, ttl } => ("cookie", name.as_str(), path.as_deref(), *ttl),
        HashKey::SourceIp => ("source_ip", "", None, None),
        HashKey::QueryParameter(q) => ("query_parameter", q.as_str(), None, None),
    };
    let mut fields = HashMap::from([
        ("kind".to_owned(), proto::string_value(kind)),
        ("name".to_owned(), proto::string_value(name)),
    ]);
    if let Some(p) = path {
        fields.insert("path".into(), proto::string_value(p));
    }
    if let Some(t) = ttl {
        fields.insert("ttl_ms".into(), proto::number_value(t.as_millis() as f64));
    }
    proto::struct_value(fields)
}

fn hash_key_from_value(v: &Value) -> Option<HashKey> {
    let s = proto::as_struct(v)?;
    let get = |k: &str| s.fields.get(k).and_then(proto::as_str);
    let name = get("name").unwrap_or_default().to_owned();
    Some(match get("kind")? {
        "header" => HashKey::Header(name),
        "cookie" => HashKey::Cookie {
            name,
            path: get("path").map(str::to_owned),
            ttl: s
                .fields
                .get("ttl_ms")
                .and_then(proto::as_number)
                .map(|ms| Duration::from_millis(ms as u64)),
        },
        "source_ip" => HashKey::SourceIp,
        "query_parameter" => HashKey::QueryParameter(name),
        _ => return None,
    })
}

fn locality_from_value(v: &Value, scope: &Scope) -> Result<LocalityLbSetting, XdsError> {
    let bad = || scope.error("metadata.filter_metadata.mesh.locality_lb", "malformed");
    let s = proto::as_struct(v).ok_or_else(bad)?;
    let list = |k: &str| s.fields.get(k).and_then(proto::as_list).unwrap_or_default();
    let mut out = LocalityLbSetting {
        enabled: s
            .fields
            .get("enabled")
            .and_then(proto::as_bool)
            .unwrap_or(false),
        ..Default::default()
    };
    for d in list("distribute") {
        let d = proto::as_struct(d).ok_or_else(bad)?;
        let from = d
            .fields
            .get("from")
            .and_then(proto::as_str)
            .ok_or_else(bad)?;
        let to = d
            .fields
            .get("to")
            .and_then(proto::as_struct)
            .ok_or_else(bad)?;
        let to: BTreeMap<String, u32> = to
            .fields
            .iter()
            .map(|(k, v)| Ok((k.clone(), proto::as_number(v).ok_or_else(bad)? as u32)))
            .collect::<Result<_, XdsError>>()?;
        out.distribute.push((from.to_owned(), to));
    }
    for f in list("failover") {
        let f = proto::as_struct(f).ok_or_else(bad)?;
        let get = |k: &str| {
            f.fields
                .get(k)
                .and_then(proto::as_str)
                .map(str::to_owned)
                .ok_or_else(bad)
        };
        out.failover.push(LocalityFailover {
            from: get("from")?,
            to: get("to")?,
        });
    }
    for p in list("failover_priority") {
        out.failover_priority
            .push(proto::as_str(p).ok_or_else(bad)?.to_owned());
    }
    Ok(out)
}

// ---------------------------------------------------------------- xDS → model

fn service_key(c: &XdsCluster, name: &ClusterName) -> ServiceKey {
    let (port, subset, host) = name
        .parse_outbound()
        .map(|(p, s, h)| (p, s.map(str::to_owned), h.to_owned()))
        .unwrap_or_else(|| (0, None, name.to_string()));
    let from_meta = meta::field(c.metadata.as_ref(), ISTIO, "services")
        .and_then(proto::as_list)
        .and_then(|l| l.first())
        .and_then(proto::as_struct)
        .and_then(|s| s.fields.get("namespace"))
        .and_then(proto::as_str)
        .map(str::to_owned);
    // `reviews.default.svc.cluster.local`: the namespace is the second label.
    let from_host = || {
        let mut labels = host.split('.');
        let (_, ns, svc) = (labels.next(), labels.next(), labels.next());
        (svc == Some("svc")).then(|| ns.unwrap_or_default().to_owned())
    };
    ServiceKey {
        namespace: from_meta.or_else(from_host).unwrap_or_default(),
        host,
        port,
        subset,
    }
}

fn u32_or(v: &Option<envoy_types::pb::google::protobuf::UInt32Value>, default: u32) -> u32 {
    v.as_ref().map_or(default, |v| v.value)
}

fn dur(
    d: &Option<envoy_types::pb::google::protobuf::Duration>,
    scope: &Scope,
    field: &str,
) -> Result<Option<Duration>, XdsError> {
    d.as_ref()
        .map(|d| duration_from(d).ok_or_else(|| scope.error(field, "negative or invalid duration")))
        .transpose()
}

/// Decodes and validates one CDS resource.
pub fn decode_cluster(c: &XdsCluster) -> Result<DecodedCluster, XdsError> {
    let mut scope = Scope::new(ResourceKind::Cluster, c.name.clone());
    if c.name.is_empty() {
        return Err(scope.error("name", "empty"));
    }
    let name = ClusterName::new(c.name.as_str());
    let mut residual = c.clone();
    residual.name.clear();
    let discovery = match &c.cluster_discovery_type {
        None => DiscoveryType::Static,
        Some(ClusterDiscoveryType::Type(t)) => DiscoveryType::try_from(*t)
            .map_err(|_| scope.error("type", format!("unknown discovery type {t}")))?,
        Some(ClusterDiscoveryType::ClusterType(t)) => {
            return Err(scope.error(
                "cluster_type",
                format!("custom cluster type {:?} is not supported", t.name),
            ));
        }
    };
    residual.cluster_discovery_type = None;
    let (resolution, eds_service_name) = match discovery {
        DiscoveryType::Eds => {
            let eds = c.eds_cluster_config.clone().unwrap_or_default();
            if let Some(src) = &eds.eds_config {
                use envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier as S;
                if !matches!(
                    src.config_source_specifier,
                    Some(S::Ads(_)) | Some(S::Self_(_))
                ) {
                    return Err(scope.error(
                        "eds_cluster_config.eds_config",
                        "only ADS (or self) config sources are supported",
                    ));
                }
            }
            let service = if eds.service_name.is_empty() {
                c.name.clone()
            } else {
                eds.service_name
            };
            (Resolution::Static, Some(service))
        }
        DiscoveryType::Static => (Resolution::Static, None),
        DiscoveryType::StrictDns | DiscoveryType::LogicalDns => (Resolution::Dns, None),
        DiscoveryType::OriginalDst => (Resolution::None, None),
    };
    residual.eds_cluster_config = None;
    let lb_type = XdsLb::try_from(c.lb_policy)
        .map_err(|_| scope.error("lb_policy", format!("unknown value {}", c.lb_policy)))?;
    // gRPC nodes get ROUND_ROBIN / RING_HASH; mesh's metadata says what was meant.
    let meant = meta::field(c.metadata.as_ref(), MESH, "lb").and_then(proto::as_str);
    // The hash key is on the routes (hash_policy), which assembly prefers; mesh's metadata
    // carries it for clusters no route names.
    let meta_key = meta::field(c.metadata.as_ref(), MESH, "hash_key").and_then(hash_key_from_value);
    let hash_from_routes = meta_key.is_none();
    let placeholder = meta_key.unwrap_or(HashKey::SourceIp);
    let maglev_table = |default: u64| match &c.lb_config {
        Some(LbConfig::MaglevLbConfig(m)) => m.table_size.as_ref().map_or(default, |v| v.value),
        _ => meta::field(c.metadata.as_ref(), MESH, "maglev_table_size")
            .and_then(proto::as_number)
            .map_or(default, |n| n as u64),
    };
    let maglev = || LbPolicy::Maglev {
        key: placeholder.clone(),
        table_size: maglev_table(65537),
    };
    let wire = match lb_type {
        XdsLb::LeastRequest => LbPolicy::LeastRequest,
        XdsLb::RoundRobin => LbPolicy::RoundRobin,
        XdsLb::Random => LbPolicy::Random,
        XdsLb::RingHash => LbPolicy::RingHash {
            key: placeholder.clone(),
            minimum_ring_size: match &c.lb_config {
                Some(LbConfig::RingHashLbConfig(r)) => {
                    r.minimum_ring_size.as_ref().map_or(1024, |v| v.value)
                }
                _ => 1024,
            },
        },
        XdsLb::Maglev => maglev(),
        other => {
            return Err(scope.error(
                "lb_policy",
                format!("{} is not supported", other.as_str_name()),
            ));
        }
    };
    // mesh's own policy name, when present, is what the enum stands in for.
    let lb = match meant {
        None => wire,
        Some("PEAK_EWMA") => LbPolicy::PeakEwma,
        Some("LEAST_REQUEST") => LbPolicy::LeastRequest,
        Some("RANDOM") => LbPolicy::Random,
        Some("MAGLEV") => maglev(),
        Some(other) => {
            return Err(scope.error(
                "metadata.filter_metadata.mesh.lb",
                format!("unknown balancing policy {other:?}"),
            ));
        }
    };
    mesh_core::balance::check_lb_policy(&lb).map_err(|e| {
        let field = if c.lb_config.is_some() {
            "lb_config"
        } else {
            "metadata.filter_metadata.mesh.maglev_table_size"
        };
        scope.error(field, e.to_string())
    })?;
    let slow_start = upstream_options::slow_start_from_xds(c.lb_config.as_ref(), &lb, &mut scope)?;
    residual.lb_policy = 0;
    residual.lb_config = None;
    let mut pool = ConnectionPool {
        max_connections: ENVOY_DEFAULT_LIMIT,
        max_pending_requests: ENVOY_DEFAULT_LIMIT,
        max_requests: ENVOY_DEFAULT_LIMIT,
        max_retries: ENVOY_DEFAULT_RETRIES,
        ..ConnectionPool::default()
    };
    if let Some(t) = dur(&c.connect_timeout, &scope, "connect_timeout")? {
        pool.connect_timeout = t;
    }
    residual.connect_timeout = None;
    let mut budget = RetryBudget::default();
    if let Some(cb) = &c.circuit_breakers {
        for (i, t) in cb.thresholds.iter().enumerate() {
            if t.priority != 0 {
                scope.warn(
                    format!("circuit_breakers.thresholds[{i}].priority"),
                    "HIGH priority thresholds are not implemented; ignored",
                );
                continue;
            }
            pool.max_connections = u32_or(&t.max_connections, ENVOY_DEFAULT_LIMIT);
            pool.max_pending_requests = u32_or(&t.max_pending_requests, ENVOY_DEFAULT_LIMIT);
            pool.max_requests = u32_or(&t.max_requests, ENVOY_DEFAULT_LIMIT);
            pool.max_retries = u32_or(&t.max_retries, ENVOY_DEFAULT_RETRIES);
            if let Some(b) = &t.retry_budget {
                let percent = b.budget_percent.as_ref().map_or(20.0, |p| p.value);
                if !(0.0..=100.0).contains(&percent) {
                    return Err(scope.error(
                        format!("circuit_breakers.thresholds[{i}].retry_budget.budget_percent"),
                        "must be within 0..=100",
                    ));
                }
                budget = RetryBudget {
                    budget_percent: percent.round() as u32,
                    min_retry_concurrency: u32_or(&b.min_retry_concurrency, 3),
                };
            }
            let mut r = *t;
            r.max_connections = None;
            r.max_pending_requests = None;
            r.max_requests = None;
            r.max_retries = None;
            r.retry_budget = None;
            scope.unsupported(&format!("circuit_breakers.thresholds[{i}]"), &r);
        }
        if !cb.per_host_thresholds.is_empty() {
            scope.warn(
                "circuit_breakers.per_host_thresholds",
                "not implemented; ignored",
            );
        }
    }
    residual.circuit_breakers = None;
    let mut explicit_h2 = c.http2_protocol_options.is_some();
    if let Some(h2) = &c.http2_protocol_options {
        pool.http2_keepalive =
            upstream_options::http2_keepalive_from_xds(h2, "http2_protocol_options", &mut scope)?;
    }
    pool.tcp_keepalive = upstream_options::tcp_keepalive_from_xds(
        c.upstream_connection_options.as_ref(),
        &mut scope,
    );
    residual.upstream_connection_options = None;
    if let Some(m) = &c.max_requests_per_connection {
        pool.max_requests_per_connection = m.value;
    }
    residual.http2_protocol_options = None;
    residual.max_requests_per_connection = None;
    let mut idle = Some(Duration::from_secs(3600));
    for (key, any) in &c.typed_extension_protocol_options {
        let field = format!("typed_extension_protocol_options[{key:?}]");
        if key != HTTP_OPTIONS {
            scope.warn(field, "not implemented; ignored");
            continue;
        }
        let o: UpstreamHttpOptions = unpack(any).map_err(|e| scope.error(&field, e))?;
        if let Some(common) = &o.common_http_protocol_options {
            if let Some(t) = dur(
                &common.idle_timeout,
                &scope,
                &format!("{field}.common_http_protocol_options.idle_timeout"),
            )? {
                idle = (!t.is_zero()).then_some(t);
            }
            if let Some(m) = &common.max_requests_per_connection {
                pool.max_requests_per_connection = m.value;
            }
            pool.max_connection_duration = dur(
                &common.max_connection_duration,
                &scope,
                &format!("{field}.common_http_protocol_options.max_connection_duration"),
            )?
            .filter(|d| !d.is_zero());
            let mut r = *common;
            r.idle_timeout = None;
            r.max_requests_per_connection = None;
            r.max_connection_duration = None;
            scope.unsupported(&format!("{field}.common_http_protocol_options"), &r);
        }
        match &o.upstream_protocol_options {
            Some(UpstreamProtocolOptions::ExplicitHttpConfig(e)) => {
                explicit_h2 = matches!(
                    e.protocol_config,
                    Some(ProtocolConfig::Http2ProtocolOptions(_))
                );
                if let Some(ProtocolConfig::Http2ProtocolOptions(h2)) = &e.protocol_config {
                    pool.http2_keepalive = upstream_options::http2_keepalive_from_xds(
                        h2,
                        &format!("{field}.explicit_http_config.http2_protocol_options"),
                        &mut scope,
                    )?;
                }
            }
            Some(UpstreamProtocolOptions::UseDownstreamProtocolConfig(d)) => {
                // Each request keeps its HTTP version (`useClientProtocol`).
                explicit_h2 = false;
                pool.use_client_protocol = true;
                if let Some(h2) = &d.http2_protocol_options {
                    pool.http2_keepalive = upstream_options::http2_keepalive_from_xds(
                        h2,
                        &format!("{field}.use_downstream_protocol_config.http2_protocol_options"),
                        &mut scope,
                    )?;
                }
            }
            Some(UpstreamProtocolOptions::AutoConfig(_)) => {
                scope.warn(
                    format!("{field}.upstream_protocol_options"),
                    "only explicit_http_config and use_downstream_protocol_config are implemented; HTTP/1.1 is used",
                );
            }
            None => {}
        }
        let mut r = o.clone();
        r.common_http_protocol_options = None;
        r.upstream_protocol_options = None;
        scope.unsupported(&field, &r);
    }
    residual.typed_extension_protocol_options.clear();
    pool.idle_timeout = idle;
    let meta_protocol = meta::field(c.metadata.as_ref(), MESH, "protocol").and_then(proto::as_str);
    let protocol = match meta_protocol.and_then(|p| match p {
        "UNSPECIFIED" => Some(Protocol::Unspecified),
        p => Protocol::from_istio(p),
    }) {
        Some(p) => p,
        None if explicit_h2 => Protocol::Http2,
        None => Protocol::Unspecified,
    };
    pool.h2_upgrade = explicit_h2 && !protocol.requires_h2()
        || meta::field(c.metadata.as_ref(), MESH, "h2_upgrade").and_then(proto::as_bool)
            == Some(true);
    let outlier = match &c.outlier_detection {
        None => None,
        Some(o) => {
            let d = OutlierDetection::default();
            let on = |e: &Option<envoy_types::pb::google::protobuf::UInt32Value>, default: u32| {
                u32_or(e, default) > 0
            };
            let p = "outlier_detection";
            let out = OutlierDetection {
                consecutive_5xx: if on(&o.enforcing_consecutive_5xx, 100) {
                    u32_or(&o.consecutive_5xx, 5)
                } else {
                    0
                },
                consecutive_gateway_errors: if on(&o.enforcing_consecutive_gateway_failure, 0) {
                    u32_or(&o.consecutive_gateway_failure, 5)
                } else {
                    0
                },
                consecutive_local_origin_failures: if on(
                    &o.enforcing_consecutive_local_origin_failure,
                    100,
                ) {
                    u32_or(&o.consecutive_local_origin_failure, 5)
                } else {
                    0
                },
                split_external_local_origin_errors: o.split_external_local_origin_errors,
                interval: dur(&o.interval, &scope, &format!("{p}.interval"))?.unwrap_or(d.interval),
                base_ejection_time: dur(
                    &o.base_ejection_time,
                    &scope,
                    &format!("{p}.base_ejection_time"),
                )?
                .unwrap_or(d.base_ejection_time),
                max_ejection_time: dur(
                    &o.max_ejection_time,
                    &scope,
                    &format!("{p}.max_ejection_time"),
                )?
                .unwrap_or(d.max_ejection_time),
                max_ejection_percent: u32_or(&o.max_ejection_percent, 10).min(100),
                min_health_percent: c
                    .common_lb_config
                    .as_ref()
                    .and_then(|l| l.healthy_panic_threshold.as_ref())
                    .map_or(50, |p| p.value.clamp(0.0, 100.0).round() as u32),
            };
            let mut r = o.clone();
            r.consecutive_5xx = None;
            r.enforcing_consecutive_5xx = None;
            r.consecutive_gateway_failure = None;
            r.enforcing_consecutive_gateway_failure = None;
            r.consecutive_local_origin_failure = None;
            r.enforcing_consecutive_local_origin_failure = None;
            r.split_external_local_origin_errors = false;
            r.interval = None;
            r.base_ejection_time = None;
            r.max_ejection_time = None;
            r.max_ejection_percent = None;
            if r.enforcing_success_rate
                .as_ref()
                .is_some_and(|v| v.value == 0)
            {
                r.enforcing_success_rate = None;
            }
            scope.unsupported(p, &r);
            Some(out)
        }
    };
    residual.outlier_detection = None;
    // Envoy's rule: locality weights count only when the cluster asks for them.
    let locality_weighted_lb = matches!(
        c.common_lb_config
            .as_ref()
            .and_then(|l| l.locality_config_specifier.as_ref()),
        Some(LocalityConfigSpecifier::LocalityWeightedLbConfig(_))
    );
    if let Some(l) = &c.common_lb_config {
        let mut r = l.clone();
        r.healthy_panic_threshold = None;
        if locality_weighted_lb {
            r.locality_config_specifier = None;
        }
        scope.unsupported("common_lb_config", &r);
    }
    residual.common_lb_config = None;
    let mut tls = tls::from_transport_socket(c.transport_socket.as_ref(), &mut scope)?;
    if meta::field(c.metadata.as_ref(), MESH, "sans_from_endpoints").and_then(proto::as_bool)
        == Some(true)
    {
        tls.subject_alt_names.clear();
    }
    residual.transport_socket = None;
    let locality_lb = match meta::field(c.metadata.as_ref(), MESH, "locality_lb") {
        Some(v) => locality_from_value(v, &scope)?,
        None => LocalityLbSetting::default(),
    };
    residual.metadata = None;
    let service = service_key(c, &name);
    let endpoints: Arc<[mesh_core::model::Endpoint]> = match (&c.load_assignment, &eds_service_name)
    {
        (Some(cla), None) => {
            let decoded = endpoints::decode_inline(cla, &mut scope)?;
            decoded.into()
        }
        _ => Arc::from(Vec::new()),
    };
    residual.load_assignment = None;
    scope.unsupported("", &residual);
    Ok(DecodedCluster {
        cluster: Cluster {
            name,
            service,
            protocol,
            resolution,
            endpoints,
            lb,
            locality_lb,
            locality_weighted_lb,
            tls,
            connection_pool: pool,
            outlier,
            retry_budget: budget,
            slow_start,
        },
        eds_service_name,
        hash_from_routes: hash_from_routes && matches!(lb_type, XdsLb::RingHash | XdsLb::Maglev),
        warnings: scope.warnings,
    })
}
