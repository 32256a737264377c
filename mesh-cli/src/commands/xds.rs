//! `mesh xds serve --config PATH --listen ADDR`: an ADS control plane over Istio files, for
//! Envoy sidecars, proxyless gRPC clients and mesh workloads. Every valid edit of the files is
//! pushed; an invalid one is logged and the last good config keeps being served. Files invalid
//! at start are left out and reported the same way: the server starts with the rest. Logs (ACKs,
//! NACKs, connections) go to stderr; `RUST_LOG` filters them (default `info`).

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use mesh_core::MeshSettings;
use mesh_xds::server::XdsServer;

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
    /// SPIFFE trust domain.
    #[arg(long, default_value = "cluster.local")]
    trust_domain: String,
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
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let server = XdsServer::new(self.config, settings).await?;
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
