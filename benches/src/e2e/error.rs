//! What can stop an end-to-end arm from being set up or called.

/// A setup or call failure of an end-to-end arm.
#[derive(Debug, thiserror::Error)]
pub enum E2eError {
    /// I/O (sockets, threads).
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The dev CA.
    #[error("CA: {0}")]
    Ca(#[from] mesh_core::identity::CaError),
    /// Loading a workload identity.
    #[error("credentials: {0}")]
    Credentials(#[from] mesh_core::identity::CredentialsError),
    /// Building a rustls config.
    #[error("TLS config: {0}")]
    Tls(#[from] mesh_core::identity::TlsConfigError),
    /// An Istio config or mesh that did not load.
    #[error("config: {0}")]
    Config(String),
    /// A tonic channel that could not be set up.
    #[error("channel: {0}")]
    Channel(#[from] tonic::transport::Error),
    /// An HTTP/2 handshake or exchange.
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    /// The metrics recorder.
    #[error("metrics recorder: {0}")]
    Recorder(#[from] metrics_exporter_prometheus::BuildError),
    /// A call that did not answer as expected.
    #[error("call: {0}")]
    Call(String),
}
