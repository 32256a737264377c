//! `mesh check PATH...`: load Istio config the way a workload would and report every problem.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use mesh_core::config::Diagnostic;
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
        let mut render = Renderer::default();
        match istio::load_paths(&self.paths, &ctx) {
            Ok(snapshot) => {
                for w in &snapshot.warnings {
                    println!("warning: {}", render.render(w));
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
                        println!("error: {}", render.render(d));
                    } else {
                        println!("warning: {}", render.render(d));
                    }
                }
                println!("invalid: {errors} error(s)");
                Ok(ExitCode::FAILURE)
            }
        }
    }
}

/// Writes diagnostics for people: `file:line:column: doc N Kind ns/name: field: message`, with
/// the line and column of the field (as compilers write them, so editors jump there) and
/// documents numbered from 1 as editors count them.
#[derive(Default)]
pub(crate) struct Renderer {
    files: HashMap<PathBuf, Option<String>>,
}

impl Renderer {
    pub(crate) fn render(&mut self, d: &Diagnostic) -> String {
        let (Some(file), Some(doc)) = (&d.file, d.document) else {
            return d.to_string();
        };
        let content = self
            .files
            .entry(file.clone())
            .or_insert_with(|| std::fs::read_to_string(file).ok());
        let place = match content
            .as_deref()
            .and_then(|c| istio::locate(c, doc, &d.field))
        {
            Some((line, column)) => format!("{}:{line}:{column}", file.display()),
            None => file.display().to_string(),
        };
        let mut out = format!("{place}: doc {}", doc + 1);
        if let Some(r) = &d.resource {
            out.push_str(&format!(" {r}"));
        }
        if !d.field.is_empty() {
            out.push_str(&format!(": {}", d.field));
        }
        out.push_str(&format!(": {}", d.message));
        out
    }
}
