//! Generated tonic clients over the mesh channel, against real tonic servers on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.

use std::net::SocketAddr;

use mesh_core::{BuildContext, Mesh, MeshSettings, OutboundTrafficPolicy, istio};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// A tonic server whose health service reports `version` as SERVING and everything else unknown.
async fn health_server(version: &str) -> SocketAddr {
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(version, tonic_health::ServingStatus::Serving)
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream_from(listener)),
    );
    addr
}

fn tokio_stream_from(
    listener: tokio::net::TcpListener,
) -> impl futures_core::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures_util::stream::unfold(listener, |l| async move {
        Some((l.accept().await.map(|(s, _)| s), l))
    })
}

fn mesh_for(v1: SocketAddr, v2: SocketAddr) -> Mesh {
    let yaml = format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: inventory, namespace: default}}
spec:
  hosts: [inventory.default.svc.cluster.local]
  resolution: STATIC
  ports: [{{number: 7000, name: grpc, protocol: GRPC}}]
  endpoints:
  - {{address: 127.0.0.1, ports: {{grpc: {}}}, labels: {{version: v1}}}}
  - {{address: 127.0.0.1, ports: {{grpc: {}}}, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: inventory, namespace: default}}
spec:
  host: inventory
  trafficPolicy: {{tls: {{mode: DISABLE}}}}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: inventory, namespace: default}}
spec:
  hosts: [inventory]
  http:
  - match: [{{headers: {{end-user: {{exact: jason}}}}}}]
    route: [{{destination: {{host: inventory, subset: v2}}}}]
  - route: [{{destination: {{host: inventory, subset: v1}}}}]
"#,
        v1.port(),
        v2.port()
    );
    // REGISTRY_ONLY: a host no resource declares is answered locally (no DNS lookup).
    let ctx = BuildContext {
        settings: MeshSettings {
            outbound_traffic_policy: OutboundTrafficPolicy::RegistryOnly,
            ..MeshSettings::default()
        },
        ..BuildContext::default()
    };
    Mesh::from_snapshot(
        ctx.clone(),
        istio::load_str("test.yaml", &yaml, &ctx).unwrap(),
    )
}

async fn serving(
    client: &mut HealthClient<mesh_tonic::MeshChannel>,
    service: &str,
    user: Option<&str>,
) -> Result<i32, tonic::Status> {
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: service.into(),
    });
    if let Some(user) = user {
        request
            .metadata_mut()
            .insert("end-user", user.parse().unwrap());
    }
    client.check(request).await.map(|r| r.into_inner().status)
}

#[tokio::test]
async fn generated_clients_route_by_authority_and_headers() {
    let (v1, v2) = (health_server("v1").await, health_server("v2").await);
    let mesh = mesh_for(v1, v2);
    let mut client = HealthClient::with_origin(
        mesh_tonic::channel(&mesh),
        "http://inventory:7000".parse().unwrap(),
    );
    for _ in 0..10 {
        assert_eq!(
            serving(&mut client, "v1", None).await.unwrap(),
            ServingStatus::Serving as i32
        );
        assert_eq!(
            serving(&mut client, "v2", Some("jason")).await.unwrap(),
            ServingStatus::Serving as i32
        );
    }
    // The server's own gRPC errors come through unchanged.
    let err = serving(&mut client, "v2", None).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn mesh_errors_are_grpc_statuses() {
    let (v1, v2) = (health_server("v1").await, health_server("v2").await);
    let mesh = mesh_for(v1, v2);
    let mut client = HealthClient::with_origin(
        mesh_tonic::channel(&mesh),
        "http://catalog:7000".parse().unwrap(),
    );
    let err = serving(&mut client, "", None).await.unwrap_err();
    // An undeclared host under REGISTRY_ONLY: BlackHoleCluster's 502, which gRPC's HTTP
    // status mapping makes UNAVAILABLE.
    assert_eq!(err.code(), tonic::Code::Unavailable, "black hole: {err:?}");
}
