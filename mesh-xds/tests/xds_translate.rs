//! Istio files → model → xDS resources → model: equal. And xDS errors name resource and field.

#![allow(clippy::unwrap_used)] // a panic in a test is a failed test

use std::path::{Path, PathBuf};

use mesh_core::model::{Snapshot, SnapshotSource};
use mesh_core::{BuildContext, Workload, istio};
use mesh_xds::translate::{
    Decoded, NodeKind, ResourceKind, XdsResources, assemble, decode_cluster, to_resources,
};

fn bookinfo(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../mesh-core/tests/fixtures/bookinfo")
        .join(file)
}

fn fixture(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(file)
}

fn round_trip(snapshot: &Snapshot, node: NodeKind) -> Snapshot {
    let resources = to_resources(snapshot, node);
    // Through the wire encoding, as a client sees it.
    let resources = XdsResources {
        listeners: resources.listeners.iter().map(reencode).collect(),
        route_configurations: resources
            .route_configurations
            .iter()
            .map(reencode)
            .collect(),
        clusters: resources.clusters.iter().map(reencode).collect(),
        load_assignments: resources.load_assignments.iter().map(reencode).collect(),
    };
    let decoded = Decoded::from_resources(&resources).unwrap_or_else(|e| panic!("{e}"));
    assemble(
        &decoded,
        snapshot.version.clone(),
        SnapshotSource::Xds {
            server: "test".into(),
        },
    )
}

fn reencode<M: prost::Message + Default>(m: &M) -> M {
    M::decode(m.encode_to_vec().as_slice()).unwrap()
}

fn assert_same(original: &Snapshot, back: &Snapshot) {
    assert_eq!(
        original.clusters.keys().collect::<Vec<_>>(),
        back.clusters.keys().collect::<Vec<_>>()
    );
    for (name, c) in &original.clusters {
        assert_eq!(c, &back.clusters[name], "cluster {name}");
    }
    assert_eq!(
        original.routes.keys().collect::<Vec<_>>(),
        back.routes.keys().collect::<Vec<_>>()
    );
    for (port, rc) in &original.routes {
        assert_eq!(rc, &back.routes[port], "routes for port {port}");
    }
    assert!(
        back.warnings.is_empty(),
        "no unsupported fields in our own output: {:?}",
        back.warnings
    );
}

#[test]
fn bookinfo_round_trips_for_every_sample() {
    let ctx = BuildContext::default();
    let vs_files = [
        "virtual-service-all-v1.yaml",
        "virtual-service-reviews-50-v3.yaml",
        "virtual-service-reviews-80-20.yaml",
        "virtual-service-reviews-90-10.yaml",
        "virtual-service-reviews-jason-v2-v3.yaml",
        "virtual-service-reviews-test-v2.yaml",
        "virtual-service-reviews-v2-v3.yaml",
        "virtual-service-reviews-v3.yaml",
        "virtual-service-ratings-test-abort.yaml",
        "virtual-service-ratings-test-delay.yaml",
        "virtual-service-details-v2.yaml",
        "fault-injection-details-v1.yaml",
    ];
    for dr in [
        "destination-rule-all.yaml",
        "destination-rule-all-mtls.yaml",
    ] {
        for vs in vs_files {
            let mut paths = vec![
                fixture("bookinfo-services.yaml"),
                bookinfo(vs),
                bookinfo("egress-rule-google-apis.yaml"),
            ];
            if vs != "fault-injection-details-v1.yaml" {
                paths.push(bookinfo(dr)); // that sample brings its own DestinationRule
            }
            let snapshot = istio::load_paths(&paths, &ctx).unwrap_or_else(|e| panic!("{vs}: {e}"));
            assert!(!snapshot.clusters.is_empty());
            for node in [NodeKind::Envoy, NodeKind::ProxylessGrpc] {
                assert_same(&snapshot, &round_trip(&snapshot, node));
            }
        }
    }
}

