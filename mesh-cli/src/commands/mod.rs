//! Command-line structure: one module per subcommand, dispatched from [`Cli::run`].

mod certs;

use clap::{Parser, Subcommand};

/// A command's failure, printed as `mesh: <error>` with exit status 1.
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
    /// Development certificates: a CA and workload identities in Istio's file layout.
    #[command(subcommand)]
    Certs(certs::CertsCommand),
}

impl Cli {
    /// Runs the chosen command.
    pub fn run(self) -> Result<(), CliError> {
        match self.command {
            Command::Certs(command) => command.run(),
        }
    }
}
