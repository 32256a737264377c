//! DestinationRule warmup, tcpKeepalive, maxConnectionDuration and http2KeepAlive over xDS: written where istiod writes
//! them, read back by a mesh client (Istio files → model → xDS → model is lossless), and read
//! from clusters shaped as istiod sends them.

#![allow(clippy::unwrap_used)] // a panic in a test is a failed test

use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::cluster::LbConfig;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions as UpstreamHttpOptions,
    http_protocol_options::{UpstreamProtocolOptions, explicit_http_config::ProtocolConfig},
};
use mesh_core::model::{
    Cluster, ClusterName, Http2Keepalive, SlowStart, Snapshot, SnapshotSource, TcpKeepalive,
};
use mesh_core::{BuildContext, istio};
use mesh_xds::translate::{
    Decoded, NodeKind, XdsResources, assemble, decode_cluster, to_resources,
};
use prost::Message;

const SERVICES: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1}, {address: 10.0.0.2}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: details, namespace: default}
spec:
  hosts: [details.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: grpc, protocol: GRPC}]
  endpoints: [{address: 10.0.2.1}, {address: 10.0.2.2}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http2, protocol: HTTP2}]
  endpoints: [{address: 10.0.3.1}]
"#;

const RULES: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews.default.svc.cluster.local
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN, warmup: {duration: 45s, aggression: 2, minimumPercent: 5}}
    connectionPool:
      tcp: {tcpKeepalive: {probes: 4, time: 600s, interval: 30s}, maxConnectionDuration: 10m}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: details, namespace: default}
