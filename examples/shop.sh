#!/usr/bin/env bash
# The shop demo as separate processes, one per workload, as they would run in a cluster:
# payment, inventory-v1, inventory-v2, checkout and frontend in the background, the load
# generator in the foreground; its summary merges every process' service graph.
#
#   examples/shop.sh                       # 30 s at 50 rps
#   examples/shop.sh --duration 60 --json  # flags go to the load generator
#
# SHOP_PROFILE=release builds with optimisations (the default, dev, shares the tests' build).
# Ports: 17000-17004 for the services, 17010-17015 for their admin endpoints (service map on
# any of them); SHOP_BASE_PORT moves the plan. Config in ./shop-config, identities in ./shop-certs.
set -euo pipefail

cd "$(dirname "$0")/.."
profile=${SHOP_PROFILE:-dev}
cargo build -p mesh-examples --profile "$profile" --bin shop
if [ "$profile" = dev ]; then shop=target/debug/shop; else shop=target/$profile/shop; fi
base=${SHOP_BASE_PORT:-17000}
common=(--config shop-config --certs shop-certs --base-port "$base")

"$shop" --prepare "${common[@]}"

pids=()
stop() {
    for pid in "${pids[@]}"; do
        kill -INT "$pid" 2>/dev/null || true
    done
    wait "${pids[@]}" 2>/dev/null || true
}
trap stop EXIT

for service in payment inventory-v1 inventory-v2 checkout frontend; do
    "$shop" --service "$service" "${common[@]}" &
    pids+=("$!")
done

"$shop" --service loadgen "${common[@]}" "$@"
