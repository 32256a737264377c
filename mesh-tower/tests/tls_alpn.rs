//! ALPN as Istio's sidecars offer it: a mesh server accepts an Envoy ISTIO_MUTUAL upstream
//! (`istio-peer-exchange`, `istio`, maybe `h2`) and istio-proxy's per-version IDs, and refuses a
//! client that offers no protocol it serves.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use mesh_core::identity::ExpectedIdentities;
use mesh_core::model::MtlsMode;
use mesh_tower::tls::{HttpVersion, TlsAcceptor, TlsError};
use support::*;

/// Handshakes a rustls client offering `alpn` (with the mesh client's certificate and verifier)
/// against a STRICT mesh acceptor; returns the protocol the client saw and the server's result.
async fn offer(alpn: &[&[u8]]) -> (Option<Vec<u8>>, Result<Option<HttpVersion>, TlsError>) {
    let ca = ca("cluster.local");
    let server = identity(&ca, "default", "reviews");
    let client = identity(&ca, "default", "productpage");
    let mut config = (*client
        .client_config(&ExpectedIdentities::any_in_trust_domain())
        .unwrap())
    .clone();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let (c, s) = tcp_pair().await;
    let acceptor = TlsAcceptor::new(server);
    let (client, server) = tokio::join!(
        connector.connect(sni(), c),
        acceptor.accept(s, MtlsMode::Strict)
    );
    let negotiated = client
        .ok()
        .and_then(|tls| tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec));
    (negotiated, server.map(|accepted| accepted.http))
}

#[tokio::test]
async fn envoy_istio_mutual_http1_cluster_negotiates_istio() {
    // Istio's ALPNInMeshWithMxc: what an Envoy ISTIO_MUTUAL HTTP/1.1 cluster offers.
    let (negotiated, server) = offer(&[b"istio-peer-exchange", b"istio"]).await;
    assert_eq!(negotiated.as_deref(), Some(&b"istio"[..]));
    assert_eq!(
        server.unwrap(),
        None,
        "no version named: detected from the bytes"
    );
}

#[tokio::test]
async fn envoy_istio_mutual_h2_cluster_negotiates_h2() {
    // Istio's ALPNInMeshH2WithMxc.
    let (negotiated, server) = offer(&[b"istio-peer-exchange", b"istio", b"h2"]).await;
    assert_eq!(negotiated.as_deref(), Some(&b"h2"[..]));
    assert_eq!(server.unwrap(), Some(HttpVersion::Http2));
}

#[tokio::test]
async fn istio_proxy_override_ids_name_the_http_version() {
    for (id, version) in [
        (&b"istio-h2"[..], HttpVersion::Http2),
        (b"istio-http/1.1", HttpVersion::Http1),
        (b"istio-http/1.0", HttpVersion::Http1),
    ] {
        let (negotiated, server) = offer(&[b"istio-peer-exchange", id]).await;
        assert_eq!(negotiated.as_deref(), Some(id));
        assert_eq!(server.unwrap(), Some(version));
    }
}

#[tokio::test]
async fn a_client_offering_no_protocol_mesh_serves_is_refused() {
    let (negotiated, server) = offer(&[b"istio-peer-exchange", b"spdy/3"]).await;
    assert_eq!(negotiated, None);
    match server.unwrap_err() {
        TlsError::Handshake(rustls::Error::NoApplicationProtocol) => {}
        other => panic!("expected no_application_protocol, got {other:?}"),
    }
}
