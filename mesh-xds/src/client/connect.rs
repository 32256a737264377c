//! Opening the channel to the control plane: TCP, or a Unix socket (Istio's agent proxies
//! istiod on `unix:///etc/istio/proxy/XDS`).

use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};

use crate::bootstrap::XdsTarget;

pub(crate) async fn connect(
    target: &XdsTarget,
    timeout: Duration,
) -> Result<Channel, tonic::transport::Error> {
    match target {
        XdsTarget::Tcp(host_port) => {
            Endpoint::from_shared(format!("http://{host_port}"))?
                .connect_timeout(timeout)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(30))
                .connect()
                .await
        }
        XdsTarget::Unix(path) => {
            let path = path.clone();
            Endpoint::from_static("http://localhost")
                .connect_timeout(timeout)
                .connect_with_connector(tower::service_fn(move |_: http::Uri| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(
                            tokio::net::UnixStream::connect(path).await?,
                        ))
                    }
                }))
                .await
        }
    }
}
