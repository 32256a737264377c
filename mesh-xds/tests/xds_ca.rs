//! `mesh xds serve` secured, on 127.0.0.1: TLS on its port, callers authenticated by a mesh
//! certificate or a bootstrap token, each node held to its identity, and its CA
//! (`istio.v1.auth.IstioCertificateService/CreateCertificate`) signing for the caller only.
//! Real TLS, certificates minted at test time, real tonic clients; a workload that starts with
//! no certificate gets one through the certificate provider and serves STRICT mutual TLS.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failed test

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source::Specifier};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{Secret, secret};
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_client::SecretDiscoveryServiceClient;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use hyper_util::rt::TokioIo;
use mesh_core::identity::{
    CertificateAuthority, Credentials, SpiffeId, external_client_config, spiffe_id_of,
};
use mesh_core::model::{TlsMode, UpstreamTls};
use mesh_core::{Mesh, Workload};
use mesh_testing::tls::{channel, identity, try_channel};
use mesh_xds::ca_proto::{CREATE_CERTIFICATE, IstioCertificateRequest, IstioCertificateResponse};
use mesh_xds::client::certs::CertificateProvider;
use mesh_xds::server::auth::Tokens;
use mesh_xds::server::sds::SECRET_TYPE;
use mesh_xds::translate::type_url;
use prost::Message as _;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use support::control_plane::{ControlPlane, INVENTORY, RATINGS_TOKEN, REVIEWS_TOKEN, tokens};
use support::health::{assert_plaintext_refused, health, serve_health};
use support::stream::{next, open};
use support::write_atomic;
use tokio::net::TcpListener;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

/// A secured control plane with tokens for default/reviews and default/ratings.
async fn control_plane() -> ControlPlane {
    control_plane_with_ttl(Duration::from_secs(3600)).await
}

/// The same, minting certificates (SDS, requests without a lifetime) for `ttl`.
async fn control_plane_with_ttl(ttl: Duration) -> ControlPlane {
    ControlPlane::start(Some(INVENTORY), |security, _| {
        security
            .tokens(tokens(&format!(
                "# test tokens\ndefault/reviews {REVIEWS_TOKEN}\ndefault/ratings {RATINGS_TOKEN}\n"
            )))
            .cert_ttl(ttl, Duration::from_secs(7200))
            .unwrap()
    })
    .await
}

/// A channel over TLS that shows no client certificate (a workload before its first one),
/// checking the server is the control plane.
async fn token_channel(cp: &ControlPlane) -> Channel {
    let tls = external_client_config(
        &UpstreamTls {
            mode: TlsMode::Simple,
            sni: None,
            subject_alt_names: vec!["spiffe://cluster.local/ns/istio-system/sa/istiod".into()],
            client_certificate: None,
            private_key: None,
            ca_certificates: Some(cp.roots.display().to_string()),
            credential: None,
        },
        &[b"h2"],
    )
    .unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let addr = cp.addr;
    Endpoint::from_static("http://istiod.istio-system.svc")
        .connect_with_connector(tower::service_fn(move |_| {
            let connector = connector.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                let name = ServerName::try_from("istiod.istio-system.svc").unwrap();
                Ok::<_, std::io::Error>(TokioIo::new(connector.connect(name, tcp).await?))
            }
        }))
        .await
        .unwrap()
}

fn csr_for(san: &str) -> (String, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = vec![rcgen::SanType::URI(san.try_into().unwrap())];
    (params.serialize_request(&key).unwrap().pem().unwrap(), key)
}

async fn create_certificate(
    channel: Channel,
    token: Option<&str>,
    csr: String,
    validity_duration: i64,
) -> Result<Vec<String>, tonic::Status> {
    let mut request = tonic::Request::new(IstioCertificateRequest {
        csr,
        validity_duration,
    });
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let response: tonic::Response<IstioCertificateResponse> = grpc
        .unary(
            request,
            http::uri::PathAndQuery::from_static(CREATE_CERTIFICATE),
            tonic_prost::ProstCodec::default(),
        )
        .await?;
    Ok(response.into_inner().cert_chain)
}

