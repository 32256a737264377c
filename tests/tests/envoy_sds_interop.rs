//! Interop with Envoy whose only config source is `mesh xds serve` (secured): ADS (state of
//! the world, then incremental) and SDS from the same port, over mutual TLS to the control
//! plane. Envoy's ISTIO_MUTUAL cluster takes its certificate (`default`) and roots (`ROOTCA`)
//! from the `sds-grpc` cluster, as an Istio sidecar's do; until SDS answers it stays warming
//! and Envoy is not ready. It then calls a STRICT mesh server whose own certificate came from
//! the same control plane's CA (the workload started with none): the mesh server sees Envoy's
//! identity, and Envoy checks the server's (the ServiceEntry's `subjectAltNames`).
//!
//! Envoy's own bootstrap certificate for the control-plane connection is obtained first with a
//! bootstrap token, as istio-agent would obtain it. Needs `envoy` (`$ENVOY_BIN`); run by
//! `.ci/interop-sds.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::routing::get;
use axum::{Extension, Router};
use http::StatusCode;
use mesh_core::identity::{CertificateAuthority, PeerIdentity, SpiffeId};
use mesh_core::model::MtlsMode;
use mesh_core::{MeshSettings, identity::IdentityFiles};
use mesh_tests::envoy::Envoy;
use mesh_tower::tls::{TlsAcceptor, serve_connection};
use mesh_xds::client::certs::{CertificateProvider, CertificateProviderConfig};
use mesh_xds::server::auth::Tokens;
use mesh_xds::server::{ControlPlaneSecurity, XdsServer};
use serde_json::{Value, json};

const HOST: &str = "payment.shop.svc.cluster.local";
const ENVOY_TOKEN: &str = "envoy-sleep-token-0123456789";
const PAYMENT_TOKEN: &str = "mesh-payment-token-0123456789";

/// A port free now (Envoy binds its outbound listener on the ServiceEntry's port).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(port: u16, endpoint: SocketAddr) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: payment, namespace: shop}}
spec:
  hosts: [{HOST}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: {port}, name: http, protocol: HTTP}}]
  subjectAltNames: [spiffe://cluster.local/ns/shop/sa/payment]
  endpoints: [{{address: 127.0.0.1, ports: {{http: {}}}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: payment, namespace: shop}}
spec:
  host: {HOST}
  trafficPolicy: {{tls: {{mode: ISTIO_MUTUAL}}}}
",
        endpoint.port()
    )
}

/// A certificate for `ns/sa` from the control plane's CA (bootstrap token), in `dir`.
async fn certificate(
    xds: SocketAddr,
    roots: &Path,
    dir: &Path,
    sa: &str,
    token: &str,
) -> CertificateProvider {
    let mut config = CertificateProviderConfig::new(
        xds.to_string(),
        roots,
        dir,
        SpiffeId::istio("cluster.local", "shop", sa).unwrap(),
    );
    config.token = Some(token.into());
    CertificateProvider::start(config).await.unwrap()
}

/// A STRICT mesh server answering `/whoami` with the caller's SPIFFE ID, with the identity the
/// provider keeps fresh.
async fn mesh_server(provider: &CertificateProvider) -> SocketAddr {
    let watcher = provider.watch().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::new(watcher);
    let app = Router::new().route(
        "/whoami",
        get(|Extension(peer): Extension<PeerIdentity>| async move { peer.spiffe_id().to_string() }),
    );
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
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

fn file(path: &Path) -> Value {
    json!({"filename": path.display().to_string()})
}

/// A cluster to the control plane over mutual TLS (Envoy's bootstrap certificate), HTTP/2.
fn control_plane_cluster(name: &str, xds: SocketAddr, certs: &IdentityFiles) -> Value {
    json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "5s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                "address": xds.ip().to_string(), "port_value": xds.port()}}}}]}],
        },
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            },
        },
        "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "sni": "istiod.istio-system.svc",
            "common_tls_context": {
                "alpn_protocols": ["h2"],
                "tls_certificates": [{"certificate_chain": file(&certs.cert_chain), "private_key": file(&certs.key)}],
                "validation_context": {
                    "trusted_ca": file(&certs.roots),
                    "match_typed_subject_alt_names": [{"san_type": "URI", "matcher": {
                        "exact": "spiffe://cluster.local/ns/istio-system/sa/istiod"}}],
                },
            },
        }},
    })
}

