//! Workload identities minted at test time, and tonic channels that present them.

use std::net::SocketAddr;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use mesh_core::identity::{CertificateAuthority, ExpectedIdentities, TlsIdentity};
use mesh_tower::tls::TlsConnector;
use rustls_pki_types::{ServerName, UnixTime};
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint};

/// The identity of `ns/sa`, issued by `ca` for an hour.
pub fn identity(ca: &CertificateAuthority, ns: &str, sa: &str) -> TlsIdentity {
    let issued = ca.issue(ns, sa, Duration::from_secs(3600)).unwrap();
    TlsIdentity::new(issued.credentials(UnixTime::now()).unwrap()).unwrap()
}

/// A tonic channel to `addr` over mutual TLS as `ns/sa`, accepting any server of the trust
/// domain.
pub async fn channel(ca: &CertificateAuthority, addr: SocketAddr, ns: &str, sa: &str) -> Channel {
    let connector = TlsConnector::new(identity(ca, ns, sa));
    Endpoint::from_static("http://reviews.default.svc.cluster.local")
        .connect_with_connector(tower::service_fn(move |_| {
            let connector = connector.clone();
            async move {
                let tcp = TcpStream::connect(addr).await?;
                let name = ServerName::try_from("reviews.default.svc.cluster.local").unwrap();
                let tls = connector
                    .connect(tcp, name, &ExpectedIdentities::any_in_trust_domain())
                    .await
                    .map_err(std::io::Error::other)?;
                Ok::<_, std::io::Error>(TokioIo::new(tls.stream))
            }
        }))
        .await
        .unwrap()
}
