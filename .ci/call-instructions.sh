#!/usr/bin/env bash
# The instruction-count benchmark (benches/benches/call_instructions.rs): valgrind from Debian,
# gungraun's runner at the version of the gungraun library in Cargo.lock (they must match),
# then one run of every arm (100 calls each, after set-up and warm-up). Bounded by a timeout.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v valgrind > /dev/null; then
  apt-get update -qq
  apt-get install -y -qq valgrind > /dev/null
fi

version=$(cargo metadata --format-version 1 --locked |
  python3 -c 'import json, sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "gungraun"))')
root="$PWD/target/tools"
runner="$root/bin/gungraun-runner"
if ! { [ -x "$runner" ] && "$runner" --version | grep -q -- "$version"; }; then
  cargo install gungraun-runner --version "$version" --locked --root "$root"
fi

GUNGRAUN_RUNNER="$runner" timeout 900 cargo bench -p mesh-benches --bench call_instructions
