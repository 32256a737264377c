//! Incremental ADS against `mesh xds serve`'s server on 127.0.0.1, driven as an Envoy sidecar
//! drives it (Istio 1.22+ default): wildcard CDS and LDS, named EDS and RDS, ACKs; an edit sends
//! only what changed; a removed service is named in `removed_resources`; a reconnect with
//! `initial_resource_versions` gets nothing it already holds.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use mesh_xds::translate::type_url;
use support::control_plane::serve_dir;
use support::{Backend, config, write_atomic};
use tokio::sync::mpsc;

const CLUSTER_V1: &str = "outbound|8080|v1|inventory.default.svc.cluster.local";

struct Client {
    tx: mpsc::Sender<DeltaDiscoveryRequest>,
    responses: tonic::Streaming<DeltaDiscoveryResponse>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Self {
        let (tx, rx) = mpsc::channel(16);
        let requests =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|r| (r, rx)) },
            );
        let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        let responses = client
            .delta_aggregated_resources(requests)
            .await
            .unwrap()
            .into_inner();
        Self { tx, responses }
    }

    async fn send(&self, r: DeltaDiscoveryRequest) {
        self.tx.send(r).await.unwrap();
    }

    async fn next(&mut self) -> DeltaDiscoveryResponse {
        tokio::time::timeout(Duration::from_secs(10), self.responses.message())
            .await
            .expect("a response in time")
            .unwrap()
            .expect("the stream is open")
    }

    async fn ack(&self, r: &DeltaDiscoveryResponse) {
        self.send(DeltaDiscoveryRequest {
            type_url: r.type_url.clone(),
            response_nonce: r.nonce.clone(),
            ..Default::default()
        })
        .await;
    }
}

fn envoy_node() -> Node {
    Node {
        id: "sidecar~127.0.0.1~envoy.default~default.svc.cluster.local".into(),
        ..Default::default()
    }
}

fn names(r: &DeltaDiscoveryResponse) -> Vec<&str> {
    let mut n: Vec<&str> = r.resources.iter().map(|r| r.name.as_str()).collect();
    n.sort_unstable();
    n
}

fn backends(ports: &[u16]) -> Vec<Backend> {
    ports
        .iter()
        .enumerate()
        .map(|(i, p)| Backend {
            addr: SocketAddr::from(([127, 0, 0, 1], *p)),
            version: format!("v{}", i + 1),
        })
        .collect()
}

#[tokio::test]
async fn only_what_changed_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("inventory.yaml");
    let b = backends(&[9001, 9002]);
    write_atomic(&file, &config(&[&b[0], &b[1]], &[90, 10]));
    let addr = serve_dir(dir.path()).await;

    let mut c = Client::connect(addr).await;
    c.send(DeltaDiscoveryRequest {
        node: Some(envoy_node()),
        type_url: type_url::CLUSTER.into(),
        ..Default::default()
    })
    .await;
    let cds = c.next().await;
    assert_eq!(cds.type_url, type_url::CLUSTER);
    assert!(names(&cds).contains(&CLUSTER_V1), "{:?}", names(&cds));
    assert!(cds.removed_resources.is_empty());
    let cluster_count = cds.resources.len();
    let held: HashMap<String, String> = cds
        .resources
        .iter()
        .map(|r| (r.name.clone(), r.version.clone()))
        .collect();
    c.ack(&cds).await;

    c.send(DeltaDiscoveryRequest {
        type_url: type_url::ENDPOINTS.into(),
        resource_names_subscribe: vec![CLUSTER_V1.into(), "outbound|1|x|nowhere".into()],
        ..Default::default()
    })
    .await;
    let eds = c.next().await;
    assert_eq!(names(&eds), [CLUSTER_V1]);
    assert_eq!(
        eds.removed_resources,
        ["outbound|1|x|nowhere"],
        "a named resource that does not exist is said to be gone"
    );
    c.ack(&eds).await;

    c.send(DeltaDiscoveryRequest {
        type_url: type_url::LISTENER.into(),
        ..Default::default()
    })
    .await;
    let lds = c.next().await;
    assert_eq!(names(&lds), ["0.0.0.0_8080"]);
    c.ack(&lds).await;

    // A weight edit changes the route only: no cluster, endpoint or listener is resent.
    c.send(DeltaDiscoveryRequest {
        type_url: type_url::ROUTE.into(),
        resource_names_subscribe: vec!["8080".into()],
        ..Default::default()
    })
    .await;
    let rds = c.next().await;
    assert_eq!(names(&rds), ["8080"]);
    let route_version = rds.resources[0].version.clone();
    c.ack(&rds).await;
    write_atomic(&file, &config(&[&b[0], &b[1]], &[10, 90]));
    let pushed = c.next().await;
    assert_eq!(pushed.type_url, type_url::ROUTE, "only the route changed");
    assert_eq!(names(&pushed), ["8080"]);
    assert_ne!(pushed.resources[0].version, route_version);
    c.ack(&pushed).await;

    // Dropping the second backend's subset removes its cluster (and its endpoints).
    write_atomic(&file, &config(&[&b[0]], &[100]));
    let cds = c.next().await;
    assert_eq!(cds.type_url, type_url::CLUSTER);
    assert!(cds.resources.is_empty(), "{:?}", names(&cds));
    assert_eq!(
        cds.removed_resources,
        ["outbound|8080|v2|inventory.default.svc.cluster.local"]
    );
    c.ack(&cds).await;

    // A reconnect that holds the first versions gets only what differs from them.
    let mut again = Client::connect(addr).await;
    again
        .send(DeltaDiscoveryRequest {
            node: Some(envoy_node()),
            type_url: type_url::CLUSTER.into(),
            initial_resource_versions: held,
            ..Default::default()
        })
        .await;
    let cds = again.next().await;
    assert!(
        cds.resources.is_empty(),
        "unchanged clusters are not resent: {:?}",
        names(&cds)
    );
    assert!(cluster_count >= 3);
    assert_eq!(
        cds.removed_resources,
        ["outbound|8080|v2|inventory.default.svc.cluster.local"]
    );
}
