#!/usr/bin/env bash
# The service map in a real browser: headless Chromium (Debian's `chromium`) loads the admin page
# while traffic flows (tests/tests/service_map_browser.rs). The screenshot it takes is kept at
# target/artifacts/service-map.png.
#   CHROMIUM_BIN=/path/to/chromium  use that browser instead of installing one.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${CHROMIUM_BIN:-}" ] && ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium (Debian package)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
"${CHROMIUM_BIN:-chromium}" --version

cargo test -p mesh-tests --test service_map_browser -- --ignored --test-threads=1
echo "screenshot: $(pwd)/target/artifacts/service-map.png"