#[test]
fn every_feature_round_trips() {
    let ctx = BuildContext {
        workload: Workload::new("shop", "frontend"),
        ..Default::default()
    };
    let snapshot =
        istio::load_paths(&[fixture("rich.yaml")], &ctx).unwrap_or_else(|e| panic!("{e}"));
    let routes = &snapshot.routes[&8080].virtual_hosts;
    assert!(routes.iter().any(|vh| {
        vh.routes
            .iter()
            .any(|r| r.fault.is_some() && r.retry.is_some() && r.matches.len() == 2)
    }));
    for node in [NodeKind::Envoy, NodeKind::ProxylessGrpc] {
        assert_same(&snapshot, &round_trip(&snapshot, node));
    }
}

#[test]
fn errors_name_the_resource_and_field() {
    let ctx = BuildContext::default();
    let snapshot = istio::load_paths(
        &[
            fixture("bookinfo-services.yaml"),
            bookinfo("destination-rule-all.yaml"),
        ],
        &ctx,
    )
    .unwrap();
    let mut cluster = to_resources(&snapshot, NodeKind::ProxylessGrpc)
        .clusters
        .into_iter()
        .find(|c| c.name == "outbound|9080|v1|reviews.default.svc.cluster.local")
        .unwrap();
    cluster.lb_policy = 6; // CLUSTER_PROVIDED
    let err = decode_cluster(&cluster).unwrap_err();
    assert_eq!(err.kind, ResourceKind::Cluster);
    assert_eq!(
        err.to_string(),
        "cluster outbound|9080|v1|reviews.default.svc.cluster.local: lb_policy: CLUSTER_PROVIDED is not supported"
    );
}

#[test]
fn unsupported_fields_are_reported_not_dropped() {
    let ctx = BuildContext::default();
    let snapshot = istio::load_paths(&[fixture("bookinfo-services.yaml")], &ctx).unwrap();
    let mut cluster = to_resources(&snapshot, NodeKind::Envoy).clusters.remove(0);
    #[allow(deprecated)]
    {
        cluster.respect_dns_ttl = true;
    }
    cluster.alt_stat_name = "x".into();
    let decoded = decode_cluster(&cluster).unwrap();
    assert_eq!(decoded.warnings.len(), 1, "{:?}", decoded.warnings);
    let w = decoded.warnings[0].to_string();
    assert!(
        w.contains("envoy.config.cluster.v3.Cluster field(s) #28, #39 not implemented"),
        "{w}"
    );
}

#[test]
fn istiod_proxyless_shapes_are_read() {
    use envoy_types::pb::envoy::config::route::v3::route::Action;
    use envoy_types::pb::envoy::config::route::v3::route_action::MaxStreamDuration;
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
        HttpConnectionManager, http_connection_manager::RouteSpecifier,
    };
    use envoy_types::pb::google::protobuf::Duration as PbDuration;
    use prost::{Message, Name};

    let ctx = BuildContext::default();
    let snapshot = istio::load_paths(&[fixture("bookinfo-services.yaml")], &ctx).unwrap();
    let mut r = to_resources(&snapshot, NodeKind::ProxylessGrpc);
    // istiod names a proxyless client's route configuration after the cluster, one per
    // listener, and puts the route timeout in max_stream_duration.
    let listener = r
        .listeners
        .iter_mut()
        .find(|l| l.name == "reviews.default.svc.cluster.local:9080")
        .unwrap();
    let any = listener
        .api_listener
        .as_mut()
        .unwrap()
        .api_listener
        .as_mut()
        .unwrap();
    let mut hcm = HttpConnectionManager::decode(any.value.as_slice()).unwrap();
    let rds_name = "outbound|9080||reviews.default.svc.cluster.local";
    if let Some(RouteSpecifier::Rds(rds)) = &mut hcm.route_specifier {
        rds.route_config_name = rds_name.into();
    }
    assert_eq!(any.type_url, HttpConnectionManager::type_url());
    any.value = hcm.encode_to_vec();
    let mut rc = r.route_configurations[0].clone();
    rc.name = rds_name.into();
    rc.virtual_hosts
        .retain(|vh| vh.name == "reviews.default.svc.cluster.local:9080");
    for route in &mut rc.virtual_hosts[0].routes {
        if let Some(Action::Route(a)) = &mut route.action {
            a.timeout = None;
            a.max_stream_duration = Some(MaxStreamDuration {
                max_stream_duration: Some(PbDuration {
                    seconds: 3,
                    nanos: 0,
                }),
                ..Default::default()
            });
        }
    }
    r.listeners
        .retain(|l| l.name == "reviews.default.svc.cluster.local:9080");
    r.route_configurations = vec![rc];
    let decoded = Decoded::from_resources(&r).unwrap();
    let back = assemble(
        &decoded,
        "v".into(),
        SnapshotSource::Xds {
            server: "istiod".into(),
        },
    );
    let vh = back.routes[&9080]
        .virtual_host("reviews:9080")
        .expect("the listener's port");
    assert_eq!(
        vh.routes[0].timeout,
        Some(std::time::Duration::from_secs(3))
    );
    assert!(
        back.routes[&9080].virtual_host("ratings:9080").is_none(),
        "only what was sent"
    );
}

