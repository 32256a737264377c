//! `shop`: the mesh demo. A small shop backend, `frontend` (axum) → `checkout` (tonic) →
//! `payment` and `inventory` v1/v2 (tonic), each with its own `Mesh` and SPIFFE identity, with
//! STRICT mutual TLS, an AuthorizationPolicy (only checkout may call payment), a 95/5 canary of
//! inventory with a header route to v2, a load generator, the admin endpoint with the service
//! map, and a summary on exit.
//!
//! ```text
//! cargo run -p mesh-examples --bin shop                         # all in one process, 30 s
//! cargo run -p mesh-examples --bin shop -- --duration 0 --json  # until Ctrl-C/SIGTERM, as JSON
//! examples/shop.sh                                              # one process per workload
//! ```
//! Each run owns its config directory (a fresh temporary one, printed at start, or `--config
//! DIR`, locked while it runs) and its ports, so two demos run side by side. Edit the weights
//! in its `inventory.yaml` while it runs: the split follows within a second. A run whose
//! traffic failed says so and exits 1.
#![forbid(unsafe_code)]

mod certs;
mod checkout;
mod config;
mod frontend;
mod inventory;
mod loadgen;
mod lock;
mod node;
mod payment;
mod pb;
mod plan;
mod run;
mod summary;
mod verdict;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use self::plan::Service;

/// Runs the shop demo: every workload in this process, or one with `--service`.
#[derive(Debug, Parser)]
#[command(name = "shop")]
pub struct Args {
    /// Istio config directory: written at start where absent, watched while running, and
    /// locked so no other demo writes into it. Default: a fresh temporary directory when all
    /// workloads run here (printed at start, removed at exit), `shop-config` with `--service` or
    /// `--prepare`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Certificates directory (development CA and workload identities). Default: a temporary
    /// directory when all workloads run here, `shop-certs` with `--service` or `--prepare`.
    #[arg(long)]
    certs: Option<PathBuf>,
    /// Load: requests per second.
    #[arg(long, default_value_t = 50)]
    rps: u32,
    /// Load: seconds to run (0: until Ctrl-C).
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Run this workload alone (the others run as separate processes).
    #[arg(long, value_enum)]
    service: Option<Service>,
    /// First port of the plan (`base + i` per workload, admin at `base + 10 + i`). Default: any
    /// free ports when all workloads run here, 17000 with `--service`.
    #[arg(long)]
    base_port: Option<u16>,
    /// Admin endpoint (service map, metrics, config dump) when all workloads run here.
    /// Default: 127.0.0.1:15000, or any free port when another process holds it.
    #[arg(long)]
    admin: Option<SocketAddr>,
    /// Seed of the clients' random choices (the canary pick).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the config and certificates directories, then exit (for `--service` runs).
    #[arg(long)]
    prepare: bool,
}

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or socket operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A mesh could not be built.
    #[error(transparent)]
    Mesh(#[from] mesh_core::MeshError),
    /// The development CA failed.
    #[error(transparent)]
    Ca(#[from] mesh_core::identity::CaError),
    /// A service URI is invalid.
    #[error(transparent)]
    Uri(#[from] http::uri::InvalidUri),
    /// The Prometheus recorder could not be installed.
    #[error("metrics: {0}")]
    Metrics(String),
    /// The summary could not be encoded.
    #[error("summary: {0}")]
    Json(#[from] serde_json::Error),
    /// A workload this process needs was not started.
    #[error("{0:?} is not running in this process")]
    Missing(Service),
    /// Separate processes find each other on a fixed port plan.
    #[error("--service needs a fixed --base-port, not 0")]
    NoPortPlan,
    /// `--service loadgen` serves nothing.
    #[error("the load generator does not serve")]
    NotAServer,
    /// The certificates directory has not been prepared.
    #[error("no identities in {0}: run `shop --prepare` first")]
    NotPrepared(PathBuf),
    /// Another demo owns the config directory.
    #[error(
        "{} is in use by another shop demo{}: give this one its own --config directory (or \
         none, for a temporary one), or stop the other",
        .dir.display(),
        .pid.map(|p| format!(" (process {p})")).unwrap_or_default()
    )]
    ConfigInUse {
        /// The directory.
        dir: PathBuf,
        /// The process holding it, when known.
        pid: Option<u32>,
    },
    /// Requests failed: the demo did not work.
    #[error("traffic failed: {failed} of {sent} requests failed ({reasons}); see the summary")]
    TrafficFailed {
        /// Requests that failed.
        failed: u64,
        /// Requests sent.
        sent: u64,
        /// The failure reasons, most frequent first.
        reasons: String,
    },
}

impl Error {
    /// An I/O error with what was being done.
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    // Spans go to the OTLP endpoint the OpenTelemetry variables name (none: tracing off).
    let tracing = match mesh_tower::trace::install_from_env() {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("shop: tracing: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = if args.prepare {
        run::prepare(&args)
    } else {
        match args.service {
            None => run::all(&args).await,
            Some(service) => run::one(&args, service).await,
        }
    };
    if let Some(guard) = &tracing {
        guard.tracing().flush().await;
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shop: {e}");
            ExitCode::FAILURE
        }
    }
}
