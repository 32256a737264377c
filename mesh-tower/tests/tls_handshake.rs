//! Real mutual-TLS handshakes on 127.0.0.1 with certificates minted here: who is accepted, and
//! the distinct reason each bad peer is refused, on whichever side refuses it.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use mesh_core::identity::{ExpectedIdentities, IssueOptions, PeerCertError, SpiffeId, TlsIdentity};
use mesh_core::model::MtlsMode;
use mesh_tower::tls::{
    Accepted, ClientTls, HttpVersion, Protocol, TlsAcceptor, TlsConnector, TlsError,
};
use rustls::AlertDescription;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type Outcome = (
    Result<ClientTls<TcpStream>, TlsError>,
    Result<Accepted<TcpStream>, TlsError>,
);

async fn handshake(
    server: TlsIdentity,
    client: TlsIdentity,
    expected: ExpectedIdentities,
) -> Outcome {
    let (c, s) = tcp_pair().await;
    let acceptor = TlsAcceptor::new(server);
    let connector = TlsConnector::new(client);
    tokio::join!(
        connector.connect(c, sni(), &expected),
        acceptor.accept(s, MtlsMode::Strict)
    )
}

fn any() -> ExpectedIdentities {
    ExpectedIdentities::any_in_trust_domain()
}

/// The server refused the client: its error, and the alert the client then reads.
async fn refused_by_server(outcome: Outcome) -> (TlsError, String) {
    let (client, server) = outcome;
    let server_err = server.unwrap_err();
    // TLS 1.3: the client finished first; the server's alert arrives on the first read.
    let client_err = match client {
        Ok(mut tls) => {
            let mut buf = [0u8; 1];
            tls.stream.read(&mut buf).await.unwrap_err().to_string()
        }
        Err(e) => e.to_string(),
    };
    (server_err, client_err)
}

fn refused_by_client(outcome: Outcome) -> (TlsError, TlsError) {
    let (client, server) = outcome;
    (client.unwrap_err(), server.unwrap_err())
}

#[tokio::test]
async fn trusted_peers_are_accepted_both_ways() {
    let ca = ca("cluster.local");
    let server = identity(&ca, "default", "reviews");
    let client = identity(&ca, "default", "productpage");
    let (client, server) = handshake(server, client, any()).await;
    let mut client = client.unwrap();
    let mut server = server.unwrap();

    assert_eq!(
        client.peer.principal(),
        "cluster.local/ns/default/sa/reviews"
    );
    assert_eq!(client.peer.namespace(), Some("default"));
    assert_eq!(client.peer.service_account(), Some("reviews"));
    let peer = server.peer.clone().unwrap();
    assert_eq!(
        peer.spiffe_id().as_str(),
        "spiffe://cluster.local/ns/default/sa/productpage"
    );
    assert_eq!(peer.trust_domain(), "cluster.local");
    assert_eq!(client.http, Some(HttpVersion::Http2));
    assert_eq!(server.http, Some(HttpVersion::Http2));
    assert_eq!(server.security_policy(), "mutual_tls");
    assert_eq!(
        client.stream.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );

    client.stream.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    server.stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
    server.stream.write_all(b"pong").await.unwrap();
    client.stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"pong");
}

#[tokio::test]
async fn every_connection_is_a_full_handshake() {
    // Resumption would skip certificate verification; after a root or policy change the skipped
    // checks could have a different answer. Both ends refuse it, so the second connection
    // between the same identities verifies again.
    let ca = ca("cluster.local");
    let server = identity(&ca, "default", "reviews");
    let client = identity(&ca, "default", "productpage");
    for _ in 0..2 {
        let (client, server) = handshake(server.clone(), client.clone(), any()).await;
        let (client, server) = (client.unwrap(), server.unwrap());
        assert_eq!(
            client.stream.get_ref().1.handshake_kind(),
            Some(rustls::HandshakeKind::Full)
        );
        drop(server);
    }
    assert_eq!(server.server_config().send_tls13_tickets, 0);
}