fn leaf_id(pem: &str) -> SpiffeId {
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    spiffe_id_of(&der).unwrap()
}

/// istiod's `CreateCertificate` (security/pkg/server/ca/server.go): the SAN is the caller's
/// identity whatever the CSR asks; the response is the leaf then the root; the leaf lives as
/// long as asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ca_signs_for_the_token_identity_not_for_the_csr() {
    let cp = control_plane().await;
    let (csr, key) = csr_for("spiffe://cluster.local/ns/kube-system/sa/admin");
    let chain = create_certificate(token_channel(&cp).await, Some(REVIEWS_TOKEN), csr, 600)
        .await
        .unwrap();
    assert_eq!(chain.len(), 2, "leaf and root (the CA is a root)");
    assert_eq!(chain[1], cp.ca.roots_pem(), "the root comes last");
    assert_eq!(
        leaf_id(&chain[0]).as_str(),
        "spiffe://cluster.local/ns/default/sa/reviews"
    );
    let credentials = Credentials::from_pem(
        chain[0].as_bytes(),
        key.serialize_pem().as_bytes(),
        chain[1].as_bytes(),
        UnixTime::now(),
    )
    .expect("a valid SVID for the CSR's key");
    let life =
        credentials.leaf_not_after().unix_seconds() - credentials.leaf_not_before().unix_seconds();
    // 600 s asked for, plus the minute the CA backdates for clock skew.
    assert_eq!(life, 660);

    // No lifetime asked: the default (3600 s).
    let (csr, _) = csr_for("spiffe://cluster.local/ns/default/sa/reviews");
    let chain = create_certificate(token_channel(&cp).await, Some(RATINGS_TOKEN), csr, 0)
        .await
        .unwrap();
    assert_eq!(
        leaf_id(&chain[0]).as_str(),
        "spiffe://cluster.local/ns/default/sa/ratings",
        "the ratings token gets ratings, though the CSR names reviews"
    );
}

/// istiod's `signWithCertChain` (security/pkg/pki/ca/ca.go) refuses a TTL over the maximum
/// (`TTLError`, mapped to `InvalidArgument`); unauthenticated callers and garbage CSRs are
/// refused too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ca_refuses_strangers_long_lifetimes_and_bad_csrs() {
    let cp = control_plane().await;
    let (csr, _) = csr_for("spiffe://cluster.local/ns/default/sa/reviews");
    let none = create_certificate(token_channel(&cp).await, None, csr.clone(), 0)
        .await
        .unwrap_err();
    assert_eq!(none.code(), Code::Unauthenticated, "{none:?}");
    let wrong = create_certificate(
        token_channel(&cp).await,
        Some("not-a-token-of-this-control-plane"),
        csr.clone(),
        0,
    )
    .await
    .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated, "{wrong:?}");
    let long = create_certificate(token_channel(&cp).await, Some(REVIEWS_TOKEN), csr, 7201)
        .await
        .unwrap_err();
    assert_eq!(long.code(), Code::InvalidArgument, "{long:?}");
    let garbage = create_certificate(
        token_channel(&cp).await,
        Some(REVIEWS_TOKEN),
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n".into(),
        0,
    )
    .await
    .unwrap_err();
    assert_eq!(garbage.code(), Code::InvalidArgument, "{garbage:?}");

    // Plaintext gets nothing from a secured control plane.
    let plaintext = Endpoint::from_shared(format!("http://{}", cp.addr))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await;
    if let Ok(channel) = plaintext {
        let (csr, _) = csr_for("spiffe://cluster.local/ns/default/sa/reviews");
        assert!(
            create_certificate(channel, Some(REVIEWS_TOKEN), csr, 0)
                .await
                .is_err()
        );
    }
}

