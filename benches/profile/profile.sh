#!/usr/bin/env bash
# Where the CPU goes at saturation, arm by arm: `perf record -g` of sidecar-tax running one arm
# (its client process and its server child), then a table of self time by crate (mesh, hyper,
# h2, rustls, ring, tokio, the allocator, ...) for each arm, side by side (perf_table.py).
#
#   benches/profile/profile.sh [ARMS] [PEAK_SECONDS] [OUT_DIR]
#   benches/profile/profile.sh a-tls,b 10 target/profile          # the defaults
#   benches/profile/profile.sh a-tls,b,a-tls-http,b-http 10
#
# Each arm: a 0.2 s open loop, then the closed loop (64 calls in flight) for PEAK_SECONDS, one
# repetition, at perf's sampling rate of 999 Hz (cpu-clock). Set-up (certificates, handshakes,
# warm-up) is in the profile too: well under 1 % of a 10 s run. Writes OUT_DIR/<arm>.{data,
# samples,log,json} and prints the tables (also in OUT_DIR/profile.md). Needs perf (Debian:
# linux-perf) and permission to profile (root, or kernel.perf_event_paranoid <= 1). The release
# profile keeps line-table debug info (`debug = 1`), so symbols resolve.
set -euo pipefail
cd "$(dirname "$0")/../.."

arms="${1:-a-tls,b}"
peak="${2:-10}"
out="${3:-target/profile}"
mkdir -p "$out"

# SIDECAR_TAX=path/to/sidecar-tax skips the build (a binary built with debug info).
bin="${SIDECAR_TAX:-}"
if [ -z "$bin" ]; then
  cargo build --release -p mesh-benches --bin sidecar-tax
  bin=target/release/sidecar-tax
fi

names=()
for arm in ${arms//,/ }; do
  echo "== perf record: arm $arm (${peak} s at saturation)" >&2
  perf record -F 999 -g -o "$out/$arm.data" -- \
    "$bin" --arms "$arm" --reps 1 --duration 0.2 --peak-duration "$peak" \
    --json "$out/$arm.json" 2> "$out/$arm.log" > /dev/null
  perf script -i "$out/$arm.data" -F pid,tid,period,ip,sym,dso --max-stack 1 \
    > "$out/$arm.samples" 2> /dev/null
  names+=("$arm")
done

python3 benches/profile/perf_table.py "$out" "${names[@]}" | tee "$out/profile.md"
