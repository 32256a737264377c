//! `mesh check PATH...`: load Istio config the way a workload would and report every problem.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use mesh_core::{BuildContext, Workload, istio};

use super::CliError as CommandError;

/// Validate Istio resource files: exit 0 when valid (warnings printed), 1 when not.
#[derive(Debug, Args)]
pub(crate) struct Check {
    /// Files or directories of Istio YAML (directories are read recursively).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Namespace of the workload the config is checked for.
    #[arg(long, default_value = "default")]
    namespace: String,
}

impl Check {
    pub(crate) fn run(self) -> Result<ExitCode, CommandError> {
        let ctx = BuildContext {
            workload: Workload::new(self.namespace, "default"),
            ..Default::default()
        };
        match istio::load_paths(&self.paths, &ctx) {
            Ok(snapshot) => {
                for w in &snapshot.warnings {
                    println!("warning: {w}");
                }
                let routes: usize = snapshot
                    .routes
                    .values()
                    .flat_map(|rc| &rc.virtual_hosts)
                    .map(|vh| vh.routes.len())
                    .sum();
                println!(
                    "ok: {} cluster(s), {} route(s), {} authorization polic(ies), {} warning(s)",
                    snapshot.clusters.len(),
                    routes,
                    snapshot.inbound.authorization.len(),
                    snapshot.warnings.len()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(err) => {
                let mut errors = 0;
                for d in &err.diagnostics {
                    if d.is_error() {
                        errors += 1;
                        println!("error: {d}");
                    } else {
                        println!("warning: {d}");
                    }
                }
                println!("invalid: {errors} error(s)");
                Ok(ExitCode::FAILURE)
            }
        }
    }
}
