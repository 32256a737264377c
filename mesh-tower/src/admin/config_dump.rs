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
/// rejection with every diagnostic), `workload`, `snapshot`, and `identity` when provided.
pub fn config_dump(mesh: &Mesh, identity: Option<&Arc<dyn IdentityDump>>) -> Value {
    let status = mesh.status();
    let snapshot = mesh.snapshot();
    json!({
        "version": status.version,
        "source": status.source,
        "status": status,
        "workload": mesh.context(),
        "snapshot": &*snapshot,
        "identity": identity.map(|i| i.dump()),
    })
}
