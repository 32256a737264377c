//! What the client reports (`reporter="source"`): Istio's request metrics with exact labels and
//! values for known traffic, read back from a Prometheus recorder. One test per binary: it
//! installs the global recorder.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.

mod backends;

use std::sync::atomic::Ordering;

use backends::{backend, service_yaml};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use mesh_core::{BuildContext, Mesh, Workload, istio};
use mesh_tower::client::MeshClient;
use mesh_tower::telemetry::{Telemetry, prometheus_builder};
use tower::ServiceExt;

async fn call(client: &MeshClient, url: &str) -> StatusCode {
    let response = client
        .clone()
        .oneshot(Request::get(url).body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    response.into_body().collect().await.unwrap();
    status
}

/// The value of the series whose line contains every one of `labels`.
fn value(text: &str, metric: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(metric) && labels.iter().all(|want| l.contains(want)))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .reduce(|a, b| a + b)
}

#[tokio::test]
async fn source_reporter_metrics_for_known_traffic() {
    let recorder = prometheus_builder().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).unwrap();

    let (v1, broken) = (backend("v1").await, backend("v2").await);
    broken.fail_next.store(u32::MAX, Ordering::Relaxed);
    let yaml = service_yaml("inventory", &[&v1, &broken], "")
        + "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: inventory, namespace: default}\nspec:\n  hosts: [inventory]\n  http:\n  - match: [{headers: {x-break: {exact: \"1\"}}}]\n    route: [{destination: {host: inventory, subset: v2}}]\n    retries: {attempts: 0}\n  - route: [{destination: {host: inventory, subset: v1}}]\n";
    let ctx = BuildContext {
        workload: Workload::new("default", "frontend")
            .labels([("app", "frontend"), ("version", "v1")]),
        ..Default::default()
    };
    let yaml = yaml
        + "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: picky, namespace: default}\nspec:\n  hosts: [picky]\n  http:\n  - match: [{headers: {x-never: {exact: \"1\"}}}]\n    route: [{destination: {host: picky}}]\n---\n"
        + &service_yaml("picky", &[&v1], "");
    // A service whose only endpoint refuses connections (a port nobody listens on).
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let yaml = yaml
        + "---\n"
        + &service_yaml("gone", &[&v1], "").replace(
            &format!("http: {}", v1.addr.port()),
            &format!("http: {closed}"),
        );
    let mesh = Mesh::from_snapshot(
        ctx.clone(),
        istio::load_str("test.yaml", &yaml, &ctx).unwrap(),
    );
    let telemetry = Telemetry::new();
    let client = MeshClient::builder(mesh)
        .telemetry(telemetry.clone())
        .build();

    for _ in 0..10 {
        assert_eq!(
            call(&client, "http://inventory:8080/items").await,
            StatusCode::OK
        );
    }
    for _ in 0..3 {
        let request = Request::get("http://inventory:8080/items")
            .header("x-break", "1")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let response = client.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        response.into_body().collect().await.unwrap();
    }
    assert_eq!(
        call(&client, "http://picky:8080/").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&client, "http://gone:8080/").await,
        StatusCode::SERVICE_UNAVAILABLE
    );

    let text = handle.render();
    // Plain HTTP calls have no gRPC message series (Istio counts gRPC requests only).
    assert!(!text.contains("_messages_total{"), "{text}");
    let common = [
        "reporter=\"source\"",
        "source_workload=\"frontend\"",
        "source_workload_namespace=\"default\"",
        "source_app=\"frontend\"",
        "source_version=\"v1\"",
    ];
    let ok: Vec<&str> = common
        .iter()
        .copied()
        .chain([
            "destination_service=\"inventory.default.svc.cluster.local\"",
            "destination_service_name=\"inventory\"",
            "destination_service_namespace=\"default\"",
            "destination_app=\"inventory\"",
            "destination_version=\"v1\"",
            "response_code=\"200\"",
            "request_protocol=\"http\"",
            "response_flags=\"-\"",
        ])
        .collect();
    assert_eq!(
        value(&text, "istio_requests_total", &ok),
        Some(10.0),
        "{text}"
    );
    let failed: Vec<&str> = common
        .iter()
        .copied()
        .chain(["destination_version=\"v2\"", "response_code=\"503\""])
        .collect();
    assert_eq!(
        value(&text, "istio_requests_total", &failed),
        Some(3.0),
        "{text}"
    );
    let no_route: Vec<&str> = common
        .iter()
        .copied()
        .chain(["response_code=\"404\"", "response_flags=\"NR\""])
        .collect();
    assert_eq!(
        value(&text, "istio_requests_total", &no_route),
        Some(1.0),
        "{text}"
    );
    // Istio's default retries (2 attempts) both failed to connect: Envoy writes `UF,URX`
    // (envoy `stream_info/utility.cc` `ResponseFlagUtils::toShortString`, flags in its table
    // order), not `URX` alone (issue #14). No server answered, so no peer metadata: the
    // destination's canonical revision is Istio's default `latest` (istio_stats.cc).
    let gone: Vec<&str> = common
        .iter()
        .copied()
        .chain([
            "destination_service=\"gone.default.svc.cluster.local\"",
            "response_code=\"503\"",
            "response_flags=\"UF,URX\"",
            "destination_canonical_revision=\"latest\"",
        ])
        .collect();
    assert_eq!(
        value(&text, "istio_requests_total", &gone),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "istio_request_duration_milliseconds_count", &ok),
        Some(10.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "istio_response_bytes_sum", &ok),
        Some(20.0),
        "ten `v1` bodies: {text}"
    );
    let total: f64 = value(&text, "istio_requests_total", &["reporter=\"source\""]).unwrap();
    assert_eq!(total, 15.0);

    // The service graph saw the same edges.
    let graph = telemetry
        .service_graph()
        .snapshot(tokio::time::Instant::now());
    let requests: u64 = graph.edges.iter().map(|e| e.requests).sum();
    assert_eq!(requests, 15, "{graph:?}");
    // The unanswered call's edge ends on the service's node, not on `unknown`.
    assert!(
        graph
            .edges
            .iter()
            .any(|e| e.destination == "default/gone.default.svc.cluster.local/*"),
        "{graph:?}"
    );
}
