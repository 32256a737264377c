//! Certificate rotation: watch the PEM files, reload, validate, swap.
//!
//! Istio rotates workload certificates every few hours (24 h lifetime by default) and a mesh
//! library must follow without a restart. [`IdentityWatcher`] is a cloneable handle over a
//! background task; the task stops when the last handle drops.
//!
//! - **Watch the parent directories, not the files.** Editors save by writing a new file and
//!   renaming it over the old one, and Kubernetes updates a mounted Secret by swapping the
//!   `..data` symlink: in both cases the watched file's inode is gone and a watch on it would go
//!   silent. A watch on the directory sees every such change.
//! - **Debounce.** The three files change one after another; reloading after each would see a new
//!   certificate with the old key. Events are gathered until the directory has been quiet for
//!   the debounce period, then the files are read once.
//! - **Read until stable.** The three files are read one after another; a swap landing between
//!   two reads would mix generations (a false refusal, or an old leaf with new roots). The files
//!   are read again until two reads agree.
//! - **Validate, then swap.** The new files are checked like the first ones ([`Credentials`]). A
//!   bad rotation is refused, logged (`warn`) and counted (`mesh_identity_rotation_errors_total`);
//!   the previous identity keeps serving. A good one replaces the [`TlsIdentity`] in an
//!   [`ArcSwap`] (readers never lock) and is announced on a `watch` channel. Connections already
//!   open keep the identity they were made with; new connections use the new one.
//! - **Expiry gauges.** See [`super::record_expiry`]: rustls does not check root expiry, so the
//!   gauges are how an operator sees it coming.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use rustls_pki_types::UnixTime;
use tokio::sync::{mpsc, oneshot, watch};

use super::credentials::{Credentials, CredentialsError};
use super::files::IdentityFiles;
use super::metrics::{record_expiry, record_rotation, record_rotation_error};
use super::tls::{Clock, TlsConfigError, TlsIdentity, system_clock};

/// Default quiet period before reloading.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(100);

/// A burst of events delays a reload by at most this many debounce periods.
const MAX_DEBOUNCE_FACTOR: u32 = 20;

/// How many extra reads [`Task::read_stable`] makes before giving up until the next event.
const STABLE_READ_ATTEMPTS: usize = 4;

/// Why the watcher could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The initial identity is unusable; mesh does not serve without one.
    #[error("initial identity: {0}")]
    Credentials(#[from] CredentialsError),
    /// rustls configs could not be built from it.
    #[error("initial identity: {0}")]
    Config(#[from] TlsConfigError),
    /// The file watch could not be set up.
    #[error("cannot watch {}: {source}", path.display())]
    Notify {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: notify::Error,
    },
}

/// Why a rotation was refused.
#[derive(Debug, thiserror::Error)]
enum RotationError {
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error(transparent)]
    Config(#[from] TlsConfigError),
}

impl From<RotationError> for WatchError {
    fn from(e: RotationError) -> Self {
        match e {
            RotationError::Credentials(e) => Self::Credentials(e),
            RotationError::Config(e) => Self::Config(e),
        }
    }
}

/// What the watcher has done so far: for an admin page, and for tests to await a refusal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RotationStatus {
    /// Rotations accepted since start.
    pub accepted: u64,
    /// Rotations refused since start.
    pub refused: u64,
    /// Why the latest refusal happened, until a rotation is accepted.
    pub last_error: Option<String>,
}

/// Watches a workload's identity files and keeps a validated [`TlsIdentity`] current.
///
/// Cheap to clone; the background task stops when the last clone drops.
#[derive(Clone, Debug)]
pub struct IdentityWatcher {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    files: IdentityFiles,
    current: Arc<ArcSwap<TlsIdentity>>,
    changes: watch::Receiver<Arc<TlsIdentity>>,
    status: watch::Receiver<RotationStatus>,
    /// Dropped with the last handle, which stops the task.
    _stop: oneshot::Sender<()>,
}

/// Configures an [`IdentityWatcher`].
#[derive(Clone, Debug)]
pub struct IdentityWatcherBuilder {
    files: IdentityFiles,
    debounce: Duration,
    clock: Clock,
}

