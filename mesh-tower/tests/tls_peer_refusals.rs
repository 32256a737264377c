//! Refused peers are explained: a MeshClient that refuses a server's identity logs it and
//! answers with the expected and the presented identity; a client certificate that may not
//! sign (KeyUsage without digitalSignature) is refused in a real handshake, with that reason.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.

mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use mesh_core::identity::{
    CertificateAuthority, ExpectedIdentities, IssueOptions, PeerCertError, SpiffeId, TlsIdentity,
};
use mesh_core::model::MtlsMode;
use mesh_core::{BuildContext, Mesh, istio};
use mesh_tower::client::MeshClient;
use mesh_tower::tls::{TlsAcceptor, TlsConnector, TlsError, serve_connection};
use rustls_pki_types::UnixTime;
use support::{identity, sni, tcp_pair};
use tower::ServiceExt;

async fn strict_server(identity: TlsIdentity) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::new(identity);
    let app = Router::new().route("/", get(|| async { "ok" }));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
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

/// Log lines written through a `tracing` fmt subscriber.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_refused_server_identity_is_logged_and_explained() {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _log = tracing::subscriber::set_default(subscriber);

    let ca = CertificateAuthority::generate("cluster.local").unwrap();
    // The endpoint runs as `payment`; the server presents `impostor`.
    let server = strict_server(identity(&ca, "shop", "impostor")).await;
    let yaml = format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: payment, namespace: shop}}\nspec:\n  hosts: [payment.shop.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{{number: 8443, name: http, protocol: HTTP}}]\n  endpoints:\n  - {{address: 127.0.0.1, ports: {{http: {}}}, serviceAccount: payment}}\n",
        server.port()
    );
    let ctx = BuildContext {
        workload: mesh_core::Workload::new("shop", "checkout"),
        ..Default::default()
    };
    let mesh = Mesh::from_snapshot(ctx.clone(), istio::load_str("t.yaml", &yaml, &ctx).unwrap());
    let client = MeshClient::builder(mesh)
        .identity(identity(&ca, "shop", "checkout"))
        .build();
    let response = client
        .oneshot(
            Request::get("http://payment:8443/")
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body);
    let presented = "spiffe://cluster.local/ns/shop/sa/impostor";
    let expected = "spiffe://cluster.local/ns/shop/sa/payment";
    assert!(
        body.contains(presented) && body.contains(expected),
        "the reply names both identities: {body}"
    );
    let log = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("refused the upstream's certificate"))
        .unwrap_or_else(|| panic!("no log line in:\n{log}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(
        line.contains(presented) && line.contains(expected),
        "{line}"
    );
}

#[tokio::test]
async fn a_client_certificate_that_may_not_sign_is_refused() {
    let ca = CertificateAuthority::generate("cluster.local").unwrap();
    let id: SpiffeId = "spiffe://cluster.local/ns/default/sa/enc".parse().unwrap();
    let issued = ca
        .issue_with(&IssueOptions::new(id, Duration::from_secs(3600)).digital_signature(false))
        .unwrap();
    // `Credentials` loads it (it checks the key pair, not KeyUsage); the server must refuse.
    let client = TlsIdentity::new(issued.credentials(UnixTime::now()).unwrap()).unwrap();
    let (c, s) = tcp_pair().await;
    let acceptor = TlsAcceptor::new(identity(&ca, "default", "reviews"));
    let connector = TlsConnector::new(client);
    let any = ExpectedIdentities::any_in_trust_domain();
    let (_, server) = tokio::join!(
        connector.connect(c, sni(), &any),
        acceptor.accept(s, MtlsMode::Strict)
    );
    let err = server.expect_err("refused");
    assert!(
        matches!(err, TlsError::PeerCertificate(PeerCertError::KeyUsage(_))),
        "{err:?}"
    );
    assert!(err.to_string().contains("digitalSignature"), "{err}");
}
