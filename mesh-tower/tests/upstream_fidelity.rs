//! Upstream config Istio accepts, applied end to end (issue #12): DestinationRule TLS SIMPLE /
//! MUTUAL towards servers outside the mesh (files and `credentialName`), unix domain socket
//! endpoints, and HTTP/2 PING keep-alive. Real rustls servers with certificates minted by rcgen,
//! real axum servers, sockets on 127.0.0.1 and in a temp dir.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.

mod backends;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use backends::mesh;
use base64::Engine;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use mesh_tower::client::MeshClient;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

/// A CA and its issuer.
struct Ca {
    pem: String,
    der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        der: cert.der().clone(),
        issuer: Issuer::new(params, key),
    }
}

/// A leaf for `sans` signed by `ca`: (certificate PEM, key PEM, DER chain, DER key).
fn leaf(
    ca: &Ca,
    sans: &[&str],
) -> (
    String,
    String,
    Vec<CertificateDer<'static>>,
    PrivateKeyDer<'static>,
) {
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    let der_key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (
        cert.pem(),
        key.serialize_pem(),
        vec![cert.der().clone()],
        der_key,
    )
}

/// mesh's own provider (ring, as no default is installed here), without the deprecated
/// `ring::default_provider` call a newer rustls warns about.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    mesh_core::identity::provider()
}

/// What the TLS server saw.
#[derive(Default)]
struct Seen {
    requests: AtomicUsize,
    client_certs: AtomicUsize,
    sni: std::sync::Mutex<Vec<String>>,
}

/// An HTTPS server on 127.0.0.1 presenting `chain`, requiring a client certificate from
/// `client_ca` when given; answers "secure" to every request.
async fn tls_server(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_ca: Option<&Ca>,
) -> (u16, Arc<Seen>) {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.der.clone()).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                roots.into(),
                provider(),
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let seen = s.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let (_, conn) = tls.get_ref();
                if conn.peer_certificates().is_some_and(|c| !c.is_empty()) {
                    seen.client_certs.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(sni) = conn.server_name() {
                    seen.sni.lock().unwrap().push(sni.to_owned());
                }
                let counter = seen.clone();
                let app = axum::Router::new().fallback(move || {
                    counter.requests.fetch_add(1, Ordering::Relaxed);
                    async { "secure" }
                });
                let service =
                    hyper::service::service_fn(move |request| app.clone().oneshot(request));
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
            });
        }
    });
    (port, seen)
}

/// Istio's TLS origination shape: the app calls `http://api.example.com`, the ServiceEntry sends
/// port 80 to `target_port` on 127.0.0.1, and the DestinationRule originates TLS.
fn origination(target_port: u16, tls: &str, extra: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: api, namespace: default}}
spec:
  hosts: [api.example.com]
  resolution: STATIC
  ports: [{{number: 80, name: http, protocol: HTTP, targetPort: {target_port}}}]
  endpoints: [{{address: 127.0.0.1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: api, namespace: default}}
spec:
  host: api.example.com
  trafficPolicy:
    tls: {tls}
{extra}"
    )
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

async fn call(client: &MeshClient, url: &str) -> (StatusCode, String) {
    let response = client
        .clone()
        .oneshot(Request::get(url).body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// SIMPLE with `credentialName`: the CA comes from the Secret (`ca.crt`), the server is checked
/// against the SNI host (Envoy's auto_sni + auto_san_validation, set by istiod's
/// `setAutoSniAndAutoSanValidation` when the rule has neither `sni` nor SANs). This was refused at
/// connect time before.
#[tokio::test]
async fn simple_tls_with_credential_name_reaches_an_external_server() {
    let ca = ca("external ca");
    let (_, _, chain, key) = leaf(&ca, &["api.example.com"]);
    let (port, seen) = tls_server(chain, key, None).await;
    let secret = format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: api-ca, namespace: default}}\ndata: {{ca.crt: {}}}\n",
        b64(&ca.pem)
    );
    let yaml = origination(port, "{mode: SIMPLE, credentialName: api-ca}", &secret);
    let client = MeshClient::builder(mesh(&yaml)).build();
    let (status, body) = call(&client, "http://api.example.com/").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "secure"));
    assert_eq!(seen.requests.load(Ordering::Relaxed), 1);
    assert_eq!(*seen.sni.lock().unwrap(), ["api.example.com"]);
}

