#!/usr/bin/env bash
# Bounded fuzz run: every mesh-fuzz target (Istio YAML, xDS resources, PEM/certificates, the
# PERMISSIVE sniffer, HTTP/2 into `serve`) for at most 15 s each, from a fixed seed, in the debug
# build `cargo test --workspace` already made (overflow checks on). `cargo test --workspace` runs
# a smaller fixed set too (fuzz/tests/bounded.rs) and replays every saved crash
# (fuzz/tests/regressions.rs); this one goes further. Crashing inputs are saved under
# target/fuzz/crashes/ and fail the step. The long run is in fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# `cargo run -p mesh-fuzz` would resolve features for mesh-fuzz alone and rebuild dependencies;
# the workspace test build (a no-op after `cargo test --workspace`) has the binary already.
cargo test -q --workspace --no-run
"${CARGO_TARGET_DIR:-target}/debug/mesh-fuzz" all --runs 100000 --max-seconds 15 \
  --seed "${FUZZ_SEED:-1}"
