//! `istio_request_messages_total` and `istio_response_messages_total` from both reporters of
//! one real tonic streaming call (tonic-health's server-streaming `Watch`) made through
//! `mesh_tonic`'s channel to `mesh_tonic::serve` over mutual TLS on 127.0.0.1.
//!
//! What Istio does, and so what is checked (istio/proxy `istio_stats.cc`):
//! - only gRPC requests are counted (`decodeHeaders`: `Grpc::Common::isGrpcRequestHeaders`);
//! - the series are labelled by the peers alone: `reportHelper` adds the message deltas before
//!   `log` pushes `request_protocol`, `response_code`, `grpc_response_status`,
//!   `response_flags` and `connection_security_policy` (e2e expectation
//!   `testdata/metric/client_request_messages.yaml.tmpl`);
//! - a stream's counts are reported while it runs (`onReportTimer`), as deltas, not only when
//!   it ends (e2e `TestStatsGrpcStream` reads them between two batches of one stream).
//!
//! The recorder is thread-local and the test runs on a current-thread runtime, so the client's
//! and the server's recording (all on this thread) reach it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is a failed test.

use std::net::SocketAddr;
use std::time::Duration;

use mesh_core::identity::CertificateAuthority;
use mesh_core::{BuildContext, Mesh, Workload, istio};
use mesh_testing::tls::identity;
use mesh_tower::client::MeshClient;
use tokio::net::TcpListener;
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const SERVER_POLICY: &str = "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec:
  mtls: {mode: STRICT}
";

/// `reviews` as the client sees it: one endpoint, mutual TLS as service account `reviews`.
fn client_config(server: SocketAddr) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: reviews, namespace: default}}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 7000, name: grpc, protocol: GRPC}}]
  endpoints:
  - {{address: 127.0.0.1, ports: {{grpc: {}}}, labels: {{app: reviews, version: v1}}, serviceAccount: reviews}}
",
        server.port()
    )
}

/// The peer labels both reporters put on the message series (Istio's order), for `reporter`.
fn series(reporter: &str) -> String {
    format!(
        "reporter=\"{reporter}\",source_workload=\"frontend\",source_canonical_service=\"frontend\",\
         source_canonical_revision=\"v1\",source_workload_namespace=\"default\",\
         source_principal=\"spiffe://cluster.local/ns/default/sa/frontend\",source_app=\"frontend\",\
         source_version=\"v1\",source_cluster=\"Kubernetes\",destination_workload=\"reviews\",\
         destination_workload_namespace=\"default\",\
         destination_principal=\"spiffe://cluster.local/ns/default/sa/reviews\",\
         destination_app=\"reviews\",destination_version=\"v1\",\
         destination_service=\"reviews.default.svc.cluster.local\",\
         destination_canonical_service=\"reviews\",destination_canonical_revision=\"v1\",\
         destination_service_name=\"reviews\",destination_service_namespace=\"default\",\
         destination_cluster=\"Kubernetes\""
    )
}

/// Every series of `name` as `labels value` lines, sorted.
fn lines(text: &str, name: &str) -> Vec<String> {
    let prefix = format!("{name}{{");
    let mut out: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|l| l.replacen("} ", " ", 1))
        .collect();
    out.sort();
    out
}

/// Waits (bounded) until the request and response message series are `want`.
async fn expect(render: &impl Fn() -> String, want_requests: &[String], want_responses: &[String]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = render();
        let requests = lines(&text, "istio_request_messages_total");
        let responses = lines(&text, "istio_response_messages_total");
        if requests == want_requests && responses == want_responses {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "requests {requests:#?}\nresponses {responses:#?}\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn both_reporters_count_a_streaming_call_as_it_runs() {
    let recorder = mesh_tower::telemetry::prometheus_builder().build_recorder();
    let handle = recorder.handle();
    let render = || handle.render();
    let _recorder = metrics::set_default_local_recorder(&recorder);
    let ca = CertificateAuthority::generate("cluster.local").unwrap();

    let server_mesh = Mesh::builder()
        .workload(
            Workload::new("default", "reviews").labels([("app", "reviews"), ("version", "v1")]),
        )
        .identity(identity(&ca, "default", "reviews"))
        .build()
        .await
        .unwrap();
    server_mesh.apply(istio::load_str("pa.yaml", SERVER_POLICY, server_mesh.context()).unwrap());
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("reviews", ServingStatus::Serving)
        .await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let routes = tonic::service::Routes::new(health);
    tokio::spawn(mesh_tonic::serve(&server_mesh, listener, routes).into_future());

    let ctx = BuildContext {
        workload: Workload::new("default", "frontend")
            .labels([("app", "frontend"), ("version", "v1")]),
        ..BuildContext::default()
    };
    let yaml = client_config(addr);
    let client_mesh =
        Mesh::from_snapshot(ctx.clone(), istio::load_str("c.yaml", &yaml, &ctx).unwrap());
    let client = MeshClient::builder(client_mesh)
        .identity(identity(&ca, "default", "frontend"))
        .build();
    let channel = mesh_tonic::MeshChannel::from_client(client);
    let mut health = HealthClient::with_origin(channel, "http://reviews:7000".parse().unwrap());

    let mut stream = health
        .watch(HealthCheckRequest {
            service: "reviews".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(first.status(), ServingStatus::Serving.into());
    reporter
        .set_service_status("reviews", ServingStatus::NotServing)
        .await;
    let second = stream.message().await.unwrap().unwrap();
    assert_eq!(second.status(), ServingStatus::NotServing.into());

    // Mid-stream: each side has reported the one request message and the two responses so
    // far (the server knows its peer from the request, the client from the response head).
    let source = series("source");
    let destination = series("destination");
    expect(
        &render,
        &[format!("{destination} 1"), format!("{source} 1")],
        &[format!("{destination} 2"), format!("{source} 2")],
    )
    .await;

    reporter
        .set_service_status("reviews", ServingStatus::Serving)
        .await;
    let third = stream.message().await.unwrap().unwrap();
    assert_eq!(third.status(), ServingStatus::Serving.into());
    // The watcher hangs up: both sides end the stream and report what is left.
    drop(stream);
    expect(
        &render,
        &[format!("{destination} 1"), format!("{source} 1")],
        &[format!("{destination} 3"), format!("{source} 3")],
    )
    .await;

    // A unary call adds one message each way to the same series: the response code and gRPC
    // status are not labels of these counters.
    let unknown = health
        .check(HealthCheckRequest {
            service: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    health
        .check(HealthCheckRequest {
            service: "reviews".into(),
        })
        .await
        .unwrap();
    expect(
        &render,
        &[format!("{destination} 3"), format!("{source} 3")],
        &[format!("{destination} 4"), format!("{source} 4")],
    )
    .await;
}
