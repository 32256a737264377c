//! `mesh xds serve --config PATH --listen ADDR`: an ADS control plane over Istio files, for
//! Envoy sidecars, proxyless gRPC clients and mesh workloads. Every valid edit of the files is
//! pushed; an invalid one is logged and the last good config keeps being served. Files invalid
//! at start are left out and reported the same way: the server starts with the rest. Logs (ACKs,
//! NACKs, connections) go to stderr; `RUST_LOG` filters them (default `info`).
//!
//! `--ca-dir` (the folder `mesh certs init` makes) secures it as istiod's 15012: TLS only, every
//! client authenticated by a mesh certificate or a bootstrap token from `--token-file`, each
//! node held to its identity, and `IstioCertificateService` signing workload certificates.
//! Plaintext without authentication needs `--insecure-plaintext`, said out loud.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use mesh_core::MeshSettings;
use mesh_xds::server::auth::Tokens;
use mesh_xds::server::{ControlPlaneSecurity, XdsServer};

use super::CliError;

/// xDS control-plane commands.
#[derive(Debug, Subcommand)]
pub(crate) enum XdsCommand {
    /// Serve LDS/RDS/CDS/EDS over ADS (state of the world and incremental) from watched Istio
    /// files, to Envoy sidecars, proxyless gRPC clients and servers, and mesh workloads.
    Serve(Serve),
}

impl XdsCommand {
    pub(crate) fn run(self) -> Result<ExitCode, CliError> {
        match self {
            XdsCommand::Serve(s) => s.run(),
        }
    }
}

/// Serve Istio files as xDS.
#[derive(Debug, Args)]
pub(crate) struct Serve {
    /// Files or directories of Istio YAML (watched; repeatable).
    #[arg(long = "config", required = true, num_args = 1..)]
    config: Vec<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:15010")]
    listen: SocketAddr,
    /// DNS suffix of services.
    #[arg(long, default_value = "cluster.local")]
    domain_suffix: String,
    /// SPIFFE trust domain (with --ca-dir, the CA's).
    #[arg(long, default_value = "cluster.local")]
    trust_domain: String,
    /// CA folder (`mesh certs init`): serve TLS, authenticate clients and sign their certificates.
    #[arg(long, conflicts_with = "insecure_plaintext")]
    ca_dir: Option<PathBuf>,
    /// Bootstrap tokens for first certificates: lines of `<namespace>/<service-account> <token>`.
    /// Read again when it changes (an invalid edit keeps the previous tokens).
    #[arg(long, requires = "ca_dir")]
    token_file: Option<PathBuf>,
    /// Lifetime of workload certificates whose request names none, in seconds.
    #[arg(long, default_value_t = 24 * 3600, requires = "ca_dir")]
    cert_ttl_secs: u64,
    /// Longest lifetime a certificate request may ask for, in seconds.
    #[arg(long, default_value_t = 90 * 24 * 3600, requires = "ca_dir")]
    max_cert_ttl_secs: u64,
    /// Serve plaintext and believe every node's claims (tests, a trusted host).
    #[arg(long)]
    insecure_plaintext: bool,
}

impl Serve {
    pub(crate) fn run(self) -> Result<ExitCode, CliError> {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
            )
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .try_init();
        let settings = MeshSettings {
            domain_suffix: self.domain_suffix,
            trust_domain: self.trust_domain,
            ..MeshSettings::default()
        };
        let security = match (&self.ca_dir, self.insecure_plaintext) {
            (Some(dir), _) => {
                let mut security = ControlPlaneSecurity::load(dir).and_then(|s| {
                    s.cert_ttl(
                        std::time::Duration::from_secs(self.cert_ttl_secs),
                        std::time::Duration::from_secs(self.max_cert_ttl_secs),
                    )
                })?;
                if security.ca().trust_domain() != settings.trust_domain {
                    return Err(CliError::from(format!(
                        "the CA in {} is for trust domain {}, not --trust-domain {}",
                        dir.display(),
                        security.ca().trust_domain(),
                        settings.trust_domain
                    )));
                }
                if let Some(path) = &self.token_file {
                    let tokens = Tokens::load(path, &settings.trust_domain)?;
                    security = security.tokens(tokens);
                }
                Some(security)
            }
            (None, true) => None,
            (None, false) => {
                return Err(
                    "give --ca-dir (TLS, authenticated clients, CA) or --insecure-plaintext".into(),
                );
            }
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let server = match security {
                Some(security) => XdsServer::new_secured(self.config, settings, security).await?,
                None => XdsServer::new(self.config, settings).await?,
            };
            let listener = tokio::net::TcpListener::bind(self.listen).await?;
            let local = listener.local_addr()?;
            if let Some(refused) = server.mesh().status().last_rejection {
                // Each error was logged; say plainly that the server runs without those files.
                let mut files: Vec<String> = refused
                    .diagnostics
                    .iter()
                    .filter(|d| d.is_error())
                    .filter_map(|d| d.file.as_ref().map(|f| f.display().to_string()))
                    .collect();
                files.dedup();
                eprintln!(
                    "mesh xds serve: invalid, left out until fixed: {}",
                    files.join(", ")
                );
            }
            // Scripts wait for this line to know the port (useful with --listen 127.0.0.1:0).
            eprintln!("mesh xds serve: listening on {local}");
            tracing::info!(%local, version = %server.mesh().snapshot().version, "xDS server listening");
            server
                .serve(listener, async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await?;
            Ok(ExitCode::SUCCESS)
        })
    }
}
