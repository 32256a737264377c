//! Interop with Envoy whose only config source is `mesh xds serve` (secured): ADS (state of
//! the world, then incremental) and SDS from the same port, over mutual TLS to the control
//! plane. Envoy's ISTIO_MUTUAL cluster takes its certificate (`default`) and roots (`ROOTCA`)
//! from the `sds-grpc` cluster, as an Istio sidecar's do (SDS state of the world with SotW ADS,
//! incremental with incremental ADS); until SDS answers it stays warming and Envoy is not
//! ready. It then calls a STRICT mesh server whose own certificate came from
//! the same control plane's CA (the workload started with none): the mesh server sees Envoy's
//! identity, and Envoy checks the server's (the ServiceEntry's `subjectAltNames`).
//!
//! Envoy is called as well: a `Sidecar` with an `ingress` listener (`captureMode: NONE`, as on a
//! VM) makes the control plane send it an inbound listener, STRICT by PeerAuthentication, whose
//! RBAC is an AuthorizationPolicy allowing only shop/frontend, forwarding to a plaintext app.
//! A mesh client with the identity shop/frontend (its certificate from the same CA) reaches the
//! app, which sees the caller's SPIFFE ID in `x-forwarded-client-cert`, and verifies Envoy's
//! (shop/sleep); a mesh client with shop/intruder is refused by Envoy's RBAC (403).
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
use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use mesh_core::identity::{CertificateAuthority, PeerIdentity, SpiffeId};
use mesh_core::model::MtlsMode;
use mesh_core::{BuildContext, Mesh, MeshSettings, Workload, identity::IdentityFiles, istio};
use mesh_tests::envoy::Envoy;
use mesh_tower::client::{MeshClient, UpstreamPeer};
use mesh_tower::tls::{TlsAcceptor, serve_connection};
use mesh_xds::client::certs::{CertificateProvider, CertificateProviderConfig};
use mesh_xds::server::auth::Tokens;
use mesh_xds::server::{ControlPlaneSecurity, XdsServer};
use serde_json::{Value, json};
use tower::ServiceExt;

const HOST: &str = "payment.shop.svc.cluster.local";
const ENVOY_TOKEN: &str = "envoy-sleep-token-0123456789";
const PAYMENT_TOKEN: &str = "mesh-payment-token-0123456789";
const FRONTEND_TOKEN: &str = "mesh-frontend-token-0123456789";
const INTRUDER_TOKEN: &str = "mesh-intruder-token-0123456789";
/// The service Envoy (shop/sleep) serves for its app, as mesh clients name it.
const SLEEP_HOST: &str = "sleep.shop.svc.cluster.local";

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

/// Envoy's inbound side: the Sidecar ingress listener on `inbound` (bound, as on a VM) to the
/// app at `app`, STRICT, and only shop/frontend allowed.
fn sleep_config(inbound: u16, app: SocketAddr) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: sleep, namespace: shop}}
spec:
  workloadSelector: {{labels: {{app: sleep}}}}
  ingress:
  - port: {{number: {inbound}, protocol: HTTP, name: http}}
    bind: 127.0.0.1
    captureMode: NONE
    defaultEndpoint: 127.0.0.1:{}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: sleep, namespace: shop}}
spec:
  selector: {{matchLabels: {{app: sleep}}}}
  mtls: {{mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: sleep-callers, namespace: shop}}
spec:
  selector: {{matchLabels: {{app: sleep}}}}
  action: ALLOW
  rules: [{{from: [{{source: {{principals: [cluster.local/ns/shop/sa/frontend]}}}}]}}]
",
        app.port()
    )
}

