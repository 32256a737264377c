//! Istio files → model → xDS resources → model: equal. And xDS errors name resource and field.

#![allow(clippy::unwrap_used)] // a panic in a test is a failed test

use std::path::{Path, PathBuf};

use mesh_core::model::{Snapshot, SnapshotSource};
use mesh_core::{BuildContext, Workload, istio};
use mesh_tonic::xds::translate::{
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
