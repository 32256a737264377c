//! MeshClient over mutual TLS: ISTIO_MUTUAL clusters get the workload's SPIFFE identity, the
//! server's identity is checked against the endpoint's service account, and a client with no
//! identity refuses to fall back to plaintext.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.

use std::net::SocketAddr;

use axum::routing::get;
use axum::{Extension, Router};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use mesh_core::identity::{CertificateAuthority, PeerIdentity, TlsIdentity};
use mesh_core::model::MtlsMode;
use mesh_core::telemetry::ResponseFlag;
use mesh_core::{BuildContext, Mesh, istio};
use mesh_testing::tls::identity;
use mesh_tower::client::{MeshClient, UpstreamPeer};
use mesh_tower::tls::{TlsAcceptor, serve_connection};
use tower::ServiceExt;

/// A STRICT mTLS server answering with the caller's principal.
async fn strict_server(identity: TlsIdentity) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::new(identity);
    let app = Router::new().route(
        "/whoami",
        get(|Extension(peer): Extension<PeerIdentity>| async move { peer.principal().to_owned() }),
    );
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                if let Ok(accepted) = acceptor.accept(tcp, MtlsMode::Strict).await {
                    let _ = serve_connection(accepted, app).await;
                }
            });
        }
    });
    addr
}

fn mesh_for(server: SocketAddr, service_account: &str, protocol: &str) -> Mesh {
    let yaml = format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: payment, namespace: shop}}
spec:
  hosts: [payment.shop.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 8443, name: http, protocol: {protocol}}}]
  endpoints:
  - {{address: 127.0.0.1, ports: {{http: {}}}, serviceAccount: {service_account}}}
"#,
        server.port()
    );
    let ctx = BuildContext {
        workload: mesh_core::Workload::new("shop", "checkout"),
        ..Default::default()
    };
    let snapshot = istio::load_str("test.yaml", &yaml, &ctx).unwrap();
    Mesh::from_snapshot(ctx, snapshot)
}

async fn whoami(client: &MeshClient) -> http::Response<mesh_tower::client::MeshBody> {
    let request = Request::get("http://payment:8443/whoami")
        .body(Empty::<Bytes>::new())
        .unwrap();
    client.clone().oneshot(request).await.unwrap()
}

#[tokio::test]
async fn istio_mutual_presents_and_verifies_spiffe_identities() {
    let ca = CertificateAuthority::generate("cluster.local").unwrap();
    for protocol in ["HTTP", "GRPC"] {
        let server = strict_server(identity(&ca, "shop", "payment")).await;
        let mesh = mesh_for(server, "payment", protocol);
        let client = MeshClient::builder(mesh)
            .identity(identity(&ca, "shop", "checkout"))
            .build();
        let response = whoami(&client).await;
        assert_eq!(response.status(), StatusCode::OK, "{protocol}");
        let upstream = response
            .extensions()
            .get::<UpstreamPeer>()
            .expect("mTLS peer")
            .clone();
        assert_eq!(upstream.0.principal(), "cluster.local/ns/shop/sa/payment");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            body, "cluster.local/ns/shop/sa/checkout",
            "the server saw our identity"
        );
    }
}

#[tokio::test]
async fn a_server_with_an_unexpected_identity_is_refused() {
    let ca = CertificateAuthority::generate("cluster.local").unwrap();
    // The endpoint should run as `payment`, but the server presents `impostor`.
    let server = strict_server(identity(&ca, "shop", "impostor")).await;
    let mesh = mesh_for(server, "payment", "HTTP");
    let client = MeshClient::builder(mesh)
        .identity(identity(&ca, "shop", "checkout"))
        .build();
    let response = whoami(&client).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(matches!(
        response.extensions().get::<ResponseFlag>(),
        Some(ResponseFlag::UpstreamConnectionFailure | ResponseFlag::UpstreamRetryLimitExceeded)
    ));
}

#[tokio::test]
async fn without_an_identity_istio_mutual_fails_closed() {
    let ca = CertificateAuthority::generate("cluster.local").unwrap();
    let server = strict_server(identity(&ca, "shop", "payment")).await;
    let client = MeshClient::new(mesh_for(server, "payment", "HTTP"));
    let response = whoami(&client).await;
    assert_eq!(
        response.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "never plaintext to an mTLS cluster"
    );
}