/// MUTUAL with `credentialName`: client certificate and key from a `kubernetes.io/tls` Secret,
/// the CA from `<name>-cacert` (istiod's `SdsCaSuffix`). The server requires the client
/// certificate.
#[tokio::test]
async fn mutual_tls_with_credential_name_presents_the_client_certificate() {
    let server_ca = ca("server ca");
    let client_ca = ca("client ca");
    let (_, _, chain, key) = leaf(&server_ca, &["api.example.com"]);
    let (port, seen) = tls_server(chain, key, Some(&client_ca)).await;
    let (client_cert, client_key, _, _) = leaf(&client_ca, &["client.example.com"]);
    let secrets = format!(
        "---
apiVersion: v1
kind: Secret
metadata: {{name: client, namespace: default}}
type: kubernetes.io/tls
data: {{tls.crt: {}, tls.key: {}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: client-cacert, namespace: default}}
data: {{cacert: {}}}
",
        b64(&client_cert),
        b64(&client_key),
        b64(&server_ca.pem)
    );
    let yaml = origination(port, "{mode: MUTUAL, credentialName: client}", &secrets);
    let client = MeshClient::builder(mesh(&yaml)).build();
    let (status, body) = call(&client, "http://api.example.com/").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "secure"));
    assert_eq!(seen.client_certs.load(Ordering::Relaxed), 1);

    // Without its Secret the rule is accepted (as istiod does) but nothing is sent, not even in
    // plaintext: 503.
    let yaml = origination(port, "{mode: MUTUAL, credentialName: missing}", "");
    let client = MeshClient::builder(mesh(&yaml)).build();
    let (status, _) = call(&client, "http://api.example.com/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(seen.requests.load(Ordering::Relaxed), 1);
}

/// MUTUAL with certificate files (`clientCertificate`, `privateKey`, `caCertificates`), and
/// `subjectAltNames` matched exactly against the server certificate (Envoy's
/// `match_subject_alt_names`); a server whose names do not match, or that a different CA signed,
/// is refused.
#[tokio::test]
async fn mutual_tls_with_files_checks_the_server() {
    let server_ca = ca("server ca");
    let client_ca = ca("client ca");
    let (_, _, chain, key) = leaf(&server_ca, &["backend.internal.example"]);
    let (port, seen) = tls_server(chain, key, Some(&client_ca)).await;
    let (client_cert, client_key, _, _) = leaf(&client_ca, &["client.example.com"]);
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str, content: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        p.display().to_string()
    };
    let (cert, key, ca_file) = (
        path("cert.pem", &client_cert),
        path("key.pem", &client_key),
        path("ca.pem", &server_ca.pem),
    );
    let other_ca = path("other-ca.pem", &ca("other").pem);
    let tls = |ca: &str, san: &str| {
        format!(
            "{{mode: MUTUAL, clientCertificate: {cert}, privateKey: {key}, caCertificates: {ca}, subjectAltNames: [{san}]}}"
        )
    };
    let ok = MeshClient::builder(mesh(&origination(
        port,
        &tls(&ca_file, "backend.internal.example"),
        "",
    )))
    .build();
    assert_eq!(call(&ok, "http://api.example.com/").await.0, StatusCode::OK);
    for (ca, san) in [
        (ca_file.as_str(), "someone-else.example"),
        (other_ca.as_str(), "backend.internal.example"),
    ] {
        let refused = MeshClient::builder(mesh(&origination(port, &tls(ca, san), ""))).build();
        assert_eq!(
            call(&refused, "http://api.example.com/").await.0,
            StatusCode::SERVICE_UNAVAILABLE,
            "{ca} {san}"
        );
    }
    assert_eq!(seen.requests.load(Ordering::Relaxed), 1);
}

/// ServiceEntry endpoints on unix domain sockets (`unix:///path`, istiod's
/// `UnixAddressPrefix`): a real axum server on a socket in a temp dir.
#[cfg(unix)]
#[tokio::test]
async fn unix_socket_endpoints_are_reached() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("app.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    let app = axum::Router::new().fallback(|| async { "over a unix socket" });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let yaml = format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: local, namespace: default}}
spec:
  hosts: [local.sock.internal]
  resolution: STATIC
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  endpoints: [{{address: \"unix://{}\"}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: local, namespace: default}}
spec:
  host: local.sock.internal
  trafficPolicy: {{tls: {{mode: DISABLE}}}}
",
        socket.display()
    );
    let client = MeshClient::builder(mesh(&yaml)).build();
    for _ in 0..3 {
        let (status, body) = call(&client, "http://local.sock.internal/").await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "over a unix socket")
        );
    }
}

/// An HTTP/2 server that completes the SETTINGS exchange, then never answers anything (not a
/// request, not a PING). Returns its port.
async fn silent_h2_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                // Empty SETTINGS, then an ACK of the client's.
                let settings = [0u8, 0, 0, 4, 0, 0, 0, 0, 0];
                let ack = [0u8, 0, 0, 4, 1, 0, 0, 0, 0];
                if tcp.write_all(&settings).await.is_err() || tcp.write_all(&ack).await.is_err() {
                    return;
                }
                let mut buf = [0u8; 4096];
                while matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    port
}

fn h2_service(port: u16, pool: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: grpc, namespace: default}}
spec:
  hosts: [grpc.example.internal]
  resolution: STATIC
  ports: [{{number: 80, name: grpc, protocol: GRPC, targetPort: {port}}}]
  endpoints: [{{address: 127.0.0.1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: grpc, namespace: default}}
spec:
  host: grpc.example.internal
  trafficPolicy:
    tls: {{mode: DISABLE}}
{pool}"
    )
}

