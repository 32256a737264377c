//! The `mesh` command: check Istio config, explain where a request goes, mint certificates.
#![forbid(unsafe_code)]

mod commands;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = commands::Cli::parse();
    match cli.run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mesh: {e}");
            ExitCode::from(2)
        }
    }
}
