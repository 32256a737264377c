//! The summary printed on exit: per-edge traffic from the service graph, the canary split the
//! load generator observed, and the calls the AuthorizationPolicy denied; as a table or as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use mesh_tower::telemetry::{EdgeHealth, GraphData};
use serde::Serialize;

use super::loadgen::{LoadStats, Split};

/// One caller → callee edge of the service graph.
#[derive(Clone, Debug, Serialize)]
pub struct Edge {
    /// Calling workload.
    pub source: String,
    /// Called workload.
    pub destination: String,
    /// Requests.
    pub requests: u64,
    /// Failed requests (5xx, and gRPC statuses that mean the server failed), as Istio counts
    /// them; denials (403 / PERMISSION_DENIED) are the caller's error, not failures.
    pub errors: u64,
    /// `100 × (requests − errors) / requests`: Istio's success rate, where a denial is the
    /// caller's error and not a failure.
    pub success_pct: f64,
    /// Successes, 4xx, denials and 5xx apart, and the edge's health as Kiali rates it: a
    /// denied edge is not green.
    pub health: EdgeHealth,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
}

/// The split observed while some weights were in force.
#[derive(Clone, Debug, Serialize)]
pub struct Phase {
    /// The weights checkout routed by.
    pub weights: Weights,
    /// The versions that answered.
    pub split: Split,
}

/// Canary weights, percent.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Weights {
    /// Subset v1.
    pub v1: u32,
    /// Subset v2.
    pub v2: u32,
}

/// Orders as the load generator saw them.
#[derive(Clone, Debug, Serialize)]
pub struct Orders {
    /// Requests sent (orders and direct payment calls).
    pub sent: u64,
    /// Orders answered.
    pub ok: u64,
    /// Requests that failed, by reason (a denied direct payment call is not a failure).
    pub failed: BTreeMap<String, u64>,
    /// Ticks skipped because too many requests were in flight.
    pub skipped: u64,
}

/// The whole summary.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// How long the load ran, seconds.
    pub duration_s: f64,
    /// Target requests per second.
    pub rps: u32,
    /// The load generator's view.
    pub orders: Orders,
    /// Per-edge traffic from the service graph.
    pub edges: Vec<Edge>,
    /// Plain orders per inventory version, over the whole run.
    pub split: Split,
    /// The same, per canary weights in force (one entry per weights seen).
    pub canary: Vec<Phase>,
    /// Orders sent as `end-user: jason`, per inventory version (all should be v2).
    pub header_route: Split,
    /// Direct frontend → payment calls attempted.
    pub direct_payment_calls: u64,
    /// Of those, denied with PERMISSION_DENIED.
    pub denied: u64,
}

impl Summary {
    /// A summary from the load generator's stats and the service graph.
    pub fn new(duration_s: f64, rps: u32, stats: &LoadStats, graph: &GraphData) -> Self {
        Self {
            duration_s,
            rps,
            orders: Orders {
                sent: stats.sent,
                ok: stats.orders_ok,
                failed: stats.failures.clone(),
                skipped: stats.skipped,
            },
            edges: edges(graph),
            split: stats.split(),
            canary: stats
                .canary
                .iter()
                .map(|((v1, v2), split)| Phase {
                    weights: Weights { v1: *v1, v2: *v2 },
                    split: *split,
                })
                .collect(),
            header_route: stats.jason,
            direct_payment_calls: stats.direct_payment,
            denied: stats.denied,
        }
    }

    /// The summary as a table.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let failed: u64 = self.orders.failed.values().sum();
        let _ = writeln!(
            out,
            "\nshop: {:.1} s at {} rps: {} requests sent, {} orders, {} failed",
            self.duration_s, self.rps, self.orders.sent, self.orders.ok, failed
        );
        for (reason, n) in &self.orders.failed {
            let _ = writeln!(out, "  failed: {n} × {reason}");
        }
        let _ = writeln!(
            out,
            "\n{:<14} {:<14} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9}",
            "source",
            "destination",
            "requests",
            "ok",
            "4xx",
            "denied",
            "5xx",
            "health",
            "p50 ms",
            "p99 ms"
        );
        for e in &self.edges {
            let h = &e.health;
            let _ = writeln!(
                out,
                "{:<14} {:<14} {:>9} {:>7.2}% {:>7.2}% {:>7.2}% {:>7.2}% {:>9} {:>9.2} {:>9.2}",
                e.source,
                e.destination,
                e.requests,
                h.success_pct,
                h.client_error_pct,
                h.denied_pct,
                h.server_error_pct,
                h.health.as_str(),
                e.p50_ms,
                e.p99_ms
            );
        }
        let _ = writeln!(
            out,
            "(4xx includes the denials: 401/403, PERMISSION_DENIED, UNAUTHENTICATED; 5xx: 5xx, no \
             response, server-side gRPC statuses; health as Kiali rates it by default: degraded when \
             5xx or gRPC errors > 0% or 4xx > 10%, failure when 5xx or gRPC errors > 10% or 4xx > 20%)"
        );
        let total = (self.split.v1 + self.split.v2).max(1) as f64;
        let _ = writeln!(
            out,
            "\ncanary split: v1 {} ({:.1}%), v2 {} ({:.1}%)",
            self.split.v1,
            100.0 * self.split.v1 as f64 / total,
            self.split.v2,
            100.0 * self.split.v2 as f64 / total
        );
        for p in &self.canary {
            let n = (p.split.v1 + p.split.v2).max(1) as f64;
            let _ = writeln!(
                out,
                "  while weights were {}/{}: v1 {} ({:.1}%), v2 {} ({:.1}%)",
                p.weights.v1,
                p.weights.v2,
                p.split.v1,
                100.0 * p.split.v1 as f64 / n,
                p.split.v2,
                100.0 * p.split.v2 as f64 / n
            );
        }
        let _ = writeln!(
            out,
            "end-user: jason → v2: {} of {}",
            self.header_route.v2,
            self.header_route.v1 + self.header_route.v2
        );
        let _ = writeln!(
            out,
            "frontend → payment directly: {} of {} denied (PERMISSION_DENIED by AuthorizationPolicy shop/payment)",
            self.denied, self.direct_payment_calls
        );
        out
    }
}

/// The graph's edges (the caller's report where there is one), named by workload.
fn edges(graph: &GraphData) -> Vec<Edge> {
    graph
        .edges
        .iter()
        .map(|e| Edge {
            source: workload(&e.source),
            destination: workload(&e.destination),
            requests: e.requests,
            errors: e.errors,
            success_pct: if e.requests == 0 {
                0.0
            } else {
                100.0 * (e.requests - e.errors) as f64 / e.requests as f64
            },
            health: e.health,
            p50_ms: e.p50_ms,
            p99_ms: e.p99_ms,
        })
        .collect()
}

/// `ns/workload/version` → `workload`.
fn workload(node: &str) -> String {
    node.split('/').nth(1).unwrap_or(node).to_owned()
}
