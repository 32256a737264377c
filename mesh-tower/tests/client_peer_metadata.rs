//! What a MeshClient believes of a server's `x-envoy-peer-metadata`: only what a server that
//! proved its identity by mutual TLS says (Istio's metadata exchange runs over mTLS only). A
//! plaintext upstream claiming another workload is recorded as the configured endpoint.
//!
//! The recorder is thread-local and the test runs on a current-thread runtime, so the
//! client's recording (on the test's task) reaches it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.

mod support;

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use mesh_core::model::MtlsMode;
use mesh_core::telemetry::{PEER_METADATA_HEADER, PeerMetadata};
use mesh_core::{BuildContext, Mesh, Workload, istio};
use mesh_tower::client::MeshClient;
use mesh_tower::telemetry::{Telemetry, prometheus_builder};
use mesh_tower::tls::{TlsAcceptor, serve_connection};
use support::{ca, identity};
use tower::ServiceExt;

/// An app answering every request with metadata claiming to be workload `impostor`.
fn claiming_impostor() -> Router {
    let claim = PeerMetadata::from_workload(
        &Workload::new("default", "impostor").labels([("app", "impostor"), ("version", "v9")]),
        "Kubernetes",
    )
    .encode();
    Router::new().route(
        "/",
        get(move || {
            let claim = claim.clone();
            async move { ([(PEER_METADATA_HEADER, claim)], "ok") }
        }),
    )
}

async fn plaintext_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, claiming_impostor()).await });
    addr
}

async fn mtls_server(acceptor: TlsAcceptor) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(accepted) = acceptor.accept(tcp, MtlsMode::Strict).await {
                    let _ = serve_connection(accepted, claiming_impostor()).await;
                }
            });
        }
    });
    addr
}

/// A ServiceEntry `name` with one endpoint labelled `app: name, version: v1`; `mtls` makes it
/// MESH_INTERNAL with service account `name` (so the client originates mTLS), else a
/// DestinationRule disables TLS.
fn service(name: &str, addr: SocketAddr, mtls: bool) -> String {
    let (location, sa) = if mtls {
        ("MESH_INTERNAL", format!(", serviceAccount: {name}"))
    } else {
        ("MESH_EXTERNAL", String::new())
    };
    let mut yaml = format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  hosts: [{name}.default.svc.cluster.local]\n  location: {location}\n  resolution: STATIC\n  ports: [{{number: 8080, name: http, protocol: HTTP}}]\n  endpoints:\n  - {{address: 127.0.0.1, ports: {{http: {}}}, labels: {{app: {name}, version: v1}}{sa}}}\n---\n",
        addr.port()
    );
    if !mtls {
        yaml += &format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  host: {name}.default.svc.cluster.local\n  trafficPolicy: {{tls: {{mode: DISABLE}}}}\n---\n"
        );
    }
    yaml
}

/// The `destination_workload` label of the `istio_requests_total` series for `service`.
fn destination_workloads(text: &str, service: &str) -> Vec<String> {
    let service = format!("destination_service=\"{service}.default.svc.cluster.local\"");
    text.lines()
        .filter(|l| l.starts_with("istio_requests_total{") && l.contains(&service))
        .map(|l| {
            let (_, rest) = l.split_once("destination_workload=\"").unwrap();
            rest.split('"').next().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test]
async fn server_metadata_is_believed_only_over_mtls() {
    let recorder = prometheus_builder().build_recorder();
    let handle = recorder.handle();
    let _metrics = metrics::set_default_local_recorder(&recorder);

    let ca = ca("cluster.local");
    let plain = plaintext_server().await;
    let secure = mtls_server(TlsAcceptor::new(identity(&ca, "default", "secure"))).await;
    let yaml = service("plain", plain, false) + &service("secure", secure, true);
    let ctx = BuildContext {
        workload: Workload::new("default", "frontend").labels([("app", "frontend")]),
        ..Default::default()
    };
    let mesh = Mesh::from_snapshot(ctx.clone(), istio::load_str("t.yaml", &yaml, &ctx).unwrap());
    let client = MeshClient::builder(mesh)
        .identity(identity(&ca, "default", "frontend"))
        .telemetry(Telemetry::new())
        .build();

    for url in ["http://plain:8080/", "http://secure:8080/"] {
        let response = client
            .clone()
            .oneshot(Request::get(url).body(Empty::<Bytes>::new()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        assert!(
            response.headers().get(PEER_METADATA_HEADER).is_none(),
            "metadata stripped"
        );
        response.into_body().collect().await.unwrap();
    }

    let text = handle.render();
    // Plaintext: the claim is ignored; the configured endpoint has no workload name.
    assert_eq!(destination_workloads(&text, "plain"), ["unknown"], "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("destination_service_name=\"plain\"")
                && l.contains("destination_app=\"plain\"")),
        "{text}"
    );
    // mTLS: the authenticated server's own metadata stands.
    assert_eq!(
        destination_workloads(&text, "secure"),
        ["impostor"],
        "{text}"
    );
}
