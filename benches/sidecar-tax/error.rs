//! What can stop the benchmark.

/// A benchmark failure: setup, a child process, or a config.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// I/O (sockets, files, child processes).
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
    /// An Istio config that did not load.
    #[error("config: {0}")]
    Config(String),
    /// A gRPC channel that could not be set up.
    #[error("channel: {0}")]
    Channel(#[from] tonic::transport::Error),
    /// The metrics recorder.
    #[error("metrics recorder: {0}")]
    Recorder(#[from] metrics_exporter_prometheus::BuildError),
    /// A child process that did not start as expected.
    #[error("{0}")]
    Child(String),
    /// A plain-HTTP arm's client or server.
    #[error("http arm: {0}")]
    Http(#[from] mesh_benches::e2e::E2eError),
    /// Writing the JSON report.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}