/// A caller with a mesh certificate (a renewal) gets its own identity, whatever its CSR names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_caller_renews_only_its_own_identity() {
    let cp = control_plane().await;
    let (csr, _) = csr_for("spiffe://cluster.local/ns/default/sa/reviews");
    let mtls = channel(&cp.ca, cp.addr, "shop", "cart").await;
    // The reviews token as well: the certificate is who the caller is.
    let chain = create_certificate(mtls, Some(REVIEWS_TOKEN), csr, 0)
        .await
        .unwrap();
    assert_eq!(
        leaf_id(&chain[0]).as_str(),
        "spiffe://cluster.local/ns/shop/sa/cart"
    );

    // A certificate from another CA does not even finish the handshake.
    let foreign = CertificateAuthority::generate("cluster.local").unwrap();
    let connected = try_channel(
        identity(&foreign, "default", "reviews"),
        cp.addr,
        "istiod.istio-system.svc",
    )
    .await;
    assert!(
        connected.is_err(),
        "the foreign CA's client does not trust the control plane either"
    );
}

fn node(namespace: &str, service_account: Option<&str>) -> Node {
    let mut fields = std::collections::HashMap::new();
    fields.insert(
        "NAMESPACE".to_owned(),
        Value {
            kind: Some(Kind::StringValue(namespace.into())),
        },
    );
    if let Some(sa) = service_account {
        fields.insert(
            "SERVICE_ACCOUNT".to_owned(),
            Value {
                kind: Some(Kind::StringValue(sa.into())),
            },
        );
    }
    Node {
        id: format!("sidecar~127.0.0.1~app.{namespace}~{namespace}.svc.cluster.local"),
        metadata: Some(Struct { fields }),
        ..Default::default()
    }
}

/// The first answer of a state-of-the-world CDS subscription on `channel` as `node`.
async fn first_cds(
    channel: Channel,
    token: Option<&str>,
    node: Node,
) -> Result<usize, tonic::Status> {
    let request = DiscoveryRequest {
        node: Some(node),
        type_url: type_url::CLUSTER.into(),
        ..Default::default()
    };
    let mut request = tonic::Request::new(open([request]));
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    let mut client = AggregatedDiscoveryServiceClient::new(channel);
    let mut responses = client
        .stream_aggregated_resources(request)
        .await?
        .into_inner();
    let first = next(&mut responses).await?.expect("a response");
    Ok(first.resources.len())
}

/// istiod's `checkConnectionIdentity` (pilot/pkg/xds/auth.go): the node's namespace
/// must be the authenticated identity's, and its SERVICE_ACCOUNT, when set, the identity's
/// service account; otherwise PERMISSION_DENIED. A node presenting one identity cannot get
/// another's config; a caller with no credentials gets nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_gets_only_the_config_of_its_own_identity() {
    let cp = control_plane().await;
    // Certificate callers.
    let own = first_cds(
        channel(&cp.ca, cp.addr, "default", "reviews").await,
        None,
        node("default", Some("reviews")),
    )
    .await
    .expect("its own identity is served");
    assert!(own >= 1, "the inventory cluster");
    let other_ns = first_cds(
        channel(&cp.ca, cp.addr, "default", "reviews").await,
        None,
        node("shop", Some("reviews")),
    )
    .await
    .unwrap_err();
    assert_eq!(other_ns.code(), Code::PermissionDenied, "{other_ns:?}");
    let other_sa = first_cds(
        channel(&cp.ca, cp.addr, "default", "reviews").await,
        None,
        node("default", Some("ratings")),
    )
    .await
    .unwrap_err();
    assert_eq!(other_sa.code(), Code::PermissionDenied, "{other_sa:?}");
    // Token callers: the ratings token cannot get a shop node's config.
    first_cds(
        token_channel(&cp).await,
        Some(RATINGS_TOKEN),
        node("default", None),
    )
    .await
    .expect("a node naming no service account is served as the token's");
    let stolen = first_cds(
        token_channel(&cp).await,
        Some(RATINGS_TOKEN),
        node("shop", Some("cart")),
    )
    .await
    .unwrap_err();
    assert_eq!(stolen.code(), Code::PermissionDenied, "{stolen:?}");
    let anonymous = first_cds(token_channel(&cp).await, None, node("default", None))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated, "{anonymous:?}");
}