spec:
  host: details.default.svc.cluster.local
  trafficPolicy:
    loadBalancer: {simple: LEAST_REQUEST, warmupDurationSecs: 20s}
    connectionPool:
      tcp: {tcpKeepalive: {}}
      http: {http2KeepAlive: {interval: 15s, timeout: 3s}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec:
  host: ratings.default.svc.cluster.local
  trafficPolicy:
    connectionPool:
      http: {useClientProtocol: true, http2KeepAlive: {interval: 20s, timeout: 4s}}
"#;

const REVIEWS: &str = "outbound|9080||reviews.default.svc.cluster.local";
const DETAILS: &str = "outbound|9080||details.default.svc.cluster.local";
const RATINGS: &str = "outbound|9080||ratings.default.svc.cluster.local";

fn snapshot() -> Snapshot {
    let yaml = format!("{SERVICES}---{RULES}");
    istio::load_str("rules.yaml", &yaml, &BuildContext::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn reencode<M: Message + Default>(m: &M) -> M {
    M::decode(m.encode_to_vec().as_slice()).unwrap()
}

fn round_trip(snapshot: &Snapshot, node: NodeKind) -> Snapshot {
    let r = to_resources(snapshot, node);
    let r = XdsResources {
        listeners: r.listeners.iter().map(reencode).collect(),
        route_configurations: r.route_configurations.iter().map(reencode).collect(),
        clusters: r.clusters.iter().map(reencode).collect(),
        load_assignments: r.load_assignments.iter().map(reencode).collect(),
    };
    let decoded = Decoded::from_resources(&r).unwrap_or_else(|e| panic!("{e}"));
    assemble(
        &decoded,
        snapshot.version.clone(),
        SnapshotSource::Xds {
            server: "test".into(),
        },
    )
}

fn cluster<'a>(s: &'a Snapshot, name: &str) -> &'a Cluster {
    s.cluster(&ClusterName::new(name)).expect("cluster")
}

#[test]
fn the_settings_are_in_the_model() {
    let s = snapshot();
    let reviews = cluster(&s, REVIEWS);
    assert_eq!(
        reviews.slow_start,
        Some(SlowStart {
            window: Duration::from_secs(45),
            aggression: 2.0,
            min_weight_percent: 5.0,
        })
    );
    assert_eq!(
        reviews.connection_pool.tcp_keepalive,
        Some(TcpKeepalive {
            probes: Some(4),
            time: Some(Duration::from_secs(600)),
            interval: Some(Duration::from_secs(30)),
        })
    );
    assert_eq!(
        reviews.connection_pool.max_connection_duration,
        Some(Duration::from_secs(600))
    );
    let details = cluster(&s, DETAILS);
    assert_eq!(
        details.connection_pool.http2_keepalive,
        Some(Http2Keepalive {
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(3),
        })
    );
    assert_eq!(
        details.connection_pool.tcp_keepalive,
        Some(TcpKeepalive::default())
    );
}

#[test]
fn warmup_and_keepalives_round_trip_for_envoy_and_grpc() {
    let s = snapshot();
    for node in [NodeKind::Envoy, NodeKind::ProxylessGrpc] {
        let back = round_trip(&s, node);
        assert!(back.warnings.is_empty(), "{node:?}: {:?}", back.warnings);
        for name in [REVIEWS, DETAILS, RATINGS] {
            assert_eq!(cluster(&s, name), cluster(&back, name), "{node:?} {name}");
        }
    }
}

/// Where istiod puts each setting for Envoy: `applyRoundRobinLoadBalancer` /
/// `applyLeastRequestLoadBalancer` + `setWarmup` (slow start in the policy's lb_config),
/// `setKeepAliveSettings` (whole seconds in upstream_connection_options.tcp_keepalive) and
/// `applyConnectionPool` (connection_keepalive in the HTTP/2 protocol options,
/// max_connection_duration in the common HTTP protocol options), all in
/// pilot/pkg/networking/core.
#[test]
fn envoy_gets_them_where_istiod_puts_them() {
    let r = to_resources(&snapshot(), NodeKind::Envoy);
    let find = |name: &str| r.clusters.iter().find(|c| c.name == name).unwrap();
    let reviews = find(REVIEWS);
    let Some(LbConfig::RoundRobinLbConfig(rr)) = &reviews.lb_config else {
        panic!("round_robin_lb_config: {:?}", reviews.lb_config)
    };
    let slow = rr.slow_start_config.as_ref().unwrap();
    assert_eq!(slow.slow_start_window.unwrap().seconds, 45);
    assert_eq!(slow.aggression.as_ref().unwrap().default_value, 2.0);
    assert_eq!(slow.min_weight_percent.unwrap().value, 5.0);
    let ka = reviews
        .upstream_connection_options
        .unwrap()
        .tcp_keepalive
        .unwrap();
    assert_eq!(
        (
            ka.keepalive_probes.unwrap().value,
            ka.keepalive_time.unwrap().value,
            ka.keepalive_interval.unwrap().value
        ),
        (4, 600, 30)
    );
    let options = |c: &envoy_types::pb::envoy::config::cluster::v3::Cluster| {
        let any = &c.typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
        UpstreamHttpOptions::decode(any.value.as_slice()).unwrap()
    };
    let common = options(reviews).common_http_protocol_options.unwrap();
    assert_eq!(common.max_connection_duration.unwrap().seconds, 600);
    // `upstream_protocol_options` is required by Envoy (a cluster without it is rejected):
    // istiod's `clusterWrapper.build` (cluster_builder.go) fills in explicit HTTP/1.1.
    let Some(UpstreamProtocolOptions::ExplicitHttpConfig(e)) =
        &options(reviews).upstream_protocol_options
    else {
        panic!("explicit HTTP/1.1 for an HTTP cluster")
    };
    assert!(
        matches!(
            e.protocol_config,
            Some(ProtocolConfig::HttpProtocolOptions(_))
        ),
        "{e:?}"
    );
    let details = find(DETAILS);
    let Some(LbConfig::LeastRequestLbConfig(lr)) = &details.lb_config else {
        panic!("least_request_lb_config: {:?}", details.lb_config)
    };
    let slow = lr.slow_start_config.as_ref().unwrap();
    assert_eq!(slow.slow_start_window.unwrap().seconds, 20);
    let h2_options = options(details);
    let Some(UpstreamProtocolOptions::ExplicitHttpConfig(e)) =
        &h2_options.upstream_protocol_options
    else {
        panic!("explicit HTTP/2")
    };
    let Some(ProtocolConfig::Http2ProtocolOptions(h2)) = &e.protocol_config else {
        panic!("explicit HTTP/2")
    };
    let k = h2.connection_keepalive.unwrap();
    assert_eq!(
        (k.interval.unwrap().seconds, k.timeout.unwrap().seconds),
        (15, 3)
    );
    // An empty tcpKeepalive is SO_KEEPALIVE with the system's times (istiod sends an empty
    // tcp_keepalive).
    let ka = details
        .upstream_connection_options
        .unwrap()
        .tcp_keepalive
        .unwrap();
    assert_eq!(ka, Default::default());
    // `useClientProtocol` (`setUseDownstreamProtocol`): the downstream's protocol, with the
    // HTTP/2 keep-alive in its HTTP/2 options.
    let ratings = options(find(RATINGS));
    let Some(UpstreamProtocolOptions::UseDownstreamProtocolConfig(d)) =
        &ratings.upstream_protocol_options
    else {
        panic!("use_downstream_protocol_config: {ratings:?}")
    };
    let k = d
        .http2_protocol_options
        .as_ref()
        .unwrap()
        .connection_keepalive
        .unwrap();
    assert_eq!(
        (k.interval.unwrap().seconds, k.timeout.unwrap().seconds),
        (20, 4)
    );
}

/// Envoy's defaults when istiod leaves fields out: aggression 1.0 and a 10 % minimum
/// (`slow_start_config`, envoy/config/cluster/v3/cluster.proto); a zero window is no slow start;
/// slow start on a RANDOM cluster is ignored with a warning (Envoy takes it only for round robin
/// and least request).
#[test]
fn istiod_shaped_clusters_are_read_with_envoys_defaults() {
    let r = to_resources(&snapshot(), NodeKind::Envoy);
    let mut c = r
        .clusters
        .iter()
        .find(|c| c.name == REVIEWS)
        .unwrap()
        .clone();
    let Some(LbConfig::RoundRobinLbConfig(rr)) = &mut c.lb_config else {
        panic!()
    };
    let slow = rr.slow_start_config.as_mut().unwrap();
    slow.aggression = None;
    slow.min_weight_percent = None;
    let decoded = decode_cluster(&c).unwrap();
    assert_eq!(
        decoded.cluster.slow_start,
        Some(SlowStart {
            window: Duration::from_secs(45),
            aggression: 1.0,
            min_weight_percent: 10.0,
        })
    );
    let mut zero = c.clone();
    if let Some(LbConfig::RoundRobinLbConfig(rr)) = &mut zero.lb_config {
        rr.slow_start_config.as_mut().unwrap().slow_start_window = Some(Default::default());
    }
    assert_eq!(decode_cluster(&zero).unwrap().cluster.slow_start, None);
    let mut bad = c.clone();
    if let Some(LbConfig::RoundRobinLbConfig(rr)) = &mut bad.lb_config {
        rr.slow_start_config.as_mut().unwrap().aggression = Some(Default::default());
    }
    let err = decode_cluster(&bad).unwrap_err().to_string();
    assert!(
        err.contains("round_robin_lb_config.slow_start_config.aggression"),
        "{err}"
    );
    let mut random = c.clone();
    random.lb_policy = 3; // RANDOM
    let decoded = decode_cluster(&random).unwrap();
    assert_eq!(decoded.cluster.slow_start, None);
    assert!(
        decoded
            .warnings
            .iter()
            .any(|w| w.to_string().contains("slow start applies to ROUND_ROBIN")),
        "{:?}",
        decoded.warnings
    );
}
