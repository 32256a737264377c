//! Command-line structure: one module per subcommand, dispatched from [`Cli::run`].

mod certs;
mod check;
mod explain;
mod top;
mod xds;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A command's failure (bad arguments, I/O), printed as `mesh: <error>` with exit status 2;
/// answers such as "the config is invalid" are exit status 1 and not errors.
pub type CliError = Box<dyn std::error::Error + Send + Sync>;

/// mesh: a service mesh as a library. This tool checks, explains and equips its configuration.
#[derive(Debug, Parser)]
#[command(name = "mesh", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate Istio resource files: exit 0 when valid (warnings printed), 1 when not.
    Check(check::Check),
    /// Print the route a request takes and every policy that applies to it (a summary;
    /// `--json` for everything).
    Explain(explain::Explain),
    /// Development certificates: a CA and workload identities in Istio's file layout.
    #[command(subcommand)]
    Certs(certs::CertsCommand),
    /// A live table of traffic per edge, read from mesh admin endpoints.
    Top(top::Top),
    /// xDS control plane: serve Istio files to Envoy and proxyless gRPC clients.
    #[command(subcommand)]
    Xds(xds::XdsCommand),
}

impl Cli {
    /// Runs the chosen command; the exit code is part of the answer.
    pub fn run(self) -> Result<ExitCode, CliError> {
        match self.command {
            Command::Check(c) => c.run(),
            Command::Explain(c) => c.run(),
            Command::Certs(command) => command.run().map(|()| ExitCode::SUCCESS),
            Command::Top(c) => c.run(),
            Command::Xds(c) => c.run(),
        }
    }
}