const STRICT: &str = "apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec:
  mtls: {mode: STRICT}
";

fn serial_of(dir: &Path) -> Vec<u8> {
    let pem = std::fs::read(dir.join("cert-chain.pem")).unwrap();
    let der = CertificateDer::from_pem_slice(&pem).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    cert.raw_serial().to_vec()
}

/// A workload that starts with no certificate gets one from the control plane (bootstrap
/// token), serves STRICT mutual TLS with it to a mesh client, and renews it over mutual TLS
/// at half its life (istio-agent's SECRET_GRACE_PERIOD_RATIO) before it expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_without_a_certificate_gets_one_and_serves_strict() {
    let cp = control_plane().await;
    let work = tempfile::tempdir().unwrap();
    let certs = work.path().join("certs");
    let mut config = cp.reviews_provider(&certs);
    config.ttl = Some(Duration::from_secs(4));
    let provider = CertificateProvider::start(config).await.unwrap();
    let first = serial_of(&certs);

    let policy = work.path().join("strict.yaml");
    write_atomic(&policy, STRICT);
    let mesh = Mesh::builder()
        .workload(Workload::new("default", "reviews"))
        .identity_files(&certs)
        .config_path(&policy)
        .build()
        .await
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    serve_health(&mesh, listener).await;
    health(channel(&cp.ca, addr, "default", "productpage").await)
        .await
        .expect("a mesh client is served over mutual TLS");
    assert_plaintext_refused(addr).await;

    // Renewed at half of its 4 s life; wait for the renewal the provider reports, bounded.
    let mut renewals = provider.renewals();
    tokio::time::timeout(Duration::from_secs(20), renewals.wait_for(|n| *n >= 1))
        .await
        .expect("renewed before expiry")
        .unwrap();
    assert_ne!(serial_of(&certs), first, "a new certificate");
    health(channel(&cp.ca, addr, "default", "productpage").await)
        .await
        .expect("served after the renewal");
}

fn decode_secret(any: &envoy_types::pb::google::protobuf::Any) -> Secret {
    assert_eq!(any.type_url, SECRET_TYPE);
    Secret::decode(any.value.as_slice()).unwrap()
}

fn inline_text(source: Option<&DataSource>) -> String {
    match source.and_then(|d| d.specifier.as_ref()) {
        Some(Specifier::InlineBytes(b)) => String::from_utf8(b.clone()).unwrap(),
        other => panic!("inline bytes expected, got {other:?}"),
    }
}

/// The certificate and key of a `default` secret, checked as an SVID under `roots`.
fn svid_of(secret: &Secret, roots: &str) -> Credentials {
    assert_eq!(secret.name, "default");
    let Some(secret::Type::TlsCertificate(tls)) = &secret.r#type else {
        panic!("a TLS certificate: {secret:?}");
    };
    Credentials::from_pem(
        inline_text(tls.certificate_chain.as_ref()).as_bytes(),
        inline_text(tls.private_key.as_ref()).as_bytes(),
        roots.as_bytes(),
        UnixTime::now(),
    )
    .unwrap()
}

