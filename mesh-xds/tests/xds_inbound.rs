//! A mesh server whose security comes from the control plane: `mesh xds serve` on 127.0.0.1
//! sends the workload's inbound listener (gRFC A36, Istio's
//! `xds.istio.io/grpc/lds/inbound/ip:port`), whose filter chain sets STRICT mutual TLS and whose
//! RBAC filters carry the AuthorizationPolicies. Real tonic-health server, real mutual-TLS
//! callers with identities minted at test time; an edit of the policy file reaches the server
//! as a push.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

mod support;

use std::time::Duration;

use mesh_core::identity::CertificateAuthority;
use mesh_core::model::{AuthzAction, MtlsMode};
use mesh_core::{Mesh, Workload};
use mesh_testing::tls::{channel, identity};
use mesh_xds::bootstrap::XdsTarget;
use mesh_xds::client::{XdsClient, XdsClientConfig};
use support::control_plane::serve_dir;
use support::health::{assert_plaintext_refused, health, serve_health};
use support::write_atomic;
use tokio::net::TcpListener;
use tonic::Code;

fn policy(principals: &[&str]) -> String {
    format!(
        "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: default, namespace: default}}
spec:
  mtls: {{mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: reviews-callers, namespace: default}}
spec:
  selector: {{matchLabels: {{app: reviews}}}}
  action: ALLOW
  rules:
  - from: [{{source: {{principals: [{}]}}}}]
    to: [{{operation: {{methods: [POST], paths: ['/grpc.health.v1.Health/*']}}}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: not-for-ratings, namespace: default}}
spec:
  selector: {{matchLabels: {{app: ratings}}}}
  action: DENY
  rules: [{{}}]
",
        principals.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_listener_sets_mtls_and_authorization_and_follows_edits() {
    let ca = CertificateAuthority::generate("cluster.local").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("security.yaml");
    write_atomic(&file, &policy(&["cluster.local/ns/foo/sa/sleep"]));
    let xds = serve_dir(dir.path()).await;

    let workload = Workload::new("default", "reviews").labels([("app", "reviews")]);
    let mesh = Mesh::builder()
        .workload(workload.clone())
        .identity(identity(&ca, "default", "reviews"))
        .build()
        .await
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = XdsClientConfig::new(XdsTarget::Tcp(xds.to_string()), &workload).serving(addr);
    let client = XdsClient::start(mesh.clone(), config);
    tokio::time::timeout(Duration::from_secs(10), client.ready())
        .await
        .expect("the client gets its inbound listener");

    let snapshot = mesh.snapshot();
    let inbound = &snapshot.inbound;
    assert_eq!(
        inbound.peer_authentication.mode_for(addr.port()),
        MtlsMode::Strict
    );
    let policies = inbound.authorization_for(Some(addr.port()));
    assert_eq!(
        policies
            .iter()
            .map(|p| (p.name.as_str(), p.action))
            .collect::<Vec<_>>(),
        [("default/reviews-callers", AuthzAction::Allow)],
        "only the policies selecting this workload"
    );
    let inbound_name = format!("xds.istio.io/grpc/lds/inbound/{addr}");
    assert!(
        client
            .status()
            .resources
            .iter()
            .any(|r| r.name == inbound_name),
        "the config dump shows the inbound listener"
    );

    serve_health(&mesh, listener).await;

    health(channel(&ca, addr, "foo", "sleep").await)
        .await
        .expect("the allowed principal is served");
    let denied = health(channel(&ca, addr, "foo", "other").await)
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    // STRICT: a plaintext caller gets no HTTP/2 connection.
    assert_plaintext_refused(addr).await;

    // An edit of the policy reaches the server through the control plane.
    let mut changes = mesh.subscribe();
    write_atomic(
        &file,
        &policy(&[
            "cluster.local/ns/foo/sa/sleep",
            "cluster.local/ns/foo/sa/other",
        ]),
    );
    tokio::time::timeout(
        Duration::from_secs(10),
        changes.wait_for(|s| {
            s.inbound
                .authorization_for(Some(addr.port()))
                .iter()
                .any(|p| format!("{:?}", p.rules).contains("sa/other"))
        }),
    )
    .await
    .expect("the edit is pushed")
    .unwrap();
    health(channel(&ca, addr, "foo", "other").await)
        .await
        .expect("allowed after the edit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_inbound_listener_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    write_atomic(
        &dir.path().join("security.yaml"),
        &policy(&["cluster.local/ns/foo/sa/sleep"]),
    );
    let xds = serve_dir(dir.path()).await;
    let workload = Workload::new("default", "reviews").labels([("app", "reviews")]);
    let mesh = Mesh::builder()
        .workload(workload.clone())
        .build()
        .await
        .unwrap();
    // A listener name the control plane has no address in: it never sends it.
    let mut config = XdsClientConfig::new(XdsTarget::Tcp(xds.to_string()), &workload)
        .resource_timeout(Duration::from_millis(300));
    config.server_listener_template = "xds.istio.io/grpc/lds/inbound/nowhere:%s".into();
    let config = config.serving("127.0.0.1:9443".parse().unwrap());
    let client = XdsClient::start(mesh.clone(), config);
    tokio::time::timeout(Duration::from_secs(10), client.ready())
        .await
        .expect("ready once the listener is known not to exist");
    let snapshot = mesh.snapshot();
    let policies = snapshot.inbound.authorization_for(Some(9443));
    assert_eq!(policies.len(), 1);
    assert_eq!(policies[0].action, AuthzAction::Allow);
    assert!(
        policies[0].rules.is_empty(),
        "an ALLOW policy without rules: every request refused"
    );
    assert!(policies[0].name.contains("does not exist"));
}

/// Both sides from the control plane: the caller's cluster is ISTIO_MUTUAL with the server's
/// service account pinned, the server's inbound listener is STRICT with an ALLOW policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_to_mesh_over_mutual_tls_configured_by_xds() {
    use http_body_util::{BodyExt, Empty};
    use tower::ServiceExt;

    let ca = CertificateAuthority::generate("cluster.local").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_atomic(
        &dir.path().join("reviews.yaml"),
        &format!(
            "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: reviews, namespace: default}}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  endpoints:
  - {{address: 127.0.0.1, ports: {{http: {port}}}, labels: {{app: reviews}}, serviceAccount: reviews}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews, namespace: default}}
spec:
  host: reviews
  trafficPolicy: {{tls: {{mode: ISTIO_MUTUAL}}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: impostor, namespace: default}}
spec:
  hosts: [impostor.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  endpoints:
  - {{address: 127.0.0.1, ports: {{http: {port}}}, serviceAccount: impostor}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: impostor, namespace: default}}
spec:
  host: impostor
  trafficPolicy: {{tls: {{mode: ISTIO_MUTUAL}}}}
---
{}",
            policy(&["cluster.local/ns/default/sa/frontend"]),
            port = addr.port()
        ),
    );
    let xds = serve_dir(dir.path()).await;
    let target = XdsTarget::Tcp(xds.to_string());

    let server_workload = Workload::new("default", "reviews").labels([("app", "reviews")]);
    let server = Mesh::builder()
        .workload(server_workload.clone())
        .identity(identity(&ca, "default", "reviews"))
        .build()
        .await
        .unwrap();
    let server_xds = XdsClient::start(
        server.clone(),
        XdsClientConfig::new(target.clone(), &server_workload).serving(addr),
    );
    tokio::time::timeout(Duration::from_secs(10), server_xds.ready())
        .await
        .unwrap();
    let app = axum::Router::new().fallback(|| async { "reviews" });
    tokio::spawn(mesh_tower::serve(&server, listener, app).into_future());

    let call = |sa: &'static str, host: &'static str| {
        let (ca, target) = (&ca, target.clone());
        async move {
            let workload = Workload::new("default", sa);
            let mesh = Mesh::builder()
                .workload(workload.clone())
                .identity(identity(ca, "default", sa))
                .build()
                .await
                .unwrap();
            let xds = XdsClient::start(mesh.clone(), XdsClientConfig::new(target, &workload));
            tokio::time::timeout(Duration::from_secs(10), xds.ready())
                .await
                .unwrap();
            let client = mesh_tower::client::MeshClient::new(mesh);
            // What the policy allows: POST to the health service's methods.
            let request =
                http::Request::post(format!("http://{host}:9080/grpc.health.v1.Health/Check"))
                    .body(Empty::<bytes::Bytes>::new())
                    .unwrap();
            let response = client.oneshot(request).await.unwrap();
            let status = response.status();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, body)
        }
    };
    let (status, body) = call("frontend", "reviews").await;
    assert_eq!(status, http::StatusCode::OK);
    assert_eq!(&body[..], b"reviews");
    let (status, _) = call("other", "reviews").await;
    assert_eq!(
        status,
        http::StatusCode::FORBIDDEN,
        "authenticated, not allowed"
    );
    let (status, _) = call("frontend", "impostor").await;
    assert_eq!(
        status,
        http::StatusCode::SERVICE_UNAVAILABLE,
        "the server's identity is not the one the control plane lists"
    );
}
