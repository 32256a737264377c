//! `/config_dump`: the config serving now, where it came from, and the last refused config
//! with its errors, plus whatever the identity side reports (certificate expiries).

use std::sync::Arc;

use mesh_core::Mesh;
use serde_json::{Value, json};

/// Adds an `identity` section to `/config_dump`: implemented by the identity side (or any
/// closure returning JSON), e.g. the certificate chain's subjects and expiry times.
pub trait IdentityDump: Send + Sync + 'static {
    /// The section's content.
    fn dump(&self) -> Value;
}

impl<F> IdentityDump for F
where
    F: Fn() -> Value + Send + Sync + 'static,
{
    fn dump(&self) -> Value {
        self()
    }
}

/// The dump as JSON: `version`, `source`, `status` (applied/refused counts and the last
/// rejection with every diagnostic), `workload`, `snapshot`, and `identity`: the section given,
/// else the mesh's own certificate (SPIFFE id, validity, roots), `null` without mutual TLS.
pub fn config_dump(mesh: &Mesh, identity: Option<&Arc<dyn IdentityDump>>) -> Value {
    let status = mesh.status();
    let snapshot = mesh.snapshot();
    json!({
        "version": status.version,
        "source": status.source,
        "status": status,
        "workload": mesh.context(),
        "snapshot": &*snapshot,
        "identity": identity.map_or_else(|| mesh_identity(mesh), |i| i.dump()),
    })
}

/// The workload's identity as the mesh holds it now.
fn mesh_identity(mesh: &Mesh) -> Value {
    let Some(source) = mesh.identity() else {
        return Value::Null;
    };
    let current = source.current();
    let creds = current.credentials();
    json!({
        "spiffe_id": creds.spiffe_id().to_string(),
        "not_before": creds.leaf_not_before().to_string(),
        "not_after": creds.leaf_not_after().to_string(),
        "not_after_unix": creds.leaf_not_after().unix_seconds(),
        "roots": creds.roots().len(),
    })
}
