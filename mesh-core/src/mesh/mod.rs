//! The `Mesh` handle: the live config of one workload, swapped whole and read without locks.
//!
//! One writer (a file watcher, an xDS client, or code calling [`Mesh::apply`]) builds and
//! validates a complete [`Snapshot`] off the request path, then swaps it in with one atomic store.
//! Readers take one atomic load per request; requests in flight keep the snapshot they started
//! with. A rejected config never replaces a good one: the rejection is logged, counted, and kept
//! for the admin config dump ([`Mesh::status`]).

mod builder;
mod identity_check;
mod partial;
mod status;
mod watch;

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::{oneshot, watch as tokio_watch};

pub use builder::{MeshBuilder, MeshError};
pub use identity_check::{IdentityMismatch, identity_mismatch};
pub use partial::load_valid_files;
pub use status::{ConfigStatus, Rejection};

use crate::BuildContext;
use crate::config::ConfigError;
use crate::identity::IdentitySource;
use crate::model::Snapshot;

/// A handle to the mesh config of this process. Cheap to clone; background work (file watching)
/// stops when the last handle is dropped.
///
/// ```
/// # async fn demo() -> Result<(), mesh_core::MeshError> {
/// use mesh_core::{Mesh, Workload};
/// let mesh = Mesh::builder()
///     .workload(Workload::new("default", "frontend").labels([("app", "frontend")]))
///     .build()
///     .await?;
/// assert_eq!(mesh.snapshot().version, "");
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Mesh {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    snapshot: ArcSwap<Snapshot>,
    changes: tokio_watch::Sender<Arc<Snapshot>>,
    status: tokio_watch::Sender<ConfigStatus>,
    context: BuildContext,
    identity: Option<IdentitySource>,
    /// Dropped with the last handle, which tells the background workers to stop.
    _stop: Vec<oneshot::Sender<()>>,
}

impl Mesh {
    /// Starts building a mesh handle.
    pub fn builder() -> MeshBuilder {
        MeshBuilder::default()
    }

    /// A mesh handle serving a fixed snapshot (tests, or a source that pushes with
    /// [`Mesh::apply`]).
    pub fn from_snapshot(context: BuildContext, snapshot: Snapshot) -> Self {
        Self::new(context, snapshot, None, Vec::new())
    }

    fn new(
        context: BuildContext,
        snapshot: Snapshot,
        identity: Option<IdentitySource>,
        stop: Vec<oneshot::Sender<()>>,
    ) -> Self {
        let snapshot = Arc::new(snapshot);
        report_new_warnings(None, &snapshot);
        let (changes, _) = tokio_watch::channel(snapshot.clone());
        let (status, _) = tokio_watch::channel(ConfigStatus::new(&snapshot));
        Self {
            shared: Arc::new(Shared {
                snapshot: ArcSwap::new(snapshot),
                changes,
                status,
                context,
                identity,
                _stop: stop,
            }),
        }
    }

    /// The current snapshot: one atomic load, no lock.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.shared.snapshot.load_full()
    }

    /// A receiver that sees every snapshot swapped in, so code can await "a new config is live".
    pub fn subscribe(&self) -> tokio_watch::Receiver<Arc<Snapshot>> {
        self.shared.changes.subscribe()
    }

    /// The point of view snapshots are built from.
    pub fn context(&self) -> &BuildContext {
        &self.shared.context
    }

    /// The workload identity (certificate, key, roots) this process presents and verifies peers
    /// with, if one was configured ([`MeshBuilder::identity_files`]). Servers and clients read
    /// it once per connection, so rotations apply to new connections. `None` means no mutual
    /// TLS: a server refuses connections on STRICT ports rather than serve them in plaintext.
    pub fn identity(&self) -> Option<&IdentitySource> {
        self.shared.identity.as_ref()
    }

    /// The workload's namespace and service account ([`BuildContext::workload`], `default/default`
    /// when none was declared) against its current certificate: `Some` when the certificate
    /// names another (see [`MeshBuilder::build`]). Follows rotations.
    pub fn identity_mismatch(&self) -> Option<IdentityMismatch> {
        let identity = self.identity()?.current();
        identity_mismatch(&self.context().workload, identity.credentials().spiffe_id())
    }

    /// The config status: current version, reload counts and the last rejection.
    pub fn status(&self) -> ConfigStatus {
        self.shared.status.borrow().clone()
    }

    /// A receiver that sees every status change: applied and refused configs alike.
    pub fn subscribe_status(&self) -> tokio_watch::Receiver<ConfigStatus> {
        self.shared.status.subscribe()
    }

    /// Swaps in a new, already validated snapshot. A snapshot with the version of the current
    /// one is not swapped (nothing changed), but it does clear a rejection recorded since, as the
    /// config is good again. Returns whether it was swapped in.
    pub fn apply(&self, snapshot: Snapshot) -> bool {
        if snapshot.version == self.shared.snapshot.load().version {
            self.shared
                .status
                .send_if_modified(|s| s.last_rejection.take().is_some());
            return false;
        }
        let snapshot = Arc::new(snapshot);
        let previous = self.shared.snapshot.swap(snapshot.clone());
        report_new_warnings(Some(&previous), &snapshot);
        self.shared.status.send_modify(|s| s.applied(&snapshot));
        metrics::counter!("mesh_config_reloads_total", "result" => "applied").increment(1);
        tracing::info!(version = %snapshot.version, "config applied");
        self.shared.changes.send_replace(snapshot);
        true
    }

    /// Records a refused config: the current snapshot keeps serving.
    pub fn reject(&self, error: ConfigError) {
        for d in error.errors() {
            tracing::warn!(error = %d, "config refused; the last good config keeps serving");
        }
        metrics::counter!("mesh_config_reloads_total", "result" => "rejected").increment(1);
        self.shared.status.send_modify(|s| s.rejected(error));
    }
}

/// Logs (and counts) each warning of `next` that `previous` did not have, so a field mesh reads
/// but does not implement is reported once, not at every reload.
fn report_new_warnings(previous: Option<&Snapshot>, next: &Snapshot) {
    let key =
        |d: &crate::config::Diagnostic| (d.resource.clone(), d.field.clone(), d.message.clone());
    let seen: std::collections::HashSet<_> = previous
        .map(|p| p.warnings.iter().map(key).collect())
        .unwrap_or_default();
    for warning in next.warnings.iter().filter(|w| !seen.contains(&key(w))) {
        tracing::warn!(warning = %warning, "config warning");
        metrics::counter!("mesh_config_warnings_total").increment(1);
    }
}

#[cfg(test)]
mod tests;