/// bookinfo with the reviews cluster's endpoints spread over two priorities and three
/// localities, one with an explicit weight, and locality-weighted balancing on.
fn with_priorities_and_weights() -> Snapshot {
    use mesh_core::model::Locality;
    let ctx = BuildContext::default();
    let mut snapshot = istio::load_paths(
        &[
            fixture("bookinfo-services.yaml"),
            bookinfo("destination-rule-all.yaml"),
        ],
        &ctx,
    )
    .unwrap();
    let (name, cluster) = snapshot
        .clusters
        .iter_mut()
        .find(|(n, c)| {
            n.as_str() == "outbound|9080||reviews.default.svc.cluster.local"
                && !c.endpoints.is_empty()
        })
        .unwrap();
    let cluster = std::sync::Arc::make_mut(cluster);
    let template = cluster.endpoints[0].clone();
    let endpoint = |i: u8, priority: u32, locality: &str, locality_weight: Option<u32>| {
        let mut e = template.clone();
        e.address = mesh_core::model::EndpointAddress::Socket(([10, 9, 0, i], 9080).into());
        e.weight = u32::from(i);
        e.priority = priority;
        e.locality = Locality::parse(locality);
        e.locality_weight = locality_weight;
        e
    };
    cluster.endpoints = vec![
        endpoint(1, 0, "us-east/a/1", Some(7)),
        endpoint(2, 0, "us-east/a/1", Some(7)),
        endpoint(3, 0, "us-east/b/1", None),
        endpoint(4, 1, "us-west/a/1", Some(2)),
        // The same locality at another priority is a different group.
        endpoint(5, 1, "us-east/b/1", None),
    ]
    .into();
    cluster.locality_weighted_lb = true;
    assert_eq!(name.as_str(), cluster.name.as_str());
    snapshot
}

#[test]
fn priorities_and_locality_weights_round_trip() {
    let snapshot = with_priorities_and_weights();
    for node in [NodeKind::Envoy, NodeKind::ProxylessGrpc] {
        assert_same(&snapshot, &round_trip(&snapshot, node));
    }
    // On the wire: one group per (locality, priority), weights as istiod would send them.
    let resources = to_resources(&snapshot, NodeKind::ProxylessGrpc);
    let cla = resources
        .load_assignments
        .iter()
        .find(|c| c.cluster_name == "outbound|9080||reviews.default.svc.cluster.local")
        .unwrap();
    let groups: Vec<(String, u32, u32, usize)> = cla
        .endpoints
        .iter()
        .map(|g| {
            let l = g.locality.as_ref().unwrap();
            (
                format!("{}/{}", l.region, l.zone),
                g.priority,
                g.load_balancing_weight.unwrap().value,
                g.lb_endpoints.len(),
            )
        })
        .collect();
    assert_eq!(
        groups,
        vec![
            ("us-east/a".to_owned(), 0, 7, 2),
            ("us-east/b".to_owned(), 0, 3, 1),
            ("us-west/a".to_owned(), 1, 2, 1),
            ("us-east/b".to_owned(), 1, 5, 1),
        ]
    );
    let cluster = resources
        .clusters
        .iter()
        .find(|c| c.name == "outbound|9080||reviews.default.svc.cluster.local")
        .unwrap();
    assert!(
        cluster
            .common_lb_config
            .as_ref()
            .and_then(|l| l.locality_config_specifier.as_ref())
            .is_some(),
        "locality_weighted_lb_config is sent"
    );
}

