//! The ADS client against a server the test drives directly: bad resources are NACKed with the
//! previous version and an error naming resource and field, the valid resources of the same
//! response are used, traffic continues on the last good config, and a resource never sent is
//! declared missing by the does-not-exist timer.

#![allow(clippy::unwrap_used)] // a panic in a test is a failed test

mod support;

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Any;
use mesh_core::{BuildContext, Mesh, Workload, istio};
use mesh_xds::bootstrap::XdsTarget;
use mesh_xds::client::{Backoff, ResourceState, XdsClient, XdsClientConfig};
use mesh_xds::translate::{NodeKind, XdsResources, to_resources, type_url};
use prost::Message;
use support::{backend, config, traffic, until};
use tokio::sync::mpsc;

type Responses = mpsc::UnboundedReceiver<Result<DiscoveryResponse, tonic::Status>>;

struct UnboundedStream(Responses);

impl futures_core::Stream for UnboundedStream {
    type Item = Result<DiscoveryResponse, tonic::Status>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// An ADS server whose every response the test writes.
#[derive(Clone)]
struct Driven {
    requests: mpsc::UnboundedSender<DiscoveryRequest>,
    responses: Arc<Mutex<Option<Responses>>>,
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for Driven {
    type StreamAggregatedResourcesStream = UnboundedStream;
    type DeltaAggregatedResourcesStream = Pin<
        Box<dyn futures_core::Stream<Item = Result<DeltaDiscoveryResponse, tonic::Status>> + Send>,
    >;

    async fn stream_aggregated_resources(
        &self,
        request: tonic::Request<tonic::Streaming<DiscoveryRequest>>,
    ) -> Result<tonic::Response<UnboundedStream>, tonic::Status> {
        let mut inbound = request.into_inner();
        let tx = self.requests.clone();
        tokio::spawn(async move {
            while let Ok(Some(r)) = inbound.message().await {
                if tx.send(r).is_err() {
                    break;
                }
            }
        });
        let rx = self
            .responses
            .lock()
            .unwrap()
            .take()
            .ok_or_else(|| tonic::Status::unavailable("one stream only"))?;
        Ok(tonic::Response::new(UnboundedStream(rx)))
    }

    async fn delta_aggregated_resources(
        &self,
        _: tonic::Request<tonic::Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<tonic::Response<Self::DeltaAggregatedResourcesStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("delta"))
    }
}

struct Harness {
    requests: mpsc::UnboundedReceiver<DiscoveryRequest>,
    responses: mpsc::UnboundedSender<Result<DiscoveryResponse, tonic::Status>>,
    addr: std::net::SocketAddr,
}

async fn driven() -> Harness {
    let (req_tx, requests) = mpsc::unbounded_channel();
    let (responses, resp_rx) = mpsc::unbounded_channel();
    let server = Driven {
        requests: req_tx,
        responses: Arc::new(Mutex::new(Some(resp_rx))),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AggregatedDiscoveryServiceServer::new(server))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    Harness {
        requests,
        responses,
        addr,
    }
}

fn pack<M: Message>(url: &str, items: &[M]) -> Vec<Any> {
    items
        .iter()
        .map(|m| Any {
            type_url: url.to_owned(),
            value: m.encode_to_vec(),
        })
        .collect()
}

impl Harness {
    fn send(&self, url: &str, version: &str, nonce: &str, resources: Vec<Any>) {
        self.responses
            .send(Ok(DiscoveryResponse {
                version_info: version.into(),
                type_url: url.into(),
                nonce: nonce.into(),
                resources,
                ..Default::default()
            }))
            .unwrap();
    }

    fn send_all(&self, r: &XdsResources, version: &str, nonce_prefix: &str) {
        self.send(
            type_url::CLUSTER,
            version,
            &format!("{nonce_prefix}c"),
            pack(type_url::CLUSTER, &r.clusters),
        );
        self.send(
            type_url::ENDPOINTS,
            version,
            &format!("{nonce_prefix}e"),
            pack(type_url::ENDPOINTS, &r.load_assignments),
        );
        self.send(
            type_url::LISTENER,
            version,
            &format!("{nonce_prefix}l"),
            pack(type_url::LISTENER, &r.listeners),
        );
        self.send(
            type_url::ROUTE,
            version,
            &format!("{nonce_prefix}r"),
            pack(type_url::ROUTE, &r.route_configurations),
        );
    }

