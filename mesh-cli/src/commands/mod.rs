//! Subcommands, one module each.

mod check;
mod explain;
mod top;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A service mesh you link in: tools for its config and identities.
#[derive(Debug, Parser)]
#[command(name = "mesh", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Check(check::Check),
    Explain(explain::Explain),
    Top(top::Top),
}

/// A failure that is not the answer to the question asked (bad arguments, I/O).
pub(crate) type CommandError = Box<dyn std::error::Error + Send + Sync>;

impl Cli {
    /// Runs the command; the exit code is part of the answer (`check`: 1 means invalid).
    pub(crate) fn run(self) -> Result<ExitCode, CommandError> {
        match self.command {
            Command::Check(c) => c.run(),
            Command::Explain(c) => c.run(),
            Command::Top(c) => c.run(),
        }
    }
}
