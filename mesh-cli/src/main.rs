//! The `mesh` command. Each subcommand lives in its own module under `commands/`.
#![forbid(unsafe_code)]

mod commands;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match commands::Cli::parse().run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("mesh: {error}");
            ExitCode::from(2)
        }
    }
}
