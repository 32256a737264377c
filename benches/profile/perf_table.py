#!/usr/bin/env python3
"""Tables of where the CPU goes, from `perf report` of sidecar-tax arms (see profile.sh).

For each arm: self time by crate (mesh, tonic/prost, hyper, h2, rustls, ring, tokio, the
allocator, the kernel, ...) on the client side, the server side and both, as a share of the
arm's samples and as CPU microseconds per request; then the top symbols. Reads, for each arm
NAME given, NAME.samples (perf script -F pid,tid,period,ip,sym,dso --max-stack 1: each sample's leaf),
NAME.log (sidecar-tax's stderr: the server's pid) and NAME.json (sidecar-tax --json: the
requests served), all in the directory given.
"""

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

# Path roots (the first segment of a Rust path in a symbol) and the column they count in.
ROOTS = {
    "mesh_core": "mesh",
    "mesh_tower": "mesh",
    "mesh_tonic": "mesh",
    "tonic": "tonic/prost",
    "tonic_prost": "tonic/prost",
    "prost": "tonic/prost",
    "hyper": "hyper",
    "hyper_util": "hyper",
    "h2": "h2",
    "rustls": "rustls",
    "tokio_rustls": "rustls",
    "webpki": "rustls",
    "ring": "ring",
    "tokio": "tokio",
    "mio": "tokio",
    "http": "http/bytes/tower/axum",
    "http_body": "http/bytes/tower/axum",
    "http_body_util": "http/bytes/tower/axum",
    "bytes": "http/bytes/tower/axum",
    "tower": "http/bytes/tower/axum",
    "tower_service": "http/bytes/tower/axum",
    "axum": "http/bytes/tower/axum",
    "axum_core": "http/bytes/tower/axum",
    "metrics": "metrics",
    "metrics_exporter_prometheus": "metrics",
    "metrics_util": "metrics",
    "sidecar_tax": "load generator, harness",
    "mesh_benches": "load generator, harness",
    "hdrhistogram": "load generator, harness",
}
# Wrappers: a symbol whose first root is one of these is classified by the next root in it
# (`core::ptr::drop_in_place<h2::...>` is h2's).
WRAPPERS = {"core", "std", "alloc", "hashbrown", "futures_util", "futures_core", "pin_project_lite"}
ALLOCATOR = re.compile(
    r"^(__libc_)?(malloc|free|cfree|calloc|realloc|_int_malloc|_int_free|_int_realloc|"
    r"malloc_consolidate|tcache_\w+|unlink_chunk|_int_free_\w+|__rust_alloc|__rust_dealloc|__rust_realloc|"
    r"__rdl_\w+|__rg_\w+)(\.\w+)?$"
)
LIBC_MEM = re.compile(r"^__(memcpy|memmove|memset|memcmp|strlen)\w*|^(memcpy|memmove|memset|memcmp)")
ROOT = re.compile(r"(?:^|[<\s(&,\[*])([a-z_][a-z0-9_]*)::")
HASH = re.compile(r"::h[0-9a-f]{16}$")
COLUMNS = [
    "mesh",
    "tonic/prost",
    "hyper",
    "h2",
    "rustls",
    "ring",
    "tokio",
    "allocator",
    "memcpy & co.",
    "std/core",
    "http/bytes/tower/axum",
    "metrics",
    "load generator, harness",
    "kernel",
    "other",
]


def classify(dso: str, kind: str, symbol: str) -> str:
    """The column of one symbol."""
    # glibc's versioned and compiler-cloned names: `cfree@GLIBC_2.2.5`, `unlink_chunk.constprop.0`.
    symbol = re.sub(r"@.*$|\.(constprop|isra|part|cold)\.\d+$", "", symbol)
    if kind == "k" or dso.startswith("[kernel"):
        return "kernel"
    if ALLOCATOR.match(symbol):
        return "allocator"
    if LIBC_MEM.match(symbol):
        return "memcpy & co."
    if symbol.startswith("ring_core_") or symbol.startswith("GFp_"):
        return "ring"
    roots = ROOT.findall(symbol)
    for root in roots:
        if root in WRAPPERS:
            continue
        return ROOTS.get(root, "other")
    if roots:
        if any(r == "alloc" for r in roots) and re.search(r"alloc::(alloc|raw_vec)::", symbol):
            return "allocator"
        return "std/core"
    return "other"