    /// The next request answering `nonce`.
    async fn answer_to(&mut self, nonce: &str) -> DiscoveryRequest {
        loop {
            let r = tokio::time::timeout(Duration::from_secs(10), self.requests.recv())
                .await
                .expect("request")
                .expect("stream");
            if r.response_nonce == nonce {
                return r;
            }
        }
    }
}

async fn start_client(h: &Harness, timeout: Duration) -> (Mesh, XdsClient) {
    let workload = Workload::new("default", "frontend");
    let mesh = Mesh::builder()
        .workload(workload.clone())
        .build()
        .await
        .unwrap();
    let config = XdsClientConfig::new(XdsTarget::Tcp(h.addr.to_string()), &workload)
        .backoff(Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(200),
            ..Backoff::default()
        })
        .resource_timeout(timeout);
    (mesh.clone(), XdsClient::start(mesh, config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_push_is_nacked_and_traffic_keeps_the_last_good_config() {
    let (v1, v2) = (backend("v1").await, backend("v2").await);
    let snapshot = istio::load_str(
        "inventory.yaml",
        &config(&[&v1, &v2], &[100, 0]),
        &BuildContext::default(),
    )
    .unwrap();
    let good = to_resources(&snapshot, NodeKind::ProxylessGrpc);
    let mut h = driven().await;
    let (mesh, client) = start_client(&h, Duration::from_secs(15)).await;

    let first = tokio::time::timeout(Duration::from_secs(10), h.requests.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        first
            .node
            .as_ref()
            .is_some_and(|n| n.id.contains("~default.svc.cluster.local")),
        "the node comes first"
    );
    h.send_all(&good, "1", "a");
    tokio::time::timeout(Duration::from_secs(10), client.ready())
        .await
        .expect("ready");
    let ack = h.answer_to("ac").await;
    assert_eq!(
        (ack.version_info.as_str(), ack.error_detail.is_none()),
        ("1", true),
        "CDS ACKed"
    );

    let (t, handle) = traffic(&mesh, "http://inventory:8080/", 20_000);
    until("traffic", Duration::from_secs(10), || {
        t.ok.load(Ordering::Relaxed) >= 100
    })
    .await;

    // CDS v2: one cluster broken, one new and valid.
    let v2_name = "outbound|8080|v2|inventory.default.svc.cluster.local";
    let mut clusters = good.clusters.clone();
    for c in &mut clusters {
        if c.name == v2_name {
            c.lb_policy = 6; // CLUSTER_PROVIDED
        }
    }
    let mut extra = good.clusters[0].clone();
    extra.name = "outbound|8080|extra|inventory.default.svc.cluster.local".into();
    clusters.push(extra);
    h.send(
        type_url::CLUSTER,
        "2",
        "b",
        pack(type_url::CLUSTER, &clusters),
    );
    let nack = h.answer_to("b").await;
    assert_eq!(
        nack.version_info, "1",
        "a NACK carries the previous version"
    );
    let detail = nack.error_detail.expect("error_detail");
    assert!(
        detail.message.contains(&format!(
            "cluster {v2_name}: lb_policy: CLUSTER_PROVIDED is not supported"
        )),
        "{}",
        detail.message
    );

    let mut changes = mesh.subscribe();
    tokio::time::timeout(
        Duration::from_secs(5),
        changes.wait_for(|s| s.clusters.keys().any(|k| k.as_str().contains("|extra|"))),
    )
    .await
    .expect("the valid cluster of the bad response is used")
    .unwrap();
    assert!(
        mesh.snapshot()
            .clusters
            .keys()
            .any(|k| k.as_str() == v2_name),
        "the bad cluster keeps its last good version"
    );
    assert!(
        mesh.status().last_rejection.is_some(),
        "the refusal is visible"
    );
    let state = client
        .status()
        .resources
        .into_iter()
        .find(|r| r.name == v2_name)
        .unwrap();
    assert!(
        matches!(state.state, ResourceState::Nacked { .. }) && state.version == "1",
        "{state:?}"
    );

    // RDS v2: weights summing to zero.
    let mut routes = good.route_configurations.clone();
    for vh in &mut routes[0].virtual_hosts {
        for r in &mut vh.routes {
            if let Some(Action::Route(a)) = &mut r.action
                && let Some(ClusterSpecifier::WeightedClusters(w)) = &mut a.cluster_specifier
            {
                for c in &mut w.clusters {
                    c.weight = Some(Default::default());
                }
            }
        }
    }
    h.send(type_url::ROUTE, "2", "c", pack(type_url::ROUTE, &routes));
    let nack = h.answer_to("c").await;
    assert_eq!(nack.version_info, "1");
    assert!(
        nack.error_detail
            .unwrap()
            .message
            .contains("weighted_clusters: weights sum to 0")
    );
    let ok_now = t.ok.load(Ordering::Relaxed);
    until("traffic after the NACKs", Duration::from_secs(10), || {
        t.ok.load(Ordering::Relaxed) >= ok_now + 200
    })
    .await;

    // A good RDS v3 moves traffic to v2.
    let moved = istio::load_str(
        "inventory.yaml",
        &config(&[&v1, &v2], &[0, 100]),
        &BuildContext::default(),
    )
    .unwrap();
    let moved = to_resources(&moved, NodeKind::ProxylessGrpc);
    h.send(
        type_url::ROUTE,
        "3",
        "d",
        pack(type_url::ROUTE, &moved.route_configurations),
    );
    let ack = h.answer_to("d").await;
    assert_eq!(
        (ack.version_info.as_str(), ack.error_detail.is_none()),
        ("3", true)
    );
    let v2_now = t.by_version[1].load(Ordering::Relaxed);
    until("traffic on v2", Duration::from_secs(10), || {
        t.by_version[1].load(Ordering::Relaxed) >= v2_now + 100
    })
    .await;
    t.stop.store(true, Ordering::Relaxed);
    handle.await.unwrap();
    assert_eq!(
        t.failed.load(Ordering::Relaxed),
        0,
        "NACKed pushes failed no request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_configuration_never_sent_does_not_exist_after_the_timeout() {
    let (v1, v2) = (backend("v1").await, backend("v2").await);
    let snapshot = istio::load_str(
        "inventory.yaml",
        &config(&[&v1, &v2], &[100, 0]),
        &BuildContext::default(),
    )
    .unwrap();
    let good = to_resources(&snapshot, NodeKind::ProxylessGrpc);
    let mut h = driven().await;
    let (mesh, client) = start_client(&h, Duration::from_millis(300)).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), h.requests.recv())
        .await
        .unwrap()
        .unwrap();
    h.send(
        type_url::CLUSTER,
        "1",
        "c",
        pack(type_url::CLUSTER, &good.clusters),
    );
    h.send(
        type_url::ENDPOINTS,
        "1",
        "e",
        pack(type_url::ENDPOINTS, &good.load_assignments),
    );
    h.send(
        type_url::LISTENER,
        "1",
        "l",
        pack(type_url::LISTENER, &good.listeners),
    );
    let rds = h.answer_to("l").await;
    assert!(rds.type_url == type_url::LISTENER);
    assert!(
        !client.is_ready(),
        "not ready while a route configuration is outstanding"
    );
    tokio::time::timeout(Duration::from_secs(5), client.ready())
        .await
        .expect("ready once the route configuration is known not to exist");
    let missing = client
        .status()
        .resources
        .into_iter()
        .find(|r| r.kind == "route")
        .unwrap();
    assert_eq!(missing.state, ResourceState::DoesNotExist);
    assert!(mesh.snapshot().routes.is_empty() && !mesh.snapshot().clusters.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_first_route_configuration_does_not_block_readiness() {
    let (v1, v2) = (backend("v1").await, backend("v2").await);
    let snapshot = istio::load_str(
        "inventory.yaml",
        &config(&[&v1, &v2], &[100, 0]),
        &BuildContext::default(),
    )
    .unwrap();
    let good = to_resources(&snapshot, NodeKind::ProxylessGrpc);
    let mut h = driven().await;
    let (mesh, client) = start_client(&h, Duration::from_secs(15)).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), h.requests.recv())
        .await
        .unwrap()
        .unwrap();
    let mut routes = good.route_configurations.clone();
    routes[0].virtual_hosts[0].domains.clear();
    let bad = XdsResources {
        route_configurations: routes,
        ..good.clone()
    };
    h.send_all(&bad, "1", "a");
    let nack = h.answer_to("ar").await;
    assert!(
        nack.error_detail
            .unwrap()
            .message
            .contains("virtual_hosts[0].domains: empty")
    );
    tokio::time::timeout(Duration::from_secs(5), client.ready())
        .await
        .expect("ready: the invalid route configuration is settled, not awaited");
    assert!(mesh.snapshot().routes.is_empty());
    assert!(!mesh.snapshot().clusters.is_empty());
}
