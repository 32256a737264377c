//! A mesh workload reaches `mesh xds serve` on its secured port, as a workload reaches istiod's
//! 15012: it starts with no certificate, gets one from the control plane's CA with a bootstrap
//! token, then streams its config over mutual TLS with that certificate and serves STRICT
//! traffic with it. The control plane is verified against the roots and must name itself
//! (istiod's DNS name or SPIFFE ID); a wrong root, a certificate of another CA, and a node
//! claiming another identity than its certificate's are refused, and the client says why.
//! (mesh's CA has no revocation list: a certificate stops working when it expires, as Istio's
//! short-lived workload certificates do.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

mod support;

use std::time::Duration;

use mesh_core::identity::CertificateAuthority;
use mesh_core::model::MtlsMode;
use mesh_core::{Mesh, Workload};
use mesh_testing::tls::channel;
use mesh_xds::bootstrap::XdsTarget;
use mesh_xds::client::certs::CertificateProvider;
use mesh_xds::client::{XdsClient, XdsClientConfig, XdsTls};
use support::control_plane::{ControlPlane, INVENTORY, REVIEWS_TOKEN, tokens};
use support::health::{assert_plaintext_refused, health, serve_health};
use tokio::net::TcpListener;

/// What the control plane serves besides [`INVENTORY`]: reviews is STRICT.
const STRICT_REVIEWS: &str = "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: reviews, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  mtls: {mode: STRICT}
";

async fn control_plane() -> ControlPlane {
    let config = format!("{INVENTORY}---\n{STRICT_REVIEWS}");
    ControlPlane::start(Some(&config), |security, _| {
        security.tokens(tokens(&format!("default/reviews {REVIEWS_TOKEN}\n")))
    })
    .await
}

fn reviews() -> Workload {
    Workload::new("default", "reviews").labels([("app", "reviews")])
}

/// An xDS client of `reviews` over `tls`, on a mesh with the identity in `certs`.
async fn xds_client(cp: &ControlPlane, certs: &std::path::Path, tls: XdsTls) -> (Mesh, XdsClient) {
    let mesh = Mesh::builder()
        .workload(reviews())
        .identity_files(certs)
        .build()
        .await
        .unwrap();
    let config = XdsClientConfig::new(XdsTarget::Tcp(cp.addr.to_string()), &reviews()).tls(tls);
    let client = XdsClient::start(mesh.clone(), config);
    (mesh, client)
}

/// The client's error once it has one (bounded), and that it never became ready.
async fn refused(client: &XdsClient) -> String {
    let mut status = client.subscribe_status();
    let status = tokio::time::timeout(
        Duration::from_secs(10),
        status.wait_for(|s| s.last_error.is_some()),
    )
    .await
    .expect("the client reports why it has no config")
    .unwrap()
    .clone();
    assert!(!status.ready, "no config from a refused connection");
    status.last_error.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_with_no_certificate_gets_one_then_its_config_over_mutual_tls_and_serves_strict()
{
    let cp = control_plane().await;
    let certs = cp.dir.path().join("reviews");
    let config = cp.reviews_provider(&certs);
    let provider = CertificateProvider::start(config).await.unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mesh = Mesh::builder()
        .workload(reviews())
        .identity_files(&certs)
        .build()
        .await
        .unwrap();
    let xds = XdsClientConfig::new(XdsTarget::Tcp(cp.addr.to_string()), &reviews())
        .serving(addr)
        .tls(XdsTls::mutual(provider.files(), "cluster.local"));
    let client = XdsClient::start(mesh.clone(), xds);
    tokio::time::timeout(Duration::from_secs(10), client.ready())
        .await
        .unwrap_or_else(|_| panic!("config over mutual TLS: {:?}", client.status().last_error));
    let snapshot = mesh.snapshot();
    assert!(
        snapshot
            .route_config(8080)
            .and_then(|rc| rc.virtual_host("inventory.default.svc.cluster.local:8080"))
            .is_some(),
        "the config of its own identity"
    );
    assert_eq!(
        snapshot.inbound.peer_authentication.mode_for(addr.port()),
        MtlsMode::Strict
    );

    serve_health(&mesh, listener).await;
    health(channel(&cp.ca, addr, "default", "productpage").await)
        .await
        .expect("a mesh client is served over mutual TLS");
    assert_plaintext_refused(addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_root_another_ca_or_another_identity_is_refused_with_the_reason() {
    let cp = control_plane().await;
    let reviews_certs = cp
        .ca
        .issue("default", "reviews", Duration::from_secs(3600))
        .unwrap()
        .write_istio_layout(cp.dir.path().join("reviews"))
        .unwrap();

    // The client trusts another root: the control plane's certificate is refused.
    let other = CertificateAuthority::generate("cluster.local").unwrap();
    let other_dir = cp.dir.path().join("other");
    let other_certs = other
        .issue("default", "reviews", Duration::from_secs(3600))
        .unwrap()
        .write_istio_layout(&other_dir)
        .unwrap();
    let tls = XdsTls::new(&other_certs.roots, "cluster.local")
        .identity(&reviews_certs.cert_chain, &reviews_certs.key);
    let (_mesh, client) = xds_client(&cp, &cp.dir.path().join("reviews"), tls).await;
    let error = refused(&client).await;
    assert!(
        error.contains("connect: transport error: invalid peer certificate"),
        "{error}"
    );

    // A certificate of another CA (trusting the right root): the control plane refuses it.
    let tls =
        XdsTls::new(&cp.roots, "cluster.local").identity(&other_certs.cert_chain, &other_certs.key);
    let (_mesh, client) = xds_client(&cp, &other_dir, tls).await;
    let error = refused(&client).await;
    // Refused in the handshake (TLS 1.2 / the alert arrives first) or right after it (TLS 1.3:
    // the client learns it when the server closes the connection).
    assert!(
        error.contains("received fatal alert")
            || error.contains("does it trust this workload's certificate?"),
        "{error}"
    );

    // A server that does not name itself as expected is refused.
    let mut tls = XdsTls::mutual(&reviews_certs, "cluster.local");
    tls.server_names = vec!["spiffe://cluster.local/ns/istio-system/sa/not-istiod".into()];
    let (_mesh, client) = xds_client(&cp, &cp.dir.path().join("reviews"), tls).await;
    let error = refused(&client).await;
    assert!(error.contains("match none of subjectAltNames"), "{error}");
    // istiod's DNS name alone (what istio-agent checks) verifies mesh xds serve too.
    let mut tls = XdsTls::mutual(&reviews_certs, "cluster.local");
    tls.server_names = vec![mesh_xds::ISTIOD_DNS_NAME.into()];
    let (_mesh, client) = xds_client(&cp, &cp.dir.path().join("reviews"), tls).await;
    tokio::time::timeout(Duration::from_secs(10), client.ready())
        .await
        .unwrap_or_else(|_| panic!("{:?}", client.status().last_error));

    // The control plane's own CA, but ratings' certificate for a node claiming reviews.
    let ratings_certs = cp
        .ca
        .issue("default", "ratings", Duration::from_secs(3600))
        .unwrap()
        .write_istio_layout(cp.dir.path().join("ratings"))
        .unwrap();
    let tls = XdsTls::new(&cp.roots, "cluster.local")
        .identity(&ratings_certs.cert_chain, &ratings_certs.key);
    let (_mesh, client) = xds_client(&cp, &cp.dir.path().join("reviews"), tls).await;
    let error = refused(&client).await;
    assert!(
        error.contains("claims default/reviews but authenticated as"),
        "{error}"
    );
}