/// Envoy as an Istio sidecar of shop/sleep, every resource from `xds` over ADS `api_type`.
fn bootstrap(xds: SocketAddr, certs: &IdentityFiles, api_type: &str) -> Value {
    json!({
        "node": {
            "id": "sidecar~127.0.0.1~sleep.shop~shop.svc.cluster.local",
            "cluster": "sleep.shop",
            "metadata": {"NAMESPACE": "shop", "SERVICE_ACCOUNT": "sleep", "CLUSTER_ID": "Kubernetes"},
        },
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "dynamic_resources": {
            "ads_config": {
                "api_type": api_type,
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc"}}],
            },
            "lds_config": {"ads": {}, "resource_api_version": "V3"},
            "cds_config": {"ads": {}, "resource_api_version": "V3"},
        },
        "static_resources": {"clusters": [
            control_plane_cluster("xds-grpc", xds, certs),
            control_plane_cluster("sds-grpc", xds, certs),
        ]},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs envoy: run by .ci/interop-sds.sh"]
async fn envoy_configured_only_by_mesh_xds_serve_calls_a_mesh_server_over_istio_mutual() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    CertificateAuthority::generate("cluster.local")
        .unwrap()
        .save(&ca_dir)
        .unwrap();
    let roots = ca_dir.join(CertificateAuthority::ROOT_CERT);
    let tokens = Tokens::parse(
        &format!("shop/sleep {ENVOY_TOKEN}\nshop/payment {PAYMENT_TOKEN}\n"),
        "cluster.local",
    )
    .unwrap();
    let security = ControlPlaneSecurity::load(&ca_dir).unwrap().tokens(tokens);
    let config_dir = dir.path().join("config");
    std::fs::create_dir(&config_dir).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let xds = listener.local_addr().unwrap();

    // The mesh server starts with no certificate: it gets one from the control plane.
    let payment_dir = dir.path().join("payment");
    let payment = certificate(xds, &roots, &payment_dir, "payment", PAYMENT_TOKEN);
    let port = free_port();
    let server =
        XdsServer::new_secured(vec![config_dir.clone()], MeshSettings::default(), security)
            .await
            .unwrap();
    tokio::spawn(server.serve(listener, std::future::pending()));
    let payment = payment.await;
    let mesh = mesh_server(&payment).await;
    std::fs::write(config_dir.join("payment.yaml"), config(port, mesh)).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await; // the watcher's debounce

    for api_type in ["GRPC", "DELTA_GRPC"] {
        let envoy_dir = tempfile::tempdir().unwrap();
        let sleep = certificate(
            xds,
            &roots,
            &envoy_dir.path().join("certs"),
            "sleep",
            ENVOY_TOKEN,
        )
        .await;
        let envoy = Envoy::start(&bootstrap(xds, sleep.files(), api_type), envoy_dir)
            .await
            .unwrap_or_else(|e| panic!("{api_type}: Envoy never ready (clusters warming?): {e}"));
        let listener = envoy
            .listener(&format!("0.0.0.0_{port}"))
            .await
            .unwrap_or_else(|e| panic!("{api_type}: {e}\n{}", envoy.log()));
        let target = SocketAddr::from(([127, 0, 0, 1], listener.port()));
        let response = mesh_tests::http::get(target, &format!("{HOST}:{port}"), "/whoami")
            .await
            .unwrap();
        assert_eq!(
            response.status,
            StatusCode::OK,
            "{api_type}: {}; envoy log:\n{}",
            response.body,
            envoy.log()
        );
        assert_eq!(
            response.body, "spiffe://cluster.local/ns/shop/sa/sleep",
            "{api_type}: the mesh server saw the identity SDS gave Envoy"
        );
        let stats = envoy.stats().await.unwrap();
        let sds_updates: u64 = stats
            .iter()
            .filter(|(k, _)| k.starts_with("sds.") && k.ends_with(".update_success"))
            .map(|(_, v)| *v)
            .sum();
        assert!(
            sds_updates >= 2,
            "{api_type}: default and ROOTCA over SDS: {stats:?}"
        );
    }
}
