//! Command-line structure: one module per subcommand, dispatched from [`Cli::run`].

mod certs;
mod check;
mod explain;
mod top;
mod xds;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

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
    /// Parses the process' arguments (exiting with clap's message on a bad one). `mesh --help`
    /// ends with every command, nested ones (`certs issue`, `xds serve`) included, generated
    /// from the command tree so it cannot drift from it.
    pub fn parse_args() -> Self {
        let command = Self::command();
        let index = command_index(&command);
        let matches = command.after_help(index).get_matches();
        Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }

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

/// `All commands:` and one line per leaf command (`mesh certs issue  <its summary>`).
fn command_index(root: &clap::Command) -> String {
    let mut rows = Vec::new();
    collect(root, root.get_name(), &mut rows);
    let width = rows.iter().map(|(path, _)| path.len()).max().unwrap_or(0);
    let mut out = String::from("All commands:");
    for (path, about) in rows {
        out.push_str(&format!("\n  {path:<width$}  {about}"));
    }
    out
}

fn collect(command: &clap::Command, path: &str, rows: &mut Vec<(String, String)>) {
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        let path = format!("{path} {}", sub.get_name());
        if sub.has_subcommands() {
            collect(sub, &path, rows);
        } else {
            let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
            let first = about
                .split(". ")
                .next()
                .unwrap_or_default()
                .trim_end_matches('.');
            rows.push((path, first.to_owned()));
        }
    }
}