impl IdentityWatcherBuilder {
    /// Sets the quiet period before a reload (default 100 ms).
    pub fn debounce(mut self, debounce: Duration) -> Self {
        self.debounce = debounce;
        self
    }

    /// Sets the clock certificates are checked against (default: the system clock).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Loads the identity, fails if it is unusable, then starts watching. Needs a tokio runtime.
    pub async fn start(self) -> Result<IdentityWatcher, WatchError> {
        // Watch first, then read: a rotation landing in between is then seen as an event (and
        // deduplicated if the read already got it) rather than missed.
        let (event_tx, event_rx) = mpsc::unbounded_channel();
        let mut notify = notify::recommended_watcher(move |res: notify::Result<Event>| match res {
            Ok(event) if is_change(&event.kind) => {
                let _ = event_tx.send(());
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "identity file watch error"),
        })
        .map_err(|source| WatchError::Notify {
            path: self.files.cert_chain.clone(),
            source,
        })?;
        for dir in parent_dirs(&self.files) {
            notify
                .watch(&dir, RecursiveMode::NonRecursive)
                .map_err(|source| WatchError::Notify { path: dir, source })?;
        }
        let contents = read_all(&self.files).await?;
        let identity = Arc::new(build(&contents, &self.clock)?);
        record_expiry(identity.credentials());

        let current = Arc::new(ArcSwap::new(identity.clone()));
        let (changes_tx, changes) = watch::channel(identity);
        let (status_tx, status) = watch::channel(RotationStatus::default());
        let (stop, stop_rx) = oneshot::channel();
        let task = Task {
            files: self.files.clone(),
            clock: self.clock,
            debounce: self.debounce,
            current: current.clone(),
            changes: changes_tx,
            status: status_tx,
            last: contents,
            _notify: notify,
        };
        tokio::spawn(task.run(event_rx, stop_rx));
        Ok(IdentityWatcher {
            shared: Arc::new(Shared {
                files: self.files,
                current,
                changes,
                status,
                _stop: stop,
            }),
        })
    }
}

impl IdentityWatcher {
    /// A builder for watching `files`.
    pub fn builder(files: IdentityFiles) -> IdentityWatcherBuilder {
        IdentityWatcherBuilder {
            files,
            debounce: DEFAULT_DEBOUNCE,
            clock: system_clock(),
        }
    }

    /// Loads `files` and watches them with the defaults.
    pub async fn start(files: IdentityFiles) -> Result<Self, WatchError> {
        Self::builder(files).start().await
    }

    /// The identity in force now (one atomic load).
    pub fn current(&self) -> Arc<TlsIdentity> {
        self.shared.current.load_full()
    }

    /// A receiver that wakes on each accepted rotation (not on refused ones).
    pub fn subscribe(&self) -> watch::Receiver<Arc<TlsIdentity>> {
        let mut rx = self.shared.changes.clone();
        rx.mark_unchanged();
        rx
    }

    /// A receiver of the rotation counts and latest refusal, woken on every reload outcome.
    pub fn status(&self) -> watch::Receiver<RotationStatus> {
        let mut rx = self.shared.status.clone();
        rx.mark_unchanged();
        rx
    }

    /// The files watched.
    pub fn files(&self) -> &IdentityFiles {
        &self.shared.files
    }
}

type Contents = [Vec<u8>; 3];

struct Task {
    files: IdentityFiles,
    clock: Clock,
    debounce: Duration,
    current: Arc<ArcSwap<TlsIdentity>>,
    changes: watch::Sender<Arc<TlsIdentity>>,
    status: watch::Sender<RotationStatus>,
    /// The bytes of the identity in force, to skip reloads that change nothing.
    last: Contents,
    /// Kept alive for as long as the task runs.
    _notify: RecommendedWatcher,
}