/// `connectionPool.http.http2KeepAlive` (Envoy's `http2_protocol_options.connection_keepalive`,
/// set by istiod's `applyConnectionPool`): a PING goes out after `interval`, and a connection
/// whose PING is not answered within `timeout` is closed, failing what it carried. Without it no
/// PING goes out (istiod sets `connection_keepalive` from `http2KeepAlive` alone, and Envoy
/// sends none without it), so the call waits.
#[tokio::test]
async fn http2_keepalive_closes_a_silent_connection() {
    let port = silent_h2_server().await;
    let call_with = |pool: &str| {
        let client = MeshClient::builder(mesh(&h2_service(port, pool))).build();
        async move {
            let request = Request::post("http://grpc.example.internal/pkg.Svc/Method")
                .version(http::Version::HTTP_2)
                .header("content-type", "application/grpc")
                .body(Empty::<Bytes>::new())
                .unwrap();
            tokio::time::timeout(Duration::from_secs(3), client.oneshot(request)).await
        }
    };
    let configured = call_with(
        "    connectionPool: {http: {http2KeepAlive: {interval: 100ms, timeout: 200ms}}}\n",
    )
    .await;
    let response = configured.expect("the keep-alive ends the call well before 3 s");
    // The connection failed under the request: gRPC UNAVAILABLE (14), not a hang.
    let response = response.expect("an error response");
    assert_eq!(
        response
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok()),
        Some("14"),
        "{response:?}"
    );
    let default = call_with("").await;
    assert!(default.is_err(), "without http2KeepAlive the call waits");
}

/// A plain HTTP/1.1 and HTTP/2 server on 127.0.0.1 counting the connections it accepts.
async fn counting_server() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
                let service =
                    hyper::service::service_fn(move |request| app.clone().oneshot(request));
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                .await;
            });
        }
    });
    (port, accepted)
}

/// `connectionPool.tcp.maxConnectionDuration` (Envoy's `max_connection_duration`, set by istiod's
/// `applyConnectionPool`): a connection older than this takes no new request, so the next one
/// opens a new connection; younger connections are reused. Without it, one connection serves
/// all (the 1 h idle timeout is far away). Both HTTP/1.1 and HTTP/2.
#[tokio::test]
async fn max_connection_duration_retires_old_connections() {
    for version in [http::Version::HTTP_11, http::Version::HTTP_2] {
        for (pool, expected) in [
            (
                "    connectionPool: {tcp: {maxConnectionDuration: 2s}}\n",
                2,
            ),
            ("", 1),
        ] {
            let (port, accepted) = counting_server().await;
            let client =
                MeshClient::builder(mesh(&origination(port, "{mode: DISABLE}", pool))).build();
            let get = || {
                let request = Request::get("http://api.example.com/")
                    .version(version)
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                let client = client.clone();
                async move {
                    let response = client.oneshot(request).await.unwrap();
                    assert_eq!(response.status(), StatusCode::OK);
                    response.into_body().collect().await.unwrap();
                }
            };
            get().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            get().await;
            assert_eq!(accepted.load(Ordering::Relaxed), 1, "{version:?} {pool:?}");
            tokio::time::sleep(Duration::from_millis(2500)).await;
            get().await;
            assert_eq!(
                accepted.load(Ordering::Relaxed),
                expected,
                "{version:?} {pool:?}"
            );
        }
    }
}

/// A server on 127.0.0.1 answering each request with the HTTP version it came in.
async fn version_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let app = axum::Router::new().route(
                    "/",
                    axum::routing::get(
                        |version: http::Version| async move { format!("{version:?}") },
                    ),
                );
                let service =
                    hyper::service::service_fn(move |request| app.clone().oneshot(request));
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                .await;
            });
        }
    });
    port
}

/// `connectionPool.http.useClientProtocol` (istiod's `setUseDownstreamProtocol`, which replaces
/// an HTTP/2 port's explicit HTTP/2): each request goes upstream in the version the app sent.
/// Without it, the HTTP2 port makes every request HTTP/2.
#[tokio::test]
async fn use_client_protocol_keeps_the_callers_http_version() {
    let port = version_server().await;
    let service = |pool: &str| {
        format!(
            "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: api, namespace: default}}
spec:
  hosts: [api.example.internal]
  resolution: STATIC
  ports: [{{number: 80, name: http2, protocol: HTTP2, targetPort: {port}}}]
  endpoints: [{{address: 127.0.0.1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: api, namespace: default}}
spec:
  host: api.example.internal
  trafficPolicy:
    tls: {{mode: DISABLE}}
{pool}"
        )
    };
    for (pool, http11, http2) in [
        (
            "    connectionPool: {http: {useClientProtocol: true}}\n",
            "HTTP/1.1",
            "HTTP/2.0",
        ),
        ("", "HTTP/2.0", "HTTP/2.0"),
    ] {
        let client = MeshClient::builder(mesh(&service(pool))).build();
        for (version, expected) in [
            (http::Version::HTTP_11, http11),
            (http::Version::HTTP_2, http2),
        ] {
            let request = Request::get("http://api.example.internal/")
                .version(version)
                .body(Empty::<Bytes>::new())
                .unwrap();
            let response = client.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{pool:?} {version:?}");
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body, expected, "{pool:?} {version:?}");
        }
    }
}
