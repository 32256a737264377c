"""Calls grpc.health.v1.Health/Check through a target and checks where the calls went.

Each backend answers with an `x-version` header. With --expect v1=0.9,v2=0.1 the observed split
must be within 5 sigma of the expected one (binomial), every call must succeed.

With --settle, calls are first made (bounded by --settle-seconds) until the last 100 calls look
like the expected split, so a pushed change has reached the client before measuring.

--metadata k=v (repeatable) is sent on every call. With --xds-creds the channel takes its security from xDS (gRFC A29: the cluster's TLS context
and the bootstrap's certificate providers). With --expect-code CODE every call must fail with
that status instead (each waits at most --timeout seconds).
"""

import argparse
import collections
import json
import math
import sys
import time

import grpc
import grpc.experimental
from grpc_health.v1 import health_pb2, health_pb2_grpc


METADATA = ()


def call(stub):
    _, c = stub.Check.with_call(health_pb2.HealthCheckRequest(), timeout=10, wait_for_ready=True, metadata=METADATA)
    return dict(c.initial_metadata()).get("x-version", "?")


def within_5_sigma(counts, n, expect):
    ok = True
    for version, p in expect.items():
        mean = n * p
        sigma = math.sqrt(n * p * (1 - p))
        got = counts.get(version, 0)
        if abs(got - mean) > 5 * sigma:
            print(f"{version}: {got} of {n}, expected {mean:.0f} ± {5 * sigma:.0f}", file=sys.stderr)
            ok = False
    return ok


def failing(stub, calls, code, timeout):
    codes = collections.Counter()
    for _ in range(calls):
        try:
            stub.Check(health_pb2.HealthCheckRequest(), timeout=timeout, wait_for_ready=True, metadata=METADATA)
            codes["OK"] += 1
        except grpc.RpcError as e:
            codes[e.code().name] += 1
    print(json.dumps({"calls": calls, "codes": codes}))
    return 0 if codes == {code: calls} else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--authority")
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--expect")
    ap.add_argument("--settle", action="store_true")
    ap.add_argument("--settle-seconds", type=float, default=60)
    ap.add_argument("--xds-creds", action="store_true")
    ap.add_argument("--expect-code")
    ap.add_argument("--timeout", type=float, default=10)
    ap.add_argument("--metadata", action="append", default=[], help="k=v, sent on every call")
    a = ap.parse_args()
    global METADATA
    METADATA = tuple(tuple(kv.split("=", 1)) for kv in a.metadata)
    expect = {k: float(v) for k, v in (kv.split("=") for kv in (a.expect or "").split(",") if kv)}
    options = [("grpc.default_authority", a.authority)] if a.authority else []
    if a.xds_creds:
        fallback = grpc.experimental.insecure_channel_credentials()
        channel = grpc.secure_channel(a.target, grpc.xds_channel_credentials(fallback), options=options)
    else:
        channel = grpc.insecure_channel(a.target, options=options)
    stub = health_pb2_grpc.HealthStub(channel)
    if a.expect_code:
        return failing(stub, a.calls, a.expect_code, a.timeout)
    if a.settle:
        deadline = time.monotonic() + a.settle_seconds
        window = collections.deque(maxlen=100)
        while True:
            window.append(call(stub))
            if len(window) == window.maxlen and within_5_sigma(collections.Counter(window), len(window), expect):
                break
            if time.monotonic() > deadline:
                print(f"the split never reached {expect}: last {collections.Counter(window)}", file=sys.stderr)
                return 1
    counts = collections.Counter(call(stub) for _ in range(a.calls))
    print(json.dumps({"target": a.target, "calls": a.calls, "counts": counts}))
    return 0 if within_5_sigma(counts, a.calls, expect) else 1


if __name__ == "__main__":
    sys.exit(main())
