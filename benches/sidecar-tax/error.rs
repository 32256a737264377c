//! What can stop the benchmark: what can stop an arm ([`E2eError`], shared with the in-process
//! benchmarks), a child process, or the report.

use mesh_benches::e2e::E2eError;

/// A benchmark failure: an arm's setup or call, a child process, or the report.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// An arm's setup or call: I/O, the dev CA, identities, TLS and Istio configs, channels,
    /// the metrics recorder.
    #[error(transparent)]
    Arm(#[from] E2eError),
    /// A child process that did not start as expected.
    #[error("{0}")]
    Child(String),
    /// Writing the JSON report.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

/// `?` on the errors an arm's setup meets, through [`E2eError`]'s own conversions.
macro_rules! through_e2e {
    ($($error:ty),* $(,)?) => {
        $(impl From<$error> for BenchError {
            fn from(e: $error) -> Self {
                Self::Arm(E2eError::from(e))
            }
        })*
    };
}

through_e2e!(
    std::io::Error,
    mesh_core::identity::CaError,
    mesh_core::identity::CredentialsError,
    mesh_core::identity::TlsConfigError,
    tonic::transport::Error,
    metrics_exporter_prometheus::BuildError,
);

impl BenchError {
    /// An Istio config, mesh or identity that did not load.
    pub fn config<E: std::fmt::Display>(e: E) -> Self {
        Self::Arm(E2eError::Config(e.to_string()))
    }
}
