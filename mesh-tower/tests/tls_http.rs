//! HTTP over the acceptor: the peer identity reaches axum handlers; PERMISSIVE takes mutual TLS
//! and plaintext HTTP/2 and HTTP/1.1 on one port; STRICT takes only mutual TLS.
#![allow(clippy::unwrap_used)]

mod support;

use http_body_util::{BodyExt, Empty};
use mesh_core::identity::ExpectedIdentities;
use mesh_core::model::MtlsMode;
use mesh_tower::tls::{HttpVersion, Protocol, TlsAcceptor, TlsConnector, TlsError};
use support::*;
use tokio::net::TcpStream;

async fn plaintext_h1(
    addr: std::net::SocketAddr,
    path: &str,
) -> Result<(u16, String), hyper::Error> {
    let io = hyper_util::rt::TokioIo::new(TcpStream::connect(addr).await.unwrap());
    let (mut send, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(conn);
    let request = http::Request::get(path)
        .header("host", "reviews")
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = send.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[tokio::test]
async fn permissive_port_serves_mtls_and_plaintext_h2_and_h1() {
    let ca = ca("cluster.local");
    let acceptor = TlsAcceptor::new(identity(&ca, "default", "reviews"));
    let (addr, _errors) = spawn_server(acceptor, MtlsMode::Permissive).await;

    // Mutual TLS, HTTP/2 by ALPN: the handler sees the caller's identity.
    let connector = TlsConnector::new(identity(&ca, "default", "productpage"));
    let tls = connector
        .connect(
            TcpStream::connect(addr).await.unwrap(),
            sni(),
            &ExpectedIdentities::any_in_trust_domain(),
        )
        .await
        .unwrap();
    assert_eq!(tls.http, Some(HttpVersion::Http2));
    assert_eq!(tls.peer.principal(), "cluster.local/ns/default/sa/reviews");
    let mut mtls = h2_client(tls.stream).await;
    assert_eq!(
        get(&mut mtls, "/whoami").await.unwrap(),
        (200, "cluster.local/ns/default/sa/productpage".into())
    );
    assert_eq!(
        get(&mut mtls, "/mtls-only").await.unwrap(),
        (
            200,
            "spiffe://cluster.local/ns/default/sa/productpage".into()
        )
    );

    // Plaintext HTTP/2 (prior knowledge) on the same port: no identity.
    let mut plain = h2_client(TcpStream::connect(addr).await.unwrap()).await;
    assert_eq!(
        get(&mut plain, "/whoami").await.unwrap(),
        (200, "plaintext".into())
    );
    // A handler that requires the identity rejects plaintext callers.
    assert_eq!(get(&mut plain, "/mtls-only").await.unwrap().0, 500);

    // Plaintext HTTP/1.1 on the same port.
    assert_eq!(
        plaintext_h1(addr, "/whoami").await.unwrap(),
        (200, "plaintext".into())
    );
}

#[tokio::test]
async fn strict_port_serves_mtls_and_refuses_plaintext() {
    let ca = ca("cluster.local");
    let acceptor = TlsAcceptor::new(identity(&ca, "default", "reviews"));
    let (addr, mut errors) = spawn_server(acceptor, MtlsMode::Strict).await;

    let connector = TlsConnector::new(identity(&ca, "default", "productpage"));
    let tls = connector
        .connect(
            TcpStream::connect(addr).await.unwrap(),
            sni(),
            &ExpectedIdentities::any_in_trust_domain(),
        )
        .await
        .unwrap();
    let mut mtls = h2_client(tls.stream).await;
    assert_eq!(
        get(&mut mtls, "/whoami").await.unwrap(),
        (200, "cluster.local/ns/default/sa/productpage".into())
    );

    assert!(plaintext_h1(addr, "/whoami").await.is_err());
    let err = errors.recv().await.unwrap();
    assert!(
        matches!(err, TlsError::PlaintextOnStrictPort(Protocol::Http1)),
        "{err}"
    );
}
