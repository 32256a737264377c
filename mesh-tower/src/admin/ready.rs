//! The readiness gate behind `/healthz/ready`: ready only once every part has said so.
//!
//! A workload that answers before its config and identity are loaded fails its first calls
//! (no routes, no certificate); like Istio's `/healthz/ready` on the sidecar, the probe stays
//! 503 until both are in. A deployment without mutual TLS marks the identity part ready at
//! start.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

/// A part the gate waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadyPart {
    /// A config snapshot has been loaded.
    Config,
    /// The workload identity (certificate and key) has been loaded.
    Identity,
}

impl ReadyPart {
    const ALL: [ReadyPart; 2] = [ReadyPart::Config, ReadyPart::Identity];

    fn index(self) -> usize {
        match self {
            ReadyPart::Config => 0,
            ReadyPart::Identity => 1,
        }
    }
}

impl fmt::Display for ReadyPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReadyPart::Config => "config",
            ReadyPart::Identity => "identity",
        })
    }
}

/// The readiness gate. Cheap to clone; clones share the state.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    parts: Arc<[AtomicBool; 2]>,
}

impl Readiness {
    /// A gate with no part ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks `part` ready (or not ready again, e.g. when a certificate expired).
    pub fn set_ready(&self, part: ReadyPart, ready: bool) {
        self.parts[part.index()].store(ready, Ordering::Release);
    }

    /// Whether every part is ready.
    pub fn is_ready(&self) -> bool {
        self.missing().is_empty()
    }

    /// The parts not ready yet.
    pub fn missing(&self) -> Vec<ReadyPart> {
        ReadyPart::ALL
            .into_iter()
            .filter(|p| !self.parts[p.index()].load(Ordering::Acquire))
            .collect()
    }
}

/// The parts `mesh` does not have yet: a loaded config (a snapshot from some source), and an
/// unexpired identity when it was given one.
pub(super) fn missing_from_mesh(mesh: &mesh_core::Mesh) -> Vec<ReadyPart> {
    let mut missing = Vec::new();
    if mesh.snapshot().source == mesh_core::model::SnapshotSource::Empty {
        missing.push(ReadyPart::Config);
    }
    if let Some(identity) = mesh.identity() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        if identity
            .current()
            .credentials()
            .leaf_not_after()
            .unix_seconds()
            <= now
        {
            missing.push(ReadyPart::Identity);
        }
    }
    missing
}