#[test]
fn eds_priorities_must_be_contiguous_and_repeated_localities_merge() {
    use mesh_xds::translate::decode_load_assignment;
    let snapshot = with_priorities_and_weights();
    let cla = to_resources(&snapshot, NodeKind::Envoy)
        .load_assignments
        .into_iter()
        .find(|c| c.cluster_name == "outbound|9080||reviews.default.svc.cluster.local")
        .unwrap();
    let decoded = decode_load_assignment(&cla).unwrap();
    assert!(decoded.warnings.is_empty(), "{:?}", decoded.warnings);
    let priorities: Vec<u32> = decoded.endpoints.iter().map(|e| e.priority).collect();
    assert_eq!(priorities, vec![0, 0, 0, 1, 1]);

    // Priority 1 → 2 leaves a gap at 1.
    let mut gap = cla.clone();
    for g in &mut gap.endpoints {
        if g.priority == 1 {
            g.priority = 2;
        }
    }
    let err = decode_load_assignment(&gap).unwrap_err();
    assert_eq!(err.kind, ResourceKind::Endpoints);
    assert_eq!(err.field, "endpoints[2].priority");
    assert_eq!(
        err.to_string(),
        "endpoints outbound|9080||reviews.default.svc.cluster.local: endpoints[2].priority: \
         priority 2 without priority 1: priorities must run from 0 without gaps"
    );
    // No priority 0 at all.
    let mut no_zero = cla.clone();
    for g in &mut no_zero.endpoints {
        g.priority += 1;
    }
    assert_eq!(
        decode_load_assignment(&no_zero).unwrap_err().field,
        "endpoints[0].priority"
    );

    // The same locality twice at one priority (Envoy accepts it): one locality, whose weight
    // is the sum of the two groups' (7 given + 3 implied by the endpoints).
    let mut twice = cla.clone();
    twice.endpoints[1].locality = twice.endpoints[0].locality.clone();
    let merged = decode_load_assignment(&twice).unwrap();
    let weights: Vec<Option<u32>> = merged.endpoints.iter().map(|e| e.locality_weight).collect();
    assert_eq!(weights, vec![Some(10), Some(10), Some(10), Some(2), None]);

    // A locality weight of zero.
    let mut zero = cla;
    zero.endpoints[0].load_balancing_weight =
        Some(envoy_types::pb::google::protobuf::UInt32Value { value: 0 });
    assert_eq!(
        decode_load_assignment(&zero).unwrap_err().field,
        "endpoints[0].load_balancing_weight"
    );
}

#[test]
fn istiod_locality_weights_mean_the_sum_of_endpoint_weights() {
    use mesh_xds::translate::decode_load_assignment;
    let ctx = BuildContext::default();
    let snapshot = istio::load_paths(&[fixture("bookinfo-services.yaml")], &ctx).unwrap();
    for cla in to_resources(&snapshot, NodeKind::ProxylessGrpc).load_assignments {
        let decoded = decode_load_assignment(&cla).unwrap();
        assert!(
            decoded
                .endpoints
                .iter()
                .all(|e| e.locality_weight.is_none())
        );
        // A weight other than the sum is the control plane's own.
        let mut explicit = cla.clone();
        let Some(group) = explicit.endpoints.first_mut() else {
            continue;
        };
        let sum = group.load_balancing_weight.unwrap().value;
        group.load_balancing_weight =
            Some(envoy_types::pb::google::protobuf::UInt32Value { value: sum + 1 });
        let decoded = decode_load_assignment(&explicit).unwrap();
        assert_eq!(decoded.endpoints[0].locality_weight, Some(sum + 1));
    }
}

