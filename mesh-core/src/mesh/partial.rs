//! Starting from the valid part of a config.
//!
//! A running mesh keeps serving its last good config through a bad edit. A process that starts
//! while a file is bad has no last good config; rather than refuse to start (a control plane
//! down because of one file), it can start with the files that are valid and report the others,
//! exactly as a running one reports a bad edit. Files are left out whole, since a document of a
//! file is often written together with its neighbours (a DestinationRule and the
//! VirtualService using its subsets); a file that was valid only with a left-out one is left out
//! in the next round, until the rest loads.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::watch::ConfigLoader;
use crate::BuildContext;
use crate::config::ConfigError;
use crate::model::Snapshot;

/// Loads `paths` (Istio YAML files and directories) for `ctx`; when some files are invalid,
/// loads the others. Returns the snapshot and, if files were left out, the error naming them
/// (every diagnostic of every round). Fails only when no subset of the files loads, e.g. when
/// an error names no file.
pub fn load_valid_files<P: AsRef<Path>>(
    paths: &[P],
    ctx: &BuildContext,
) -> Result<(Snapshot, Option<ConfigError>), ConfigError> {
    let paths: Vec<PathBuf> = paths.iter().map(|p| p.as_ref().to_owned()).collect();
    load_valid(&ConfigLoader::istio(), &paths, ctx)
}

pub(crate) fn load_valid(
    loader: &ConfigLoader,
    paths: &[PathBuf],
    ctx: &BuildContext,
) -> Result<(Snapshot, Option<ConfigError>), ConfigError> {
    let mut error = match loader.load(paths, ctx) {
        Ok(snapshot) => return Ok((snapshot, None)),
        Err(error) => error,
    };
    let mut files = crate::istio::collect_files(paths)?;
    let mut refused = ConfigError {
        diagnostics: Vec::new(),
    };
    loop {
        let bad: BTreeSet<PathBuf> = error.errors().filter_map(|d| d.file.clone()).collect();
        let before = files.len();
        files.retain(|f| !bad.contains(f));
        refused.diagnostics.append(&mut error.diagnostics);
        if files.len() == before {
            // No file to leave out (an error that names none): nothing valid to start from.
            return Err(refused);
        }
        match loader.load(&files, ctx) {
            Ok(snapshot) => return Ok((snapshot, Some(refused))),
            Err(next) => error = next,
        }
    }
}