def parse_samples(path: Path):
    """[(pid, dso, kind, symbol, period ns)] of the samples in a `perf script -F
    pid,tid,period,ip,sym,dso --max-stack 1` file: a `pid/tid period` line, then the leaf."""
    rows = []
    head = None
    for line in path.read_text(errors="replace").splitlines():
        m = re.match(r"^\s*(\d+)/(\d+)\s+(\d+)\s*$", line)
        if m:
            head = (int(m.group(1)), int(m.group(3)))
            continue
        m = re.match(r"^\s+[0-9a-f]+ (.*) \((.*)\)$", line)
        if m and head:
            symbol, dso = m.group(1).strip(), m.group(2)
            kind = "k" if dso.startswith("[kernel") else "."
            rows.append((head[0], dso, kind, HASH.sub("", symbol), head[1]))
            head = None
    return rows


def server_pids(log: Path) -> set:
    """The pids of the arm's server side, from the `  server (mode) (pid N)` lines."""
    pids = set()
    for line in log.read_text(errors="replace").splitlines():
        m = re.match(r"\s+(.*) \(pid (\d+)\)$", line)
        if m and ("server" in m.group(1)):
            pids.add(int(m.group(2)))
    return pids


def requests(report_json: Path) -> float:
    """Requests the arm served in the recorded run: open loop + closed loop (warm-up aside)."""
    data = json.loads(report_json.read_text())
    arm = data["arms"][0]
    n = 0.0
    for rep in arm["repetitions"]:
        n += data["rate"] * data["open_loop_seconds"]
        n += rep["peak_rps"] * data["closed_loop_seconds"]
    return n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dir", type=Path)
    parser.add_argument("arms", nargs="+")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()

    by_arm = {}
    for arm in args.arms:
        rows = parse_samples(args.dir / f"{arm}.samples")
        total_ns = sum(r[4] for r in rows) or 1
        servers = server_pids(args.dir / f"{arm}.log")
        n = requests(args.dir / f"{arm}.json")
        side = defaultdict(float)  # (column, side) -> share
        symbols = defaultdict(float)  # (side, column, symbol) -> share
        for pid, dso, kind, symbol, period in rows:
            share = period / total_ns
            where = "server" if pid in servers else "client"
            column = classify(dso, kind, symbol)
            side[(column, where)] += share
            symbols[(where, column, symbol)] += share
        by_arm[arm] = (total_ns, n, side, symbols)

    print("### Self time by crate (share of the arm's samples; ≈ CPU µs per request)\n")
    header = "| crate |" + "".join(f" {a} client | {a} server | {a} µs/req |" for a in args.arms)
    print(header)
    print("| --- |" + " ---: | ---: | ---: |" * len(args.arms))
    totals = {}
    for column in COLUMNS:
        cells = []
        for arm in args.arms:
            total_ns, n, side, _ = by_arm[arm]
            c, s = side[(column, "client")], side[(column, "server")]
            us = (c + s) * total_ns / 1000.0 / max(n, 1.0)
            totals.setdefault(arm, [0.0, 0.0, 0.0])
            totals[arm][0] += c
            totals[arm][1] += s
            totals[arm][2] += us
            cells.append(f" {100 * c:.1f} % | {100 * s:.1f} % | {us:.1f} |")
        print(f"| {column} |" + "".join(cells))
    print(
        "| **total** |"
        + "".join(
            f" {100 * t[0]:.1f} % | {100 * t[1]:.1f} % | {t[2]:.1f} |"
            for t in (totals[a] for a in args.arms)
        )
    )
    for arm in args.arms:
        total_ns, n, _, symbols = by_arm[arm]
        print(f"\n### Top symbols, arm {arm} ({n:.0f} requests, {total_ns / 1e9:.1f} CPU s)\n")
        print("| self | side | crate | symbol |\n| ---: | --- | --- | --- |")
        top = sorted(symbols.items(), key=lambda kv: -kv[1])[: args.top]
        for (where, column, symbol), share in top:
            short = symbol if len(symbol) <= 110 else symbol[:107] + "..."
            short = short.replace("|", "\\|")
            print(f"| {100 * share:.2f} % | {where} | {column} | `{short}` |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