/// istio-agent's SDS names (security/pkg/nodeagent/sds/sdsservice.go): `default` is the
/// workload certificate of the caller's identity, `ROOTCA` the roots; a node that claims
/// another identity gets PERMISSION_DENIED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sds_serves_the_callers_certificate_and_the_roots() {
    let cp = control_plane().await;
    let request = DiscoveryRequest {
        node: Some(node("default", Some("reviews"))),
        type_url: SECRET_TYPE.into(),
        resource_names: vec!["default".into(), "ROOTCA".into()],
        ..Default::default()
    };
    let mut client =
        SecretDiscoveryServiceClient::new(channel(&cp.ca, cp.addr, "default", "reviews").await);
    let mut responses = client
        .stream_secrets(open([request]))
        .await
        .unwrap()
        .into_inner();
    let first = next(&mut responses).await.unwrap().unwrap();
    let secrets: Vec<Secret> = first.resources.iter().map(decode_secret).collect();
    let default = secrets.iter().find(|s| s.name == "default").unwrap();
    let credentials = svid_of(default, cp.ca.roots_pem());
    assert_eq!(
        credentials.spiffe_id().as_str(),
        "spiffe://cluster.local/ns/default/sa/reviews"
    );
    let rootca = secrets.iter().find(|s| s.name == "ROOTCA").unwrap();
    let Some(secret::Type::ValidationContext(vc)) = &rootca.r#type else {
        panic!("a validation context");
    };
    assert_eq!(inline_text(vc.trusted_ca.as_ref()), cp.ca.roots_pem());

    // A token caller whose node claims another service account gets nothing.
    let mut request = tonic::Request::new(open([DiscoveryRequest {
        node: Some(node("default", Some("reviews"))),
        type_url: SECRET_TYPE.into(),
        resource_names: vec!["default".into()],
        ..Default::default()
    }]));
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {RATINGS_TOKEN}").parse().unwrap(),
    );
    let mut client = SecretDiscoveryServiceClient::new(token_channel(&cp).await);
    let mut responses = client.stream_secrets(request).await.unwrap().into_inner();
    let refused = next(&mut responses).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
}

