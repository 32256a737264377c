"""A Python gRPC xDS server (grpcio, `xds=True`) configured by `mesh xds serve`, checked by calls.

The server asks for its inbound listener by the bootstrap's server_listener_resource_name_template
(gRFC A36) and enforces the RBAC filters in it (gRFC A41); mesh generated both from Istio's
PeerAuthentication and AuthorizationPolicy. The checks, with a plain gRPC client:
  - Health/Check is served (the listener arrived: an xDS server without one serves nothing);
  - a call carrying `x-user: mallory` is refused PERMISSION_DENIED (a DENY policy's `when` on a
    request header);
  - a call to a method no ALLOW rule names is refused PERMISSION_DENIED, not UNIMPLEMENTED
    (an ALLOW policy on paths: RBAC runs before the server looks the method up).
Prints one JSON line; exits non-zero when a check fails.

`serve` runs the server until killed; `check` makes the calls, from another process (grpcio
1.85 aborts when an xDS server and a client channel to it share one process).
"""

import argparse
import json
import sys
import time
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


def check(stub, metadata=()):
    try:
        stub.Check(health_pb2.HealthCheckRequest(), timeout=5, metadata=metadata)
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()


def serve(port):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), xds=True)
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    server.add_insecure_port(f"0.0.0.0:{port}")
    server.start()
    print(f"serving on {port}", flush=True)
    server.wait_for_termination()
    return 0


def checks(port, ready_seconds):
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + ready_seconds
    served = check(stub)
    while served != grpc.StatusCode.OK and time.monotonic() < deadline:
        time.sleep(0.2)
        served = check(stub)
    denied_header = check(stub, metadata=(("x-user", "mallory"),))
    other = channel.unary_unary("/mesh.interop.Other/Call")
    try:
        other(b"", timeout=5)
        unlisted = grpc.StatusCode.OK
    except grpc.RpcError as e:
        unlisted = e.code()
    print(json.dumps({
        "served": served.name,
        "denied_by_header": denied_header.name,
        "unlisted_method": unlisted.name,
    }))
    ok = (
        served == grpc.StatusCode.OK
        and denied_header == grpc.StatusCode.PERMISSION_DENIED
        and unlisted == grpc.StatusCode.PERMISSION_DENIED
    )
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["serve", "check"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--ready-seconds", type=float, default=30)
    a = ap.parse_args()
    return serve(a.port) if a.mode == "serve" else checks(a.port, a.ready_seconds)


if __name__ == "__main__":
    sys.exit(main())
