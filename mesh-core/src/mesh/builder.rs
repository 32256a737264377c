//! Building a [`Mesh`] handle.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use super::Mesh;
use super::identity_check::{IdentityMismatch, identity_mismatch, strict_anywhere};
use super::watch::{ConfigLoader, FileSource};
use crate::config::ConfigError;
use crate::identity::{IdentityFiles, IdentitySource, IdentityWatcher, WatchError};
use crate::model::Snapshot;
use crate::{BuildContext, MeshSettings, Workload};

/// Why a [`Mesh`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// The initial config is invalid (there is no earlier good config to fall back to).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The config paths could not be watched.
    #[error("cannot watch config path {path}: {source}")]
    Watch {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: notify::Error,
    },
    /// The workload identity files are missing, invalid, or cannot be watched.
    #[error("workload identity: {0}")]
    Identity(#[from] WatchError),
    /// The certificate names another workload than the one declared, and the workload's
    /// PeerAuthentication is STRICT (see [`IdentityMismatch`]).
    #[error("{0}; refused because the workload's PeerAuthentication is STRICT")]
    IdentityMismatch(Box<IdentityMismatch>),
}

/// Where the workload identity comes from, if anywhere.
#[derive(Debug)]
enum IdentityConfig {
    None,
    Files(IdentityFiles),
    Source(IdentitySource),
}

/// Configures and builds a [`Mesh`]; see [`Mesh::builder`].
///
/// A workload with its identity in Istio's file layout and its config in a folder of Istio
/// YAML, both watched (here minted and written on the spot):
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use mesh_core::identity::CertificateAuthority;
/// use mesh_core::model::MtlsMode;
/// use mesh_core::{Mesh, Workload};
///
/// let dir = tempfile::tempdir()?;
/// let (certs, config) = (dir.path().join("certs"), dir.path().join("mesh"));
/// // What `mesh certs init` and `mesh certs issue` write (in a cluster: istio-agent).
/// let ca = CertificateAuthority::generate("cluster.local")?;
/// ca.issue("shop", "checkout", Duration::from_secs(3600))?
///     .write_istio_layout(&certs)?;
/// std::fs::create_dir(&config)?;
/// std::fs::write(
///     config.join("mtls.yaml"),
///     "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n\
///      metadata: {name: default, namespace: shop}\nspec: {mtls: {mode: STRICT}}\n",
/// )?;
///
/// let mesh = Mesh::builder()
///     .workload(Workload::new("shop", "checkout").labels([("app", "checkout"), ("version", "v1")]))
///     .identity_files(&certs) // cert-chain.pem, key.pem, root-cert.pem; rotations followed
///     .config_path(&config) // Istio YAML, watched; a bad edit keeps the last good config
///     .build()
///     .await?;
/// assert_eq!(mesh.snapshot().inbound.peer_authentication.mode, MtlsMode::Strict);
/// assert!(mesh.identity_mismatch().is_none());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct MeshBuilder {
    context: BuildContext,
    config_paths: Vec<PathBuf>,
    debounce: Duration,
    watch: bool,
    start_with_valid_files: bool,
    loader: ConfigLoader,
    identity: IdentityConfig,
    /// Whether [`MeshBuilder::workload`] was called (the default workload declares nothing, so
    /// its identity is not compared with the certificate's).
    workload_declared: bool,
}

impl Default for MeshBuilder {
    fn default() -> Self {
        Self {
            context: BuildContext::default(),
            config_paths: Vec::new(),
            debounce: Duration::from_millis(100),
            watch: true,
            start_with_valid_files: false,
            loader: ConfigLoader::istio(),
            identity: IdentityConfig::None,
            workload_declared: false,
        }
    }
}

impl MeshBuilder {
    /// The workload this process runs as.
    pub fn workload(mut self, workload: Workload) -> Self {
        self.context.workload = workload;
        self.workload_declared = true;
        self
    }

    /// Mesh-wide settings (domain suffix, trust domain, root namespace).
    pub fn settings(mut self, settings: MeshSettings) -> Self {
        self.context.settings = settings;
        self
    }