#[tokio::test]
async fn tls12_peers_are_accepted() {
    let ca = ca("cluster.local");
    let issued = ca.issue("default", "productpage", HOUR).unwrap();
    let (c, s) = tcp_pair().await;
    let acceptor = TlsAcceptor::new(identity(&ca, "default", "reviews"));
    let raw = raw_client_with_versions(Some(&issued), &[&rustls::version::TLS12]);
    let (client, server) =
        tokio::join!(raw.connect(sni(), c), acceptor.accept(s, MtlsMode::Strict));
    let client = client.unwrap();
    assert_eq!(
        client.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    assert_eq!(
        server.unwrap().peer.unwrap().principal(),
        "cluster.local/ns/default/sa/productpage"
    );
}

#[tokio::test]
async fn listed_identities_are_enforced() {
    let ca = ca("cluster.local");
    let reviews = id("spiffe://cluster.local/ns/default/sa/reviews");
    let ratings = id("spiffe://cluster.local/ns/default/sa/ratings");

    let (client, _) = handshake(
        identity(&ca, "default", "reviews"),
        identity(&ca, "default", "productpage"),
        ExpectedIdentities::one_of([ratings.clone(), reviews]),
    )
    .await;
    assert_eq!(client.unwrap().peer.service_account(), Some("reviews"));

    let (client, _) = refused_by_client(
        handshake(
            identity(&ca, "default", "reviews"),
            identity(&ca, "default", "productpage"),
            ExpectedIdentities::one_of([ratings]),
        )
        .await,
    );
    assert!(matches!(
        client,
        TlsError::PeerCertificate(PeerCertError::IdentityNotExpected { .. })
    ));
    assert_eq!(
        client.to_string(),
        "peer identity spiffe://cluster.local/ns/default/sa/reviews is not expected; \
         expected one of [spiffe://cluster.local/ns/default/sa/ratings]"
    );
}

#[tokio::test]
async fn expired_leaf_is_refused() {
    let ca = ca("cluster.local");
    let (client, server) = refused_by_client(
        handshake(
            expired(&ca, "default", "reviews"),
            identity(&ca, "default", "productpage"),
            any(),
        )
        .await,
    );
    assert!(matches!(
        client,
        TlsError::PeerCertificate(PeerCertError::Expired)
    ));
    assert_eq!(client.to_string(), "peer certificate has expired");
    assert!(matches!(
        server,
        TlsError::RejectedByPeer(AlertDescription::CertificateExpired)
    ));
    assert_eq!(
        server.to_string(),
        "the peer refused the TLS handshake: it says our certificate has expired \
         (CertificateExpired alert)"
    );

    let (server, client) = refused_by_server(
        handshake(
            identity(&ca, "default", "reviews"),
            expired(&ca, "default", "productpage"),
            any(),
        )
        .await,
    )
    .await;
    assert!(matches!(
        server,
        TlsError::PeerCertificate(PeerCertError::Expired)
    ));
    assert!(client.contains("CertificateExpired"), "{client}");
}

#[tokio::test]
async fn not_yet_valid_leaf_is_refused() {
    let ca = ca("cluster.local");
    let (client, _) = refused_by_client(
        handshake(
            not_yet_valid(&ca, "default", "reviews"),
            identity(&ca, "default", "productpage"),
            any(),
        )
        .await,
    );
    assert!(matches!(
        client,
        TlsError::PeerCertificate(PeerCertError::NotYetValid)
    ));
    assert_eq!(client.to_string(), "peer certificate is not valid yet");

    let (server, _) = refused_by_server(
        handshake(
            identity(&ca, "default", "reviews"),
            not_yet_valid(&ca, "default", "productpage"),
            any(),
        )
        .await,
    )
    .await;
    assert!(matches!(
        server,
        TlsError::PeerCertificate(PeerCertError::NotYetValid)
    ));
}

#[tokio::test]
async fn untrusted_ca_is_refused() {
    let ours = ca("cluster.local");
    // Same trust domain and subject, different key: a rogue or rotated-away CA.
    let theirs = ca("cluster.local");
    let (client, server) = refused_by_client(
        handshake(
            identity(&theirs, "default", "reviews"),
            identity(&ours, "default", "productpage"),
            any(),
        )
        .await,
    );
    assert!(matches!(
        client,
        TlsError::PeerCertificate(PeerCertError::UntrustedCa)
    ));
    assert_eq!(
        client.to_string(),
        "peer certificate is not signed by a trusted CA"
    );
    assert!(matches!(server, TlsError::RejectedByPeer(_)), "{server}");

    // A client whose certificate is from a CA we do not trust, though it trusts ours.
    let mut issued = theirs.issue("default", "productpage", HOUR).unwrap();
    issued.roots_pem = format!("{}{}", issued.roots_pem, ours.roots_pem());
    let (server, client) = refused_by_server(
        handshake(
            identity(&ours, "default", "reviews"),
            tls_identity(&issued, rustls::pki_types::UnixTime::now()),
            any(),
        )
        .await,
    )
    .await;
    assert!(matches!(
        server,
        TlsError::PeerCertificate(PeerCertError::UntrustedCa)
    ));
    // Same CA name, other key: webpki finds the issuer by name, then the signature fails.
    assert!(client.contains("DecryptError"), "{client}");
}

#[tokio::test]
async fn wrong_trust_domain_is_refused() {
    let ca = ca("cluster.local");
    let foreign = |sa: &str| {
        let options = IssueOptions::new(SpiffeId::istio("other.org", "default", sa).unwrap(), HOUR);
        tls_identity(
            &ca.issue_with(&options).unwrap(),
            rustls::pki_types::UnixTime::now(),
        )
    };
    let (client, _) = refused_by_client(
        handshake(
            foreign("reviews"),
            identity(&ca, "default", "productpage"),
            any(),
        )
        .await,
    );
    assert!(matches!(
        client,
        TlsError::PeerCertificate(PeerCertError::WrongTrustDomain { .. })
    ));
    assert_eq!(
        client.to_string(),
        "peer identity spiffe://other.org/ns/default/sa/reviews is in trust domain \
         \"other.org\"; expected \"cluster.local\""
    );

    // The foreign client names the server it expects, so it is the server that refuses.
    let (server, _) = refused_by_server(
        handshake(
            identity(&ca, "default", "reviews"),
            foreign("productpage"),
            ExpectedIdentities::one_of([id("spiffe://cluster.local/ns/default/sa/reviews")]),
        )
        .await,
    )
    .await;
    assert!(matches!(
        server,
        TlsError::PeerCertificate(PeerCertError::WrongTrustDomain { .. })
    ));
}

/// Certificates mesh refuses to load are presented by raw rustls peers.
async fn raw_server_outcome(sans: &[&str]) -> TlsError {
    let ca = ca("cluster.local");
    let bad = with_uri_sans(&ca, sans);
    let (c, s) = tcp_pair().await;
    let connector = TlsConnector::new(identity(&ca, "default", "productpage"));
    let raw = raw_server(&bad);
    let expected = any();
    let (client, _server) = tokio::join!(connector.connect(c, sni(), &expected), raw.accept(s));
    client.unwrap_err()
}

async fn raw_client_outcome(sans: Option<&[&str]>) -> TlsError {
    raw_client_outcome_in(sans, MtlsMode::Strict).await
}

async fn raw_client_outcome_in(sans: Option<&[&str]>, mode: MtlsMode) -> TlsError {
    let ca = ca("cluster.local");
    let bad = sans.map(|sans| with_uri_sans(&ca, sans));
    let (c, s) = tcp_pair().await;
    let acceptor = TlsAcceptor::new(identity(&ca, "default", "reviews"));
    let raw = raw_client(bad.as_ref());
    let (_client, server) = tokio::join!(raw.connect(sni(), c), acceptor.accept(s, mode));
    server.unwrap_err()
}

#[tokio::test]
async fn leaf_without_spiffe_san_is_refused() {
    let err = raw_server_outcome(&[]).await;
    assert!(matches!(
        err,
        TlsError::PeerCertificate(PeerCertError::NoSpiffeSan)
    ));
    assert_eq!(err.to_string(), "peer certificate has no SPIFFE URI SAN");
    let err = raw_client_outcome(Some(&[])).await;
    assert!(matches!(
        err,
        TlsError::PeerCertificate(PeerCertError::NoSpiffeSan)
    ));
}

#[tokio::test]
async fn leaf_with_two_uri_sans_is_refused() {
    let two = [
        "spiffe://cluster.local/ns/default/sa/a",
        "spiffe://cluster.local/ns/default/sa/b",
    ];
    let err = raw_server_outcome(&two).await;
    assert!(matches!(
        err,
        TlsError::PeerCertificate(PeerCertError::MultipleUriSans(2))
    ));
    assert_eq!(
        err.to_string(),
        "peer certificate has 2 URI SANs; an X.509-SVID has exactly one"
    );
    let err = raw_client_outcome(Some(&two)).await;
    assert!(matches!(
        err,
        TlsError::PeerCertificate(PeerCertError::MultipleUriSans(2))
    ));
}

#[tokio::test]
async fn client_without_certificate_is_refused() {
    let err = raw_client_outcome(None).await;
    assert!(
        matches!(
            err,
            TlsError::Handshake(rustls::Error::NoCertificatesPresented)
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "TLS handshake failed: peer sent no certificates"
    );
    // PERMISSIVE allows plaintext, but TLS on it is still mutual TLS.
    let err = raw_client_outcome_in(None, MtlsMode::Permissive).await;
    assert!(matches!(
        err,
        TlsError::Handshake(rustls::Error::NoCertificatesPresented)
    ));
}

#[tokio::test]
async fn client_that_sends_nothing_and_closes() {
    let ca = ca("cluster.local");
    let acceptor = TlsAcceptor::new(identity(&ca, "default", "reviews"));
    let (c, s) = tcp_pair().await;
    drop(c);
    let err = acceptor.accept(s, MtlsMode::Permissive).await.unwrap_err();
    assert!(matches!(err, TlsError::ClosedEarly), "{err}");
}

#[tokio::test]
async fn plaintext_to_strict_port_is_refused() {
    let ca = ca("cluster.local");
    let acceptor = TlsAcceptor::new(identity(&ca, "default", "reviews"));
    for (bytes, protocol) in [
        (
            &b"GET / HTTP/1.1\r\nhost: reviews\r\n\r\n"[..],
            Protocol::Http1,
        ),
        (&b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..], Protocol::Http2),
    ] {
        let (mut c, s) = tcp_pair().await;
        c.write_all(bytes).await.unwrap();
        let err = acceptor.accept(s, MtlsMode::Strict).await.unwrap_err();
        assert!(matches!(err, TlsError::PlaintextOnStrictPort(p) if p == protocol));
        if protocol == Protocol::Http1 {
            assert_eq!(
                err.to_string(),
                "plaintext HTTP/1.x connection refused: the port requires mutual TLS \
                 (PeerAuthentication STRICT)"
            );
        }
    }
}

#[tokio::test]
async fn disable_serves_plaintext_without_reading_ahead() {
    let ca = ca("cluster.local");
    let acceptor = TlsAcceptor::new(identity(&ca, "default", "reviews"));
    let (mut c, s) = tcp_pair().await;
    // Accepted before the client sends anything: nothing is sniffed.
    let mut accepted = acceptor.accept(s, MtlsMode::Disable).await.unwrap();
    assert!(accepted.peer.is_none());
    assert_eq!(accepted.security_policy(), "none");
    c.write_all(b"hello").await.unwrap();
    let mut buf = [0u8; 5];
    accepted.stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"hello");
}

#[tokio::test(start_paused = true)]
async fn silent_client_times_out() {
    let ca = ca("cluster.local");
    let acceptor = TlsAcceptor::new(identity(&ca, "default", "reviews"))
        .handshake_timeout(Duration::from_secs(3));
    let (_c, s) = tcp_pair().await;
    let err = acceptor.accept(s, MtlsMode::Permissive).await.unwrap_err();
    assert!(matches!(err, TlsError::Timeout(d) if d == Duration::from_secs(3)));
    assert_eq!(err.to_string(), "TLS handshake did not complete within 3s");
}
