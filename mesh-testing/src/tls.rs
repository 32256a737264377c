//! Workload identities minted at test time, and tonic channels that present them.

use std::net::SocketAddr;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use mesh_core::identity::{CertificateAuthority, ExpectedIdentities, TlsIdentity};
use mesh_tower::tls::TlsConnector;
use rustls_pki_types::{ServerName, UnixTime};
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint};

/// The SNI (and authority) [`channel`] sends: the `reviews` service of the Istio samples.
pub const REVIEWS_HOST: &str = "reviews.default.svc.cluster.local";

/// The identity of `ns/sa`, issued by `ca` for an hour.
pub fn identity(ca: &CertificateAuthority, ns: &str, sa: &str) -> TlsIdentity {
    let issued = ca.issue(ns, sa, Duration::from_secs(3600)).unwrap();
    TlsIdentity::new(issued.credentials(UnixTime::now()).unwrap()).unwrap()
}

/// A tonic channel to `addr` over mutual TLS as `ns/sa`, accepting any server of the trust
/// domain.
pub async fn channel(ca: &CertificateAuthority, addr: SocketAddr, ns: &str, sa: &str) -> Channel {
    try_channel(identity(ca, ns, sa), addr, REVIEWS_HOST)
        .await
        .unwrap()
}

/// A tonic channel to `addr` over mutual TLS presenting `identity`, sending `host` as SNI and
/// authority and accepting any server of the trust domain; the error when the handshake fails.
pub async fn try_channel(
    identity: TlsIdentity,
    addr: SocketAddr,
    host: &'static str,
) -> Result<Channel, tonic::transport::Error> {
    let connector = TlsConnector::new(identity);
    let name = ServerName::try_from(host).unwrap();
    Endpoint::from_shared(format!("http://{host}"))
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_| {
            let (connector, name) = (connector.clone(), name.clone());
            async move {
                let tcp = TcpStream::connect(addr).await?;
                let tls = connector
                    .connect(tcp, name, &ExpectedIdentities::any_in_trust_domain())
                    .await
                    .map_err(std::io::Error::other)?;
                Ok::<_, std::io::Error>(TokioIo::new(tls.stream))
            }
        }))
        .await
}
