//! The `mesh` command. Each subcommand lives in its own module under `commands/`.
//!
//! Install it with `cargo install --path mesh-cli`; `mesh --help` lists every command. A first
//! session, from nothing to a server curl can verify:
//!
//! ```text
//! mesh certs init --dir ca                                  # a development root CA
//! mesh certs issue --dir ca --namespace shop --service-account checkout \
//!     --out certs/checkout --dns localhost                  # an identity, also valid for localhost
//! mesh check mesh/                                          # validate the Istio YAML
//! mesh explain --config mesh/ http://reviews:9080/reviews/1 # where would this request go?
//! mesh top --admin 127.0.0.1:15000                          # live traffic per edge
//! mesh xds serve --config mesh/ --listen 127.0.0.1:15010    # the same YAML over ADS
//! ```
#![forbid(unsafe_code)]

mod commands;

use std::process::ExitCode;

fn main() -> ExitCode {
    match commands::Cli::parse_args().run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("mesh: {error}");
            ExitCode::from(2)
        }
    }
}
