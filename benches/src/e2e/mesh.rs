//! The mesh side of arm B: the workloads' identities from a fresh CA, the client's `Mesh` and
//! `MeshClient`, and the greeter's `Mesh`, from the configs in [`super::config`].

use std::sync::Arc;
use std::time::Duration;

use mesh_core::identity::{CertificateAuthority, SpiffeId, SpiffeIdError, TlsIdentity};
use mesh_core::{BuildContext, Mesh, Workload, istio};
use mesh_tower::client::MeshClient;
use mesh_tower::telemetry::{AccessLogMode, Telemetry};
use rustls_pki_types::UnixTime;

use super::E2eError;
use super::config::{CLIENT_SA, GREETER_SA, NAMESPACE, TRUST_DOMAIN};

/// Identities last this long (a run is far shorter).
const CERT_TTL: Duration = Duration::from_secs(24 * 3600);

/// The two workloads' identities, issued by one CA.
#[derive(Clone)]
pub struct Identities {
    /// `spiffe://cluster.local/ns/bench/sa/client`.
    pub client: Arc<TlsIdentity>,
    /// `spiffe://cluster.local/ns/bench/sa/greeter`.
    pub greeter: Arc<TlsIdentity>,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identities").finish_non_exhaustive()
    }
}

impl Identities {
    /// A fresh CA for [`TRUST_DOMAIN`] and the client's and greeter's identities from it.
    pub fn generate() -> Result<Self, E2eError> {
        let ca = CertificateAuthority::generate(TRUST_DOMAIN)?;
        let issue = |sa: &str| -> Result<Arc<TlsIdentity>, E2eError> {
            let credentials = ca
                .issue(NAMESPACE, sa, CERT_TTL)?
                .credentials(UnixTime::now())?;
            Ok(Arc::new(TlsIdentity::new(credentials)?))
        };
        Ok(Self {
            client: issue(CLIENT_SA)?,
            greeter: issue(GREETER_SA)?,
        })
    }
}

/// The greeter's SPIFFE ID, what the bare clients expect of the server.
pub fn greeter_id() -> Result<SpiffeId, E2eError> {
    format!("spiffe://{TRUST_DOMAIN}/ns/{NAMESPACE}/sa/{GREETER_SA}")
        .parse()
        .map_err(|e: SpiffeIdError| E2eError::Config(e.to_string()))
}

/// The client's mesh from `yaml` (a [`client_yaml`](super::client_yaml) or
/// [`client_http_yaml`](super::client_http_yaml)), as workload `bench/client`.
pub fn client_mesh(yaml: &str) -> Result<Mesh, E2eError> {
    let ctx = BuildContext {
        workload: Workload::new(NAMESPACE, CLIENT_SA),
        ..Default::default()
    };
    let snapshot =
        istio::load_str("client.yaml", yaml, &ctx).map_err(|e| E2eError::Config(e.to_string()))?;
    Ok(Mesh::from_snapshot(ctx, snapshot))
}

/// A `MeshClient` over `mesh` as `identity`, access log off (Istio's default), seeded.
pub fn mesh_client(mesh: &Mesh, identity: &Arc<TlsIdentity>, seed: u64) -> MeshClient {
    MeshClient::builder(mesh.clone())
        .identity(identity.clone())
        .telemetry(Telemetry::new().access_log(AccessLogMode::Off))
        .seed(seed)
        .build()
}

/// The greeter's mesh: workload `bench/greeter` with `identity`, `yaml` (a
/// [`SERVER_YAML`](super::SERVER_YAML) or [`SERVER_HTTP_YAML`](super::SERVER_HTTP_YAML))
/// applied.
pub async fn server_mesh(identity: &Arc<TlsIdentity>, yaml: &str) -> Result<Mesh, E2eError> {
    let mesh = Mesh::builder()
        .workload(Workload::new(NAMESPACE, GREETER_SA))
        .identity(identity.clone())
        .watch(false)
        .build()
        .await
        .map_err(|e| E2eError::Config(e.to_string()))?;
    let snapshot = istio::load_str("greeter.yaml", yaml, mesh.context())
        .map_err(|e| E2eError::Config(e.to_string()))?;
    mesh.apply(snapshot);
    Ok(mesh)
}
