//! The client records a cluster's calls through telemetry handles resolved once per label
//! combination: calls to one endpoint of one cluster whose status alternates must still count
//! each status apart (here: the service graph's request and error counts).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.

mod backends;

use std::sync::atomic::Ordering;

use backends::{backend, service_yaml};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use mesh_core::{BuildContext, Mesh, Workload, istio};
use mesh_tower::client::MeshClient;
use mesh_tower::telemetry::Telemetry;
use tower::ServiceExt;

async fn call(client: &MeshClient) -> StatusCode {
    let request = Request::get("http://inventory:8080/items")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = client.clone().oneshot(request).await.unwrap();
    let status = response.status();
    response.into_body().collect().await.unwrap();
    status
}

#[tokio::test]
async fn alternating_statuses_of_one_endpoint_are_counted_apart() {
    let v1 = backend("v1").await;
    // No retries: each 503 is the call's answer.
    let yaml = service_yaml("inventory", &[&v1], "")
        + "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: inventory, namespace: default}\nspec:\n  hosts: [inventory]\n  http:\n  - route: [{destination: {host: inventory}}]\n    retries: {attempts: 0}\n";
    let ctx = BuildContext {
        workload: Workload::new("default", "frontend").labels([("app", "frontend")]),
        ..Default::default()
    };
    let mesh = Mesh::from_snapshot(
        ctx.clone(),
        istio::load_str("test.yaml", &yaml, &ctx).unwrap(),
    );
    let telemetry = Telemetry::new();
    let client = MeshClient::builder(mesh)
        .telemetry(telemetry.clone())
        .build();

    // ok, fail, ok, fail, ... : each call's labels were seen two calls before.
    let mut failures = 0;
    for i in 0..10 {
        let fail = i % 2 == 1;
        if fail {
            v1.fail_next.store(1, Ordering::Relaxed);
            failures += 1;
        }
        let expected = if fail {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::OK
        };
        assert_eq!(call(&client).await, expected, "call {i}");
    }

    let graph = telemetry
        .service_graph()
        .snapshot(tokio::time::Instant::now());
    let requests: u64 = graph.edges.iter().map(|e| e.requests).sum();
    let errors: u64 = graph.edges.iter().map(|e| e.errors).sum();
    assert_eq!(requests, 10, "{graph:?}");
    assert_eq!(errors, failures, "{graph:?}");
}