#[test]
fn envoy_takes_its_workload_certificate_from_the_agent_as_istiod_says() {
    use envoy_types::pb::envoy::config::core::v3::{
        config_source::ConfigSourceSpecifier, grpc_service::TargetSpecifier,
        transport_socket::ConfigType,
    };
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::UpstreamTlsContext;
    use prost::Message;

    let ctx = BuildContext::default();
    let snapshot = istio::load_paths(
        &[
            fixture("bookinfo-services.yaml"),
            bookinfo("destination-rule-all-mtls.yaml"),
        ],
        &ctx,
    )
    .unwrap();
    let cluster = to_resources(&snapshot, NodeKind::Envoy)
        .clusters
        .into_iter()
        .find(|c| c.name == "outbound|9080|v1|reviews.default.svc.cluster.local")
        .unwrap();
    let Some(ConfigType::TypedConfig(any)) = cluster.transport_socket.unwrap().config_type else {
        panic!("no TLS")
    };
    let tls = UpstreamTlsContext::decode(any.value.as_slice()).unwrap();
    let secret = &tls
        .common_tls_context
        .unwrap()
        .tls_certificate_sds_secret_configs[0];
    assert_eq!(secret.name, "default");
    let Some(ConfigSourceSpecifier::ApiConfigSource(api)) = secret
        .sds_config
        .as_ref()
        .unwrap()
        .config_source_specifier
        .as_ref()
    else {
        panic!("SDS over ADS: istiod serves no secrets")
    };
    match &api.grpc_services[0].target_specifier {
        Some(TargetSpecifier::EnvoyGrpc(g)) => assert_eq!(g.cluster_name, "sds-grpc"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_table_no_balancer_can_build_is_refused_where_it_is_written() {
    use envoy_types::pb::envoy::config::cluster::v3::cluster::{LbConfig, MaglevLbConfig};
    use envoy_types::pb::google::protobuf::UInt64Value;

    let ctx = BuildContext::default();
    let snapshot = istio::load_paths(&[fixture("bookinfo-services.yaml")], &ctx).unwrap();
    let mut cluster = to_resources(&snapshot, NodeKind::Envoy).clusters.remove(0);
    cluster.lb_policy = 5; // MAGLEV
    cluster.lb_config = Some(LbConfig::MaglevLbConfig(MaglevLbConfig {
        table_size: Some(UInt64Value { value: 65_536 }),
    }));
    let err = decode_cluster(&cluster).unwrap_err();
    assert_eq!(err.field, "lb_config");
    assert!(err.message.contains("65536"), "{err}");
}

#[test]
fn an_overprovisioning_factor_mesh_does_not_use_is_reported() {
    use envoy_types::pb::envoy::config::endpoint::v3::cluster_load_assignment::Policy;
    use envoy_types::pb::google::protobuf::UInt32Value;
    use mesh_xds::translate::decode_load_assignment;

    let ctx = BuildContext::default();
    let snapshot = istio::load_paths(&[fixture("bookinfo-services.yaml")], &ctx).unwrap();
    let mut cla = to_resources(&snapshot, NodeKind::ProxylessGrpc)
        .load_assignments
        .remove(0);
    cla.policy = Some(Policy {
        overprovisioning_factor: Some(UInt32Value { value: 140 }),
        ..Default::default()
    });
    assert!(decode_load_assignment(&cla).unwrap().warnings.is_empty());
    cla.policy = Some(Policy {
        overprovisioning_factor: Some(UInt32Value { value: 200 }),
        ..Default::default()
    });
    let warnings = decode_load_assignment(&cla).unwrap().warnings;
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0]
            .to_string()
            .contains("policy.overprovisioning_factor"),
        "{warnings:?}"
    );
}