/// Incremental SDS: `default` is sent once subscribed, then pushed again with a new version
/// once half its life is gone, before it expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_sds_pushes_a_new_certificate_before_expiry() {
    let cp = control_plane_with_ttl(Duration::from_secs(4)).await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let requests =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
    tx.send(DeltaDiscoveryRequest {
        node: Some(node("default", Some("reviews"))),
        type_url: SECRET_TYPE.into(),
        resource_names_subscribe: vec!["default".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let mut client =
        SecretDiscoveryServiceClient::new(channel(&cp.ca, cp.addr, "default", "reviews").await);
    let mut responses = client.delta_secrets(requests).await.unwrap().into_inner();
    let first = next(&mut responses).await.unwrap().expect("a push");
    assert_eq!(first.resources.len(), 1);
    let first_version = first.resources[0].version.clone();
    let first_cert = svid_of(
        &decode_secret(first.resources[0].resource.as_ref().unwrap()),
        cp.ca.roots_pem(),
    );
    tx.send(DeltaDiscoveryRequest {
        type_url: SECRET_TYPE.into(),
        response_nonce: first.nonce.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    let second = next(&mut responses).await.unwrap().expect("a push");
    assert_eq!(second.resources[0].name, "default");
    assert_ne!(second.resources[0].version, first_version);
    let second_cert = svid_of(
        &decode_secret(second.resources[0].resource.as_ref().unwrap()),
        cp.ca.roots_pem(),
    );
    assert!(
        second_cert.leaf_not_after().unix_seconds() > first_cert.leaf_not_after().unix_seconds(),
        "a later certificate"
    );
    assert!(
        UnixTime::now().as_secs()
            < u64::try_from(first_cert.leaf_not_after().unix_seconds()).unwrap(),
        "pushed before the first one expired"
    );
}

/// SDS multiplexed on ADS (an Envoy whose secrets' config source is `ads`): the same secrets
/// on the ADS stream, for the caller's identity only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ads_serves_the_callers_secrets_too() {
    let cp = control_plane().await;
    let request = DiscoveryRequest {
        node: Some(node("default", Some("reviews"))),
        type_url: SECRET_TYPE.into(),
        resource_names: vec![
            "default".into(),
            "ROOTCA".into(),
            "kube-system-admin".into(),
        ],
        ..Default::default()
    };
    let mut client =
        AggregatedDiscoveryServiceClient::new(channel(&cp.ca, cp.addr, "default", "reviews").await);
    let mut responses = client
        .stream_aggregated_resources(open([request]))
        .await
        .unwrap()
        .into_inner();
    let first = next(&mut responses).await.unwrap().unwrap();
    assert_eq!(first.type_url, SECRET_TYPE);
    let secrets: Vec<Secret> = first.resources.iter().map(decode_secret).collect();
    let mut names: Vec<&str> = secrets.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["ROOTCA", "default"], "no other secret is served");
    let default = secrets.iter().find(|s| s.name == "default").unwrap();
    assert_eq!(
        svid_of(default, cp.ca.roots_pem()).spiffe_id().as_str(),
        "spiffe://cluster.local/ns/default/sa/reviews"
    );
}

/// The token file is read again when it changes: a token added works, a token removed is
/// refused, and an invalid edit leaves the last good tokens in force.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_file_is_read_again_when_it_changes() {
    let cp = ControlPlane::start(None, |security, dir| {
        let token_file = dir.join("tokens");
        write_atomic(&token_file, &format!("default/reviews {REVIEWS_TOKEN}\n"));
        security.tokens(Tokens::load(&token_file, "cluster.local").unwrap())
    })
    .await;
    let token_file = cp.dir.path().join("tokens");
    let ask = |token: &'static str| {
        let cp = &cp;
        async move {
            let (csr, _) = csr_for("spiffe://cluster.local/ns/default/sa/reviews");
            create_certificate(token_channel(cp).await, Some(token), csr, 0).await
        }
    };
    ask(REVIEWS_TOKEN).await.expect("the token of the file");
    assert_eq!(
        ask(RATINGS_TOKEN).await.unwrap_err().code(),
        Code::Unauthenticated
    );

    // ratings gets a token, reviews loses its own.
    write_atomic(&token_file, &format!("default/ratings {RATINGS_TOKEN}\n"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while ask(RATINGS_TOKEN).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "new token never accepted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        ask(REVIEWS_TOKEN).await.unwrap_err().code(),
        Code::Unauthenticated,
        "a removed token is refused"
    );

    // An invalid edit: the last good tokens stay (two polls later).
    write_atomic(&token_file, "default/ratings short\n");
    tokio::time::sleep(mesh_xds::server::auth::TOKEN_FILE_POLL * 3).await;
    ask(RATINGS_TOKEN)
        .await
        .expect("the last good tokens after an invalid edit");
}

/// Handshakes in progress are capped: with the cap taken by clients that never say hello, the
/// next client waits (its connection is not accepted yet); once they leave, it is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_handshakes_are_capped() {
    let cp = ControlPlane::start(None, |security, _| {
        security
            .tokens(tokens(&format!("default/reviews {REVIEWS_TOKEN}\n")))
            .max_pending_handshakes(2)
    })
    .await;
    let addr = cp.addr;
    let ask = || async {
        let (csr, _) = csr_for("spiffe://cluster.local/ns/default/sa/reviews");
        create_certificate(token_channel(&cp).await, Some(REVIEWS_TOKEN), csr, 0).await
    };
    ask().await.expect("served under the cap");

    let silent = [
        tokio::net::TcpStream::connect(addr).await.unwrap(),
        tokio::net::TcpStream::connect(addr).await.unwrap(),
    ];
    assert!(
        tokio::time::timeout(Duration::from_secs(1), ask())
            .await
            .is_err(),
        "the cap is taken: the next handshake waits"
    );
    drop(silent);
    tokio::time::timeout(Duration::from_secs(10), ask())
        .await
        .expect("served once the silent clients left")
        .expect("a certificate");
}
