//! Watching config files and reloading them.
//!
//! Directories are watched recursively and single files through their parent directory, because
//! editors save by writing a new file and renaming it over the old one, and Kubernetes ConfigMap
//! volumes swap a `..data` symlink: a watch on the file itself would be left on a dead inode.
//! Every change is debounced, then the whole config is rebuilt on a blocking thread and applied
//! only if it is valid and different.
//!
//! The debounce waits for the files to be quiet for the debounce interval, but never longer than
//! [`MAX_DEBOUNCE_FACTOR`] intervals after the first change of a burst (the "max wait" of file
//! watchers' debouncers, e.g. `notify-debouncer-full` emitting per timeout, or lodash's
//! `maxWait`): a file rewritten more often than the interval is still reloaded, at most that
//! late.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::{mpsc, oneshot};

use super::{Mesh, MeshError, Shared};
use crate::BuildContext;
use crate::config::ConfigError;
use crate::model::Snapshot;

/// A burst of changes delays a reload by at most this many debounce intervals.
pub(crate) const MAX_DEBOUNCE_FACTOR: u32 = 10;

type LoadFn = dyn Fn(&[PathBuf], &BuildContext) -> Result<Snapshot, ConfigError> + Send + Sync;

/// Turns config paths into a snapshot.
#[derive(Clone)]
pub(crate) struct ConfigLoader(Arc<LoadFn>);

impl ConfigLoader {
    pub(crate) fn istio() -> Self {
        Self(Arc::new(crate::istio::load_paths::<PathBuf>))
    }

    #[cfg(test)]
    pub(crate) fn from_fn(
        f: impl Fn(&[PathBuf], &BuildContext) -> Result<Snapshot, ConfigError> + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(f))
    }

    pub(crate) fn load(
        &self,
        paths: &[PathBuf],
        ctx: &BuildContext,
    ) -> Result<Snapshot, ConfigError> {
        (self.0)(paths, ctx)
    }
}

impl fmt::Debug for ConfigLoader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConfigLoader")
    }
}

/// A started file watch, not yet attached to a mesh.
pub(super) struct FileSource {
    paths: Vec<PathBuf>,
    debounce: Duration,
    loader: ConfigLoader,
    watcher: notify::RecommendedWatcher,
    events: mpsc::UnboundedReceiver<notify::Result<notify::Event>>,
}

impl FileSource {
    pub(super) fn new(
        paths: Vec<PathBuf>,
        debounce: Duration,
        loader: ConfigLoader,
    ) -> Result<Self, MeshError> {
        let (tx, events) = mpsc::unbounded_channel();
        let mut watcher = notify::recommended_watcher(move |event| {
            // The receiver is gone only when the worker stopped; nothing to do then.
            let _ = tx.send(event);
        })
        .map_err(|source| MeshError::Watch {
            path: PathBuf::new(),
            source,
        })?;
        for path in &paths {
            let (target, mode) = watch_target(path);
            watcher
                .watch(&target, mode)
                .map_err(|source| MeshError::Watch {
                    path: path.clone(),
                    source,
                })?;
        }
        Ok(Self {
            paths,
            debounce,
            loader,
            watcher,
            events,
        })
    }

    /// Runs the reload loop until the mesh is dropped (`stop` resolves).
    pub(super) fn spawn(self, mesh: Weak<Shared>, stop: oneshot::Receiver<()>) {
        tokio::spawn(self.run(mesh, stop));
    }

    async fn run(mut self, mesh: Weak<Shared>, mut stop: oneshot::Receiver<()>) {
        loop {
            tokio::select! {
                _ = &mut stop => return,
                event = self.events.recv() => match event {
                    None => return,
                    Some(event) if !is_relevant(&event) => continue,
                    Some(_) => {}
                },
            }
            let max_delay = self.debounce.saturating_mul(MAX_DEBOUNCE_FACTOR);
            tokio::select! {
                _ = &mut stop => return,
                open = settle(&mut self.events, self.debounce, max_delay) => if !open { return },
            }
            let Some(shared) = mesh.upgrade() else { return };
            let mesh = Mesh { shared };
            self.reload(&mesh).await;
        }
    }

    async fn reload(&self, mesh: &Mesh) {
        let (loader, paths, ctx) = (
            self.loader.clone(),
            self.paths.clone(),
            mesh.context().clone(),
        );
        let result = tokio::task::spawn_blocking(move || loader.load(&paths, &ctx))
            .await
            .unwrap_or_else(|e| {
                Err(ConfigError::internal(format!(
                    "config loader panicked: {e}"
                )))
            });
        match result {
            Ok(snapshot) => {
                mesh.apply(snapshot);
            }
            Err(error) => mesh.reject(error),
        }
        // Keep the watcher alive as long as the loop runs.
        let _ = &self.watcher;
    }
}

/// Waits until no event arrived for `quiet`, or until `max_delay` has passed since the call,
/// whichever comes first. Returns false if the event channel closed.
pub(crate) async fn settle<T>(
    events: &mut mpsc::UnboundedReceiver<T>,
    quiet: Duration,
    max_delay: Duration,
) -> bool {
    let deadline = tokio::time::sleep(max_delay);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => return true,
            _ = tokio::time::sleep(quiet) => return true,
            event = events.recv() => if event.is_none() { return false },
        }
    }
}

fn watch_target(path: &Path) -> (PathBuf, RecursiveMode) {
    if path.is_dir() {
        (path.to_path_buf(), RecursiveMode::Recursive)
    } else {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        (parent, RecursiveMode::NonRecursive)
    }
}

/// Reads and opens are not changes; everything else (create, write, rename, remove, metadata,
/// and close-after-write) may be.
fn is_relevant(event: &notify::Result<notify::Event>) -> bool {
    match event {
        Ok(event) => match event.kind {
            EventKind::Access(notify::event::AccessKind::Close(
                notify::event::AccessMode::Write,
            )) => true,
            EventKind::Access(_) => false,
            _ => true,
        },
        // A watch error (e.g. queue overflow) means events were lost: reload to be safe.
        Err(_) => true,
    }
}
