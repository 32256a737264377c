//! `mesh-fuzz`: runs a fuzz target, replays saved inputs, or shrinks one.
//!
//! ```text
//! cargo run -p mesh-fuzz --release -- yaml --runs 1000000 --seed 1
//! cargo run -p mesh-fuzz --release -- all --runs 100000
//! cargo run -p mesh-fuzz --release -- yaml --replay target/fuzz/crashes/yaml-….bin
//! cargo run -p mesh-fuzz --release -- yaml --minimize target/fuzz/crashes/yaml-….bin
//! ```
//!
//! Exit status: 0 when no input crashed, 1 when one did, 2 on a usage or setup error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mesh_fuzz::corpus::workspace_root;
use mesh_fuzz::driver::{self, RunConfig};
use mesh_fuzz::targets;

/// Fuzz one of mesh's input readers.
#[derive(Debug, Parser)]
#[command(name = "mesh-fuzz")]
struct Cli {
    /// Target: yaml, xds, pem, sniff, h2, or all (one after the other).
    target: String,
    /// Inputs to run (per target).
    #[arg(long, default_value_t = 10_000)]
    runs: u64,
    /// Seed of the input generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Stop each target after this many seconds.
    #[arg(long)]
    max_seconds: Option<u64>,
    /// Where crashing inputs are saved.
    #[arg(long)]
    crash_dir: Option<PathBuf>,
    /// Run these saved inputs instead of generating.
    #[arg(long, num_args = 1.., conflicts_with = "minimize")]
    replay: Vec<PathBuf>,
    /// Shrink this crashing input; the result is written beside it (`.min`).
    #[arg(long)]
    minimize: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let names: Vec<&str> = if cli.target == "all" {
        targets::NAMES.to_vec()
    } else {
        vec![cli.target.as_str()]
    };
    let mut crashed = false;
    for name in names {
        let mut target = match targets::by_name(name) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{name}: {e}");
                return ExitCode::from(2);
            }
        };
        if let Some(path) = &cli.minimize {
            return minimize(target.as_mut(), path);
        }
        if !cli.replay.is_empty() {
            for path in &cli.replay {
                let Ok(input) = std::fs::read(path) else {
                    eprintln!("cannot read {}", path.display());
                    return ExitCode::from(2);
                };
                match driver::run_one(target.as_mut(), &input) {
                    Ok(outcome) => println!("{}: ok ({outcome})", path.display()),
                    Err(message) => {
                        crashed = true;
                        println!("{}: CRASH {message}", path.display());
                    }
                }
            }
            continue;
        }
        let config = RunConfig {
            max_time: cli.max_seconds.map(Duration::from_secs),
            crash_dir: Some(
                cli.crash_dir
                    .clone()
                    .unwrap_or_else(|| workspace_root().join("target/fuzz/crashes")),
            ),
            ..RunConfig::new(cli.runs, cli.seed)
        };
        let report = driver::run(target.as_mut(), &config);
        print!("{}", report.summary());
        crashed |= report.crash_count() > 0;
    }
    if crashed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn minimize(target: &mut dyn driver::Target, path: &PathBuf) -> ExitCode {
    let Ok(input) = std::fs::read(path) else {
        eprintln!("cannot read {}", path.display());
        return ExitCode::from(2);
    };
    match driver::minimize(target, &input) {
        None => {
            println!("{}: does not crash", path.display());
            ExitCode::SUCCESS
        }
        Some(min) => {
            let out = path.with_extension("min");
            if let Err(e) = std::fs::write(&out, &min) {
                eprintln!("cannot write {}: {e}", out.display());
                return ExitCode::from(2);
            }
            println!(
                "{} bytes -> {} bytes: {}\n{}",
                input.len(),
                min.len(),
                out.display(),
                String::from_utf8_lossy(&min)
            );
            ExitCode::FAILURE
        }
    }
}