/// A plaintext app answering with the `x-forwarded-client-cert` Envoy gave it.
async fn xfcc_app() -> SocketAddr {
    let app = Router::new().route(
        "/xfcc",
        get(|headers: HeaderMap| async move {
            headers
                .get("x-forwarded-client-cert")
                .map(|v| v.to_str().unwrap_or("<not text>").to_owned())
                .unwrap_or_default()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A mesh client of shop/`sa` calling sleep over ISTIO_MUTUAL at Envoy's inbound listener,
/// expecting Envoy's identity, with the certificate `provider` keeps fresh.
async fn sleep_client(provider: &CertificateProvider, sa: &str, inbound: u16) -> MeshClient {
    let yaml = format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: sleep, namespace: shop}}
spec:
  hosts: [{SLEEP_HOST}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: {inbound}, name: http, protocol: HTTP}}]
  subjectAltNames: [spiffe://cluster.local/ns/shop/sa/sleep]
  endpoints: [{{address: 127.0.0.1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: sleep, namespace: shop}}
spec:
  host: {SLEEP_HOST}
  trafficPolicy: {{tls: {{mode: ISTIO_MUTUAL}}}}
"
    );
    let ctx = BuildContext {
        workload: Workload::new("shop", sa),
        ..Default::default()
    };
    let snapshot = istio::load_str("sleep-client.yaml", &yaml, &ctx).unwrap();
    MeshClient::builder(Mesh::from_snapshot(ctx, snapshot))
        .identity(provider.watch().await.unwrap())
        .build()
}

/// `GET /xfcc` on sleep: the status, the upstream's SPIFFE ID, and the body.
async fn call_sleep(client: &MeshClient, inbound: u16) -> (StatusCode, Option<String>, String) {
    let request = Request::get(format!("http://{SLEEP_HOST}:{inbound}/xfcc"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(20), client.clone().oneshot(request))
        .await
        .expect("the call through Envoy timed out")
        .unwrap();
    let status = response.status();
    let peer = response
        .extensions()
        .get::<UpstreamPeer>()
        .map(|p| p.0.principal().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, peer, String::from_utf8_lossy(&body).into_owned())
}

/// The field `key` of Envoy's XFCC element (`key=value` pairs separated by `;`).
fn xfcc_field<'a>(xfcc: &'a str, key: &str) -> Option<&'a str> {
    xfcc.split(';')
        .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
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
            // Not intercepted (a VM): the Sidecar's ingress listener is bound.
            "metadata": {"NAMESPACE": "shop", "SERVICE_ACCOUNT": "sleep", "CLUSTER_ID": "Kubernetes",
                "LABELS": {"app": "sleep"}, "INTERCEPTION_MODE": "NONE"},
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
async fn envoy_configured_only_by_mesh_xds_serve_calls_and_is_called_by_mesh_workloads_over_istio_mutual()
 {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    CertificateAuthority::generate("cluster.local")
        .unwrap()
        .save(&ca_dir)
        .unwrap();
    let roots = ca_dir.join(CertificateAuthority::ROOT_CERT);
    let tokens = Tokens::parse(
        &format!(
            "shop/sleep {ENVOY_TOKEN}\nshop/payment {PAYMENT_TOKEN}\nshop/frontend {FRONTEND_TOKEN}\nshop/intruder {INTRUDER_TOKEN}\n"
        ),
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
    let (app, inbound) = (xfcc_app().await, free_port());
    std::fs::write(config_dir.join("sleep.yaml"), sleep_config(inbound, app)).unwrap();
    let frontend_dir = dir.path().join("frontend");
    let frontend_cert = certificate(xds, &roots, &frontend_dir, "frontend", FRONTEND_TOKEN).await;
    let intruder_dir = dir.path().join("intruder");
    let intruder_cert = certificate(xds, &roots, &intruder_dir, "intruder", INTRUDER_TOKEN).await;
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
            // Not intercepted: istiod binds the outbound listener on the loopback.
            .listener(&format!("127.0.0.1_{port}"))
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
        // SDS speaks the node's ADS protocol: with DELTA_GRPC config sources the secrets above
        // came over incremental SDS.
        let clusters = envoy
            .admin_get("/config_dump?resource=dynamic_active_clusters")
            .await
            .unwrap();
        assert_eq!(
            clusters.contains("\"DELTA_GRPC\""),
            api_type == "DELTA_GRPC",
            "{api_type}: the sds-grpc config sources' api_type"
        );

        // A mesh client calls the app behind Envoy's inbound listener over ISTIO_MUTUAL (new
        // clients each run: no connection pooled to the previous Envoy).
        let frontend = sleep_client(&frontend_cert, "frontend", inbound).await;
        let intruder = sleep_client(&intruder_cert, "intruder", inbound).await;
        let bound = envoy
            .listener(&format!("127.0.0.1_{inbound}"))
            .await
            .unwrap_or_else(|e| panic!("{api_type}: {e}\n{}", envoy.log()));
        assert_eq!(bound, SocketAddr::from(([127, 0, 0, 1], inbound)));
        let (status, peer, xfcc) = call_sleep(&frontend, inbound).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{api_type}: {xfcc}; envoy log:\n{}",
            envoy.log()
        );
        assert_eq!(
            peer.as_deref(),
            Some("cluster.local/ns/shop/sa/sleep"),
            "{api_type}: the mesh client verified Envoy's SDS identity"
        );
        assert_eq!(
            xfcc_field(&xfcc, "URI"),
            Some("spiffe://cluster.local/ns/shop/sa/frontend"),
            "{api_type}: the app sees the mesh client's identity: {xfcc:?}"
        );
        assert_eq!(
            xfcc_field(&xfcc, "By"),
            Some("spiffe://cluster.local/ns/shop/sa/sleep"),
            "{api_type}: {xfcc:?}"
        );
        // Another identity is refused by Envoy's RBAC (the AuthorizationPolicy).
        let (status, _, body) = call_sleep(&intruder, inbound).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{api_type}: {body}");
        assert_eq!(body, "RBAC: access denied", "{api_type}");
    }
}