    /// Adds a file or directory of Istio YAML (directories are read recursively).
    pub fn config_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.config_paths.push(path.into());
        self
    }

    /// How long the files must be quiet after a change before they are reloaded (default
    /// 100 ms), so a multi-file edit is applied once. Files that never go quiet are reloaded
    /// at most 10 intervals after the first change.
    pub fn debounce(mut self, debounce: Duration) -> Self {
        self.debounce = debounce;
        self
    }

    /// When the initial config is invalid, start with the files that are valid instead of
    /// failing (default false), and record the others as a refused config (log, counter,
    /// [`Mesh::status`]), as a running mesh does with a bad edit. The watch goes on over every
    /// path: once the bad files are fixed, the whole config is applied.
    pub fn start_with_valid_files(mut self, yes: bool) -> Self {
        self.start_with_valid_files = yes;
        self
    }

    /// Whether to watch the config paths and reload on change (default true).
    pub fn watch(mut self, watch: bool) -> Self {
        self.watch = watch;
        self
    }

    /// Loads the workload identity from `dir` in Istio's layout (`cert-chain.pem`, `key.pem`,
    /// `root-cert.pem`, see [`IdentityFiles::in_dir`]) and follows its rotations with an
    /// [`IdentityWatcher`]. [`build`](Self::build) fails if the files are missing or invalid:
    /// a workload configured for mutual TLS does not start without it.
    pub fn identity_files(self, dir: impl AsRef<Path>) -> Self {
        self.identity_paths(IdentityFiles::in_dir(dir))
    }

    /// Like [`identity_files`](Self::identity_files), with each path given.
    pub fn identity_paths(mut self, files: IdentityFiles) -> Self {
        self.identity = IdentityConfig::Files(files);
        self
    }

    /// Uses an identity that is already loaded (a fixed one in tests, or a watcher started
    /// elsewhere).
    pub fn identity(mut self, source: impl Into<IdentitySource>) -> Self {
        self.identity = IdentityConfig::Source(source.into());
        self
    }

    #[cfg(test)]
    pub(crate) fn loader(mut self, loader: ConfigLoader) -> Self {
        self.loader = loader;
        self
    }

    /// Loads the config (refusing an invalid one), starts watching it, and returns the handle.
    /// With no config paths, the mesh starts empty (for a config pushed by xDS or
    /// [`Mesh::apply`]).
    ///
    /// A declared [`workload`](Self::workload) whose certificate names another namespace or
    /// service account is logged as a warning ([`Mesh::identity_mismatch`]), and refused with
    /// [`MeshError::IdentityMismatch`] when its PeerAuthentication is STRICT on any port.
    pub async fn build(mut self) -> Result<Mesh, MeshError> {
        let identity: Option<IdentitySource> =
            match std::mem::replace(&mut self.identity, IdentityConfig::None) {
                IdentityConfig::None => None,
                IdentityConfig::Source(source) => Some(source),
                IdentityConfig::Files(files) => Some(IdentityWatcher::start(files).await?.into()),
            };
        let mismatch = match &identity {
            Some(source) if self.workload_declared => identity_mismatch(
                &self.context.workload,
                source.current().credentials().spiffe_id(),
            ),
            _ => None,
        };
        if self.config_paths.is_empty() {
            if let Some(mismatch) = mismatch {
                tracing::warn!(%mismatch, "workload identity");
            }
            return Ok(Mesh::new(
                self.context,
                Snapshot::empty(),
                identity,
                Vec::new(),
            ));
        }
        let loader = self.loader.clone();
        let partial = self.start_with_valid_files;
        let (initial, refused) = {
            let (paths, context) = (self.config_paths.clone(), self.context.clone());
            tokio::task::spawn_blocking(move || {
                if partial {
                    super::partial::load_valid(&loader, &paths, &context)
                } else {
                    loader.load(&paths, &context).map(|s| (s, None))
                }
            })
            .await
            .unwrap_or_else(|e| {
                Err(ConfigError::internal(format!(
                    "config loader panicked: {e}"
                )))
            })?
        };
        let mesh = if self.watch {
            let (stop_tx, stop_rx) = oneshot::channel();
            let source = FileSource::new(self.config_paths, self.debounce, self.loader)?;
            let mesh = Mesh::new(self.context, initial, identity, vec![stop_tx]);
            source.spawn(Arc::downgrade(&mesh.shared), stop_rx);
            mesh
        } else {
            Mesh::new(self.context, initial, identity, Vec::new())
        };
        if let Some(mismatch) = mismatch {
            if strict_anywhere(&mesh.snapshot().inbound.peer_authentication) {
                return Err(MeshError::IdentityMismatch(Box::new(mismatch)));
            }
            tracing::warn!(%mismatch, "workload identity");
        }
        if let Some(refused) = refused {
            mesh.reject(refused);
        }
        Ok(mesh)
    }
}