impl Task {
    async fn run(
        mut self,
        mut events: mpsc::UnboundedReceiver<()>,
        mut stop: oneshot::Receiver<()>,
    ) {
        loop {
            tokio::select! {
                _ = &mut stop => return,
                event = events.recv() => if event.is_none() { return },
            }
            // Debounce: wait until no event arrived for `debounce`, but no longer than
            // MAX_DEBOUNCE_FACTOR × `debounce` in all, so a directory that never goes quiet
            // still gets its reloads.
            let deadline = tokio::time::Instant::now() + self.debounce * MAX_DEBOUNCE_FACTOR;
            loop {
                tokio::select! {
                    _ = &mut stop => return,
                    _ = tokio::time::sleep(self.debounce) => break,
                    _ = tokio::time::sleep_until(deadline) => break,
                    event = events.recv() => if event.is_none() { return },
                }
            }
            self.reload().await;
        }
    }

    async fn reload(&mut self) {
        let Some(read) = self.read_stable().await else {
            // Still changing: the events that changed it will bring us back.
            return;
        };
        let contents = match read {
            Ok(contents) => contents,
            Err(error) => return self.refuse(&error.into()),
        };
        if contents == self.last {
            return;
        }
        match build(&contents, &self.clock) {
            Ok(identity) => {
                let identity = Arc::new(identity);
                record_expiry(identity.credentials());
                record_rotation();
                tracing::info!(
                    identity = %identity.credentials().spiffe_id(),
                    not_after = %identity.credentials().leaf_not_after(),
                    "workload identity rotated"
                );
                self.current.store(identity.clone());
                self.last = contents;
                // No receiver is fine: nobody is waiting.
                let _ = self.changes.send(identity);
                self.status.send_modify(|status| {
                    status.accepted += 1;
                    status.last_error = None;
                });
            }
            Err(error) => self.refuse(&error),
        }
    }

    /// Reads the three files until two reads in a row agree.
    ///
    /// The files are read one after another, so a swap (a `..data` rename, an editor's save)
    /// that lands between two of the reads yields a certificate from one generation and a key or
    /// bundle from another. Such a mix may fail validation (a false refusal) or, worse, pass it
    /// (old leaf, new roots). Reading again and comparing detects the tear. `None` when the
    /// files did not settle within a few attempts.
    async fn read_stable(&self) -> Option<Result<Contents, CredentialsError>> {
        let mut previous = read_all(&self.files).await;
        for _ in 0..STABLE_READ_ATTEMPTS {
            let next = read_all(&self.files).await;
            match (&previous, &next) {
                (Ok(a), Ok(b)) if a == b => return Some(next),
                (Err(a), Err(b)) if a.to_string() == b.to_string() => return Some(next),
                _ => previous = next,
            }
        }
        None
    }

    fn refuse(&self, error: &RotationError) {
        record_rotation_error();
        tracing::warn!(%error, "refused identity rotation; the previous identity keeps serving");
        self.status.send_modify(|status| {
            status.refused += 1;
            status.last_error = Some(error.to_string());
        });
    }
}

fn build(contents: &Contents, clock: &Clock) -> Result<TlsIdentity, RotationError> {
    let now = clock.current_time().unwrap_or_else(UnixTime::now);
    let [chain, key, roots] = contents;
    let credentials = Credentials::from_pem(chain, key, roots, now)?;
    Ok(TlsIdentity::with_clock(
        Arc::new(credentials),
        clock.clone(),
    )?)
}

async fn read_all(files: &IdentityFiles) -> Result<Contents, CredentialsError> {
    async fn read(path: &Path) -> Result<Vec<u8>, CredentialsError> {
        tokio::fs::read(path)
            .await
            .map_err(|source| CredentialsError::Read {
                path: path.to_owned(),
                source,
            })
    }
    Ok([
        read(&files.cert_chain).await?,
        read(&files.key).await?,
        read(&files.roots).await?,
    ])
}

/// Whether an event may have changed a file's contents. Opening and reading (our own reloads
/// among them) do not.
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

fn parent_dirs(files: &IdentityFiles) -> BTreeSet<PathBuf> {
    files
        .paths()
        .iter()
        .map(|p| match p.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        })
        .collect()
}
