//! `mesh_tonic::serve` with tonic-health's server over mutual TLS on 127.0.0.1: allowed callers
//! get answers, denied ones `PERMISSION_DENIED` without reaching the service.
#![allow(clippy::unwrap_used)]

use mesh_core::identity::CertificateAuthority;
use mesh_core::{Mesh, Workload};
use mesh_testing::tls::{channel, identity};
use tokio::net::TcpListener;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const POLICY: &str = "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec:
  mtls: {mode: STRICT}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: health, namespace: default}
spec:
  action: ALLOW
  rules:
  - from: [{source: {principals: [cluster.local/ns/foo/sa/sleep]}}]
";

/// `istio_requests_total` lines as (grpc_response_status, response_code, value).
fn grpc_series(text: &str) -> Vec<(String, String, String)> {
    let label = |line: &str, name: &str| {
        let start = line.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        line[start..].split('"').next().unwrap().to_owned()
    };
    let mut out: Vec<_> = text
        .lines()
        .filter(|l| l.starts_with("istio_requests_total{"))
        .map(|l| {
            assert!(l.contains("reporter=\"destination\""), "{l}");
            assert!(l.contains("request_protocol=\"grpc\""), "{l}");
            assert!(
                l.contains("connection_security_policy=\"mutual_tls\""),
                "{l}"
            );
            let value = l.rsplit(' ').next().unwrap().to_owned();
            (
                label(l, "grpc_response_status"),
                label(l, "response_code"),
                value,
            )
        })
        .collect();
    out.sort();
    out
}

/// Runs on the current thread, so the thread-local metrics recorder sees the server's tasks.
#[tokio::test]
async fn health_over_mutual_tls_with_authorization() {
    let recorder = mesh_tower::telemetry::prometheus_builder().build_recorder();
    let metrics = recorder.handle();
    let _recorder = metrics::set_default_local_recorder(&recorder);
    let ca = CertificateAuthority::generate("cluster.local").unwrap();
    let mesh = Mesh::builder()
        .workload(Workload::new("default", "reviews").labels([("app", "reviews")]))
        .identity(identity(&ca, "default", "reviews"))
        .build()
        .await
        .unwrap();
    mesh.apply(mesh_core::istio::load_str("t.yaml", POLICY, mesh.context()).unwrap());

    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("reviews", tonic_health::ServingStatus::Serving)
        .await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let routes = tonic::service::Routes::new(health);
    tokio::spawn(mesh_tonic::serve(&mesh, listener, routes).into_future());

    let mut sleep = HealthClient::new(channel(&ca, addr, "foo", "sleep").await);
    let response = sleep
        .check(HealthCheckRequest {
            service: "reviews".into(),
        })
        .await
        .unwrap();
    assert_eq!(response.get_ref().status(), ServingStatus::Serving);
    let unknown = sleep
        .check(HealthCheckRequest {
            service: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    let mut evil = HealthClient::new(channel(&ca, addr, "foo", "evil").await);
    let denied = evil
        .check(HealthCheckRequest {
            service: "reviews".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");

    // grpc-status from the trailers (OK), and from trailers-only responses (NOT_FOUND from the
    // service, PERMISSION_DENIED from mesh). Records are written when each body ends, which the
    // client has seen; wait for the server task to get there.
    let want = vec![
        ("0".to_owned(), "200".to_owned(), "1".to_owned()),
        ("5".to_owned(), "200".to_owned(), "1".to_owned()),
        ("7".to_owned(), "200".to_owned(), "1".to_owned()),
    ];
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while grpc_series(&metrics.render()) != want {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{}", metrics.render()));
}
