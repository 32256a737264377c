//! Opening the channel to the control plane: TCP, over TLS when the server's entry asks for it
//! ([`XdsTls`]), or a Unix socket (Istio's agent proxies istiod on `unix:///etc/istio/proxy/XDS`).

use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tonic::transport::{Channel, Endpoint};

use super::tls::XdsTls;
use crate::bootstrap::XdsTarget;

/// Why the channel could not be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    /// TLS could not be set up (unreadable or invalid files).
    #[error("{0}")]
    Tls(String),
    /// The connection or its handshake failed (with every cause, e.g. the certificate the
    /// server showed and why it was refused).
    #[error("{}", chain(.0))]
    Transport(#[from] tonic::transport::Error),
}

/// An error and its sources, `: `-separated.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

pub(crate) async fn connect(
    target: &XdsTarget,
    tls: Option<&XdsTls>,
    timeout: Duration,
) -> Result<Channel, ConnectError> {
    match (target, tls) {
        (XdsTarget::Tcp(host_port), None) => Ok(endpoint(host_port, timeout)?
            .tcp_nodelay(true)
            .connect()
            .await?),
        (XdsTarget::Tcp(host_port), Some(tls)) => {
            let connector =
                tokio_rustls::TlsConnector::from(tls.client_config().map_err(ConnectError::Tls)?);
            let sni = ServerName::try_from(tls.sni.clone())
                .map_err(|e| ConnectError::Tls(format!("SNI {:?}: {e}", tls.sni)))?;
            let address = host_port.clone();
            Ok(endpoint(host_port, timeout)?
                .connect_with_connector(tower::service_fn(move |_: http::Uri| {
                    let (connector, address, sni) =
                        (connector.clone(), address.clone(), sni.clone());
                    async move {
                        let tcp = tokio::net::TcpStream::connect(&address).await?;
                        tcp.set_nodelay(true)?;
                        let tls = connector.connect(sni, tcp).await?;
                        Ok::<_, std::io::Error>(TokioIo::new(tls))
                    }
                }))
                .await?)
        }
        (XdsTarget::Unix(_), Some(_)) => Err(ConnectError::Tls(
            "TLS over a Unix socket is not supported (the local agent's socket is plaintext)"
                .into(),
        )),
        (XdsTarget::Unix(path), None) => {
            let path = path.clone();
            Ok(Endpoint::from_static("http://localhost")
                .connect_timeout(timeout)
                .connect_with_connector(tower::service_fn(move |_: http::Uri| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(
                            tokio::net::UnixStream::connect(path).await?,
                        ))
                    }
                }))
                .await?)
        }
    }
}

fn endpoint(host_port: &str, timeout: Duration) -> Result<Endpoint, tonic::transport::Error> {
    Ok(Endpoint::from_shared(format!("http://{host_port}"))?
        .connect_timeout(timeout)
        .http2_keep_alive_interval(Duration::from_secs(30)))
}
