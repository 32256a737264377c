//! What the admin config dump shows about config loading.

use std::time::SystemTime;

use serde::Serialize;

use crate::config::{ConfigError, Diagnostic};
use crate::model::{Snapshot, SnapshotSource};

/// A refused config.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rejection {
    /// When it was refused.
    pub at: SystemTime,
    /// Every error and warning found.
    pub diagnostics: Vec<Diagnostic>,
}

/// Config loading status.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConfigStatus {
    /// Version of the snapshot serving now.
    pub version: String,
    /// Its source.
    pub source: SnapshotSource,
    /// When it was applied.
    pub applied_at: SystemTime,
    /// Snapshots applied since start (the first included).
    pub applied_total: u64,
    /// Configs refused since start.
    pub rejected_total: u64,
    /// The most recent refusal, kept until a good config is applied after it.
    pub last_rejection: Option<Rejection>,
}

impl ConfigStatus {
    pub(super) fn new(snapshot: &Snapshot) -> Self {
        Self {
            version: snapshot.version.clone(),
            source: snapshot.source.clone(),
            applied_at: SystemTime::now(),
            applied_total: 1,
            rejected_total: 0,
            last_rejection: None,
        }
    }

    pub(super) fn applied(&mut self, snapshot: &Snapshot) {
        self.version = snapshot.version.clone();
        self.source = snapshot.source.clone();
        self.applied_at = SystemTime::now();
        self.applied_total += 1;
        self.last_rejection = None;
    }

    pub(super) fn rejected(&mut self, error: ConfigError) {
        self.rejected_total += 1;
        self.last_rejection = Some(Rejection {
            at: SystemTime::now(),
            diagnostics: error.diagnostics,
        });
    }
}
