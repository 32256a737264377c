//! Requests for hosts no resource declares follow Istio's `outboundTrafficPolicy`: `ALLOW_ANY`
//! (the default) passes them through in plaintext to the host and port the application named,
//! resolved by DNS (`PassthroughCluster`); `REGISTRY_ONLY` answers 502 (`BlackHoleCluster`), as
//! istiod's `allow_any` / `block_all` catch-all virtual hosts do
//! (pilot/pkg/networking/core/httproute.go, BuildSidecarOutboundVirtualHosts). One test per
//! binary: it installs the global metrics recorder.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.

mod backends;

use std::sync::atomic::Ordering;

use backends::backend;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use mesh_core::{BuildContext, Mesh, MeshSettings, OutboundTrafficPolicy, Workload, istio};
use mesh_tower::client::MeshClient;
use mesh_tower::telemetry::{Telemetry, prometheus_builder};
use tower::ServiceExt;

async fn call(client: &MeshClient, url: &str) -> (StatusCode, String) {
    let response = client
        .clone()
        .oneshot(Request::get(url).body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn count(text: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with("istio_requests_total") && labels.iter().all(|w| l.contains(w)))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

fn client(yaml: &str, policy: OutboundTrafficPolicy, telemetry: &Telemetry) -> MeshClient {
    let ctx = BuildContext {
        workload: Workload::new("default", "frontend").labels([("app", "frontend")]),
        settings: MeshSettings {
            outbound_traffic_policy: policy,
            ..MeshSettings::default()
        },
    };
    let snapshot = istio::load_str("test.yaml", yaml, &ctx).unwrap();
    MeshClient::builder(Mesh::from_snapshot(ctx, snapshot))
        .telemetry(telemetry.clone())
        .build()
}

#[tokio::test]
async fn undeclared_hosts_pass_through_or_hit_the_black_hole() {
    let recorder = prometheus_builder().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).unwrap();
    let telemetry = Telemetry::new();

    let (external, declared) = (backend("external").await, backend("declared").await);
    let port = external.addr.port();
    // A service declared on the external backend's port too, so both the "no route
    // configuration for the port" and the "no virtual host for the authority" cases occur.
    let yaml = format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: declared}}\nspec:\n  hosts: [declared.example.com]\n  resolution: STATIC\n  ports: [{{number: {port}, name: http, protocol: HTTP}}]\n  endpoints: [{{address: 127.0.0.1, ports: {{http: {}}}}}]\n",
        declared.addr.port()
    );

    let allow = client(&yaml, OutboundTrafficPolicy::AllowAny, &telemetry);
    // Same port as a declared service, undeclared authority: passthrough by DNS name.
    let (status, body) = call(&allow, &format!("http://localhost:{port}/x")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "external"));
    // An IP literal.
    let (status, body) = call(&allow, &format!("http://127.0.0.1:{port}/y")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "external"));
    // A port no service declares.
    let other = backend("other").await;
    let (status, body) = call(&allow, &format!("http://localhost:{}/", other.addr.port())).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "other"));
    // The declared host still routes by config.
    let (status, body) = call(&allow, &format!("http://declared.example.com:{port}/")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "declared"));
    assert_eq!(external.hits.load(Ordering::Relaxed), 2);
    assert_eq!(
        *external.authorities.lock().unwrap(),
        [format!("localhost:{port}"), format!("127.0.0.1:{port}")],
        "the application's authority is sent as is"
    );

    let registry_only = client(&yaml, OutboundTrafficPolicy::RegistryOnly, &telemetry);
    let (status, _) = call(&registry_only, &format!("http://localhost:{port}/x")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let (status, _) = call(
        &registry_only,
        &format!("http://127.0.0.1:{}/", other.addr.port()),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let (status, body) = call(
        &registry_only,
        &format!("http://declared.example.com:{port}/"),
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "declared"));
    assert_eq!(
        external.hits.load(Ordering::Relaxed),
        2,
        "nothing passed through"
    );
    assert_eq!(other.hits.load(Ordering::Relaxed), 1);

    let text = handle.render();
    let passthrough = [
        "reporter=\"source\"",
        "destination_service=\"PassthroughCluster\"",
        "destination_service_name=\"PassthroughCluster\"",
        "response_code=\"200\"",
    ];
    assert_eq!(count(&text, &passthrough), 3.0, "{text}");
    let black_hole = [
        "reporter=\"source\"",
        "destination_service_name=\"BlackHoleCluster\"",
        "response_code=\"502\"",
    ];
    assert_eq!(count(&text, &black_hole), 2.0, "{text}");
    assert!(
        !text.contains("localhost"),
        "no authority in labels: {text}"
    );
}
