//! `mesh top --admin ADDR...`: a live table of the traffic between workloads, read from the
//! admin endpoints' `/graph`: per source → destination workload version, requests per second,
//! the shares of successes, 4xx (denials apart) and 5xx, the edge's health as Kiali rates it,
//! and latency percentiles over the last minute.
//!
//! Each admin is asked for its own graph (`/graph?local=1`) and the answers are merged, so list
//! every workload whose traffic should show; a process listed twice is counted once.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use http::Uri;
use mesh_tower::admin::PeerClient;
use mesh_tower::telemetry::GraphData;

use super::CliError;

/// Watch requests per second, success rate and latency between workloads, live.
#[derive(Debug, Args)]
pub(crate) struct Top {
    /// Admin endpoints to read (`host:port` or `http://host:port`; repeatable).
    #[arg(long = "admin", required = true, num_args = 1..)]
    admins: Vec<String>,
    /// Print one table and exit.
    #[arg(long)]
    once: bool,
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 2.0)]
    interval: f64,
}

impl Top {
    pub(crate) fn run(self) -> Result<ExitCode, CliError> {
        let admins = self
            .admins
            .iter()
            .map(|a| admin_uri(a))
            .collect::<Result<Vec<_>, _>>()?;
        if !(self.interval.is_finite() && self.interval >= 0.1) {
            return Err("--interval must be at least 0.1 seconds".into());
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let client = PeerClient::default();
            loop {
                let graph = client.merged(GraphData::default(), &admins).await;
                let table = render(&graph);
                if self.once {
                    print!("{table}");
                    let reached = graph.peer_errors.len() < admins.len();
                    return Ok(if reached {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    });
                }
                print!("\x1b[2J\x1b[H{table}");
                tokio::time::sleep(Duration::from_secs_f64(self.interval)).await;
            }
        })
    }
}

fn admin_uri(s: &str) -> Result<Uri, CliError> {
    let full = if s.contains("://") {
        s.to_owned()
    } else {
        format!("http://{s}")
    };
    let uri: Uri = full
        .parse()
        .map_err(|e| format!("--admin {s}: not an address: {e}"))?;
    if uri.authority().is_none() {
        return Err(format!("--admin {s}: no host").into());
    }
    Ok(uri)
}

/// Columns of the table.
const COLUMNS: usize = 10;

/// What the columns mean, printed under the table.
const LEGEND: &str = "OK: 1xx-3xx, gRPC OK; 4XX: 4xx and client-side gRPC statuses, DENIED \
(401/403, PERMISSION_DENIED, UNAUTHENTICATED) included; 5XX: 5xx, no response, server-side gRPC \
statuses.\nHEALTH as Kiali rates it by default: degraded when 5xx or gRPC errors > 0% or 4xx > 10%, \
failure when 5xx or gRPC errors > 10% or 4xx > 20%.\n";

/// The table: one row per edge, busiest first, then any admin that could not be read.
pub(crate) fn render(graph: &GraphData) -> String {
    let mut edges: Vec<_> = graph.edges.iter().collect();
    edges.sort_by(|a, b| b.rps.total_cmp(&a.rps).then_with(|| a.id.cmp(&b.id)));
    let rows: Vec<[String; COLUMNS]> = edges
        .iter()
        .map(|e| {
            let h = &e.health;
            [
                e.source.clone(),
                e.destination.clone(),
                format!("{:.2}", e.rps),
                format!("{:.2}", h.success_pct),
                format!("{:.2}", h.client_error_pct),
                format!("{:.2}", h.denied_pct),
                format!("{:.2}", h.server_error_pct),
                h.health.as_str().to_owned(),
                format!("{:.1}", e.p50_ms),
                format!("{:.1}", e.p99_ms),
            ]
        })
        .collect();
    let header = [
        "SOURCE",
        "DESTINATION",
        "RPS",
        "OK%",
        "4XX%",
        "DENIED%",
        "5XX%",
        "HEALTH",
        "P50(ms)",
        "P99(ms)",
    ];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "mesh top: {} edge(s), last {:.0}s, {} process(es)",
        rows.len(),
        graph.window_seconds,
        graph.instances.len()
    );
    let line = |out: &mut String, cells: [&str; COLUMNS]| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            let sep = if i == 0 { "" } else { "  " };
            // Names left-aligned, numbers and the health right-aligned.
            let _ = if i < 2 {
                write!(text, "{sep}{cell:<w$}")
            } else {
                write!(text, "{sep}{cell:>w$}")
            };
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    line(&mut out, header);
    for r in &rows {
        line(&mut out, r.each_ref().map(String::as_str));
    }
    if rows.is_empty() {
        out.push_str("(no requests in the window)\n");
    } else {
        out.push_str(LEGEND);
    }
    for e in &graph.peer_errors {
        let _ = writeln!(out, "error: {e}");
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use mesh_core::telemetry::Reporter;
    use mesh_tower::telemetry::{EdgeHealth, GraphEdge, ResponseCode};

    use super::*;

    fn edge(src: &str, dst: &str, rps: f64, codes: &[(ResponseCode, u64)]) -> GraphEdge {
        let codes: BTreeMap<_, _> = codes.iter().copied().collect();
        GraphEdge {
            id: format!("{src}->{dst}"),
            reporter: Reporter::Source,
            source: src.into(),
            destination: dst.into(),
            requests: codes.values().sum(),
            errors: 0,
            rps,
            error_rate: 0.0,
            p50_ms: 3.25,
            p99_ms: 24.5,
            latency_buckets: vec![],
            response_codes: codes.iter().map(|(c, n)| (c.to_string(), *n)).collect(),
            health: EdgeHealth::of(&codes),
            mtls_requests: 0,
            grpc_requests: 0,
            source_app: "unknown".into(),
            destination_app: "unknown".into(),
        }
    }

    /// Issue #14: a denied edge showed as 100 % success. Successes, 4xx, denials and 5xx are
    /// columns of their own, with Kiali's health and a legend.
    #[test]
    fn renders_busiest_first_with_aligned_columns() {
        use ResponseCode::{Grpc, Http};
        let g = GraphData::from_reported(
            vec!["a".into()],
            60.0,
            vec![
                edge("default/a/v1", "default/b/v1", 1.0, &[(Http(200), 10)]),
                edge(
                    "default/productpage/v1",
                    "default/reviews/v2",
                    12.5,
                    &[(Http(200), 9), (Http(503), 1)],
                ),
                edge("shop/frontend/v1", "shop/payment/v1", 0.5, &[(Grpc(7), 5)]),
            ],
        );
        let t = render(&g);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "mesh top: 3 edge(s), last 60s, 1 process(es)");
        assert!(lines[1].starts_with("SOURCE"));
        assert!(lines[2].starts_with("default/productpage/v1  default/reviews/v2"));
        assert!(lines[2].contains("12.50") && lines[2].contains("90.00"));
        assert!(lines[2].contains(" degraded "), "{}", lines[2]);
        assert!(lines[2].ends_with("24.5"));
        assert!(lines[3].starts_with("default/a/v1"));
        assert!(lines[3].contains("100.00") && lines[3].contains(" healthy "));
        let denied: Vec<&str> = lines[4].split_whitespace().collect();
        assert_eq!(
            denied[2..8],
            ["0.50", "0.00", "100.00", "100.00", "0.00", "failure"],
            "{}",
            lines[4]
        );
        assert_eq!(lines[1].len(), lines[2].len());
        assert!(lines[5].starts_with("OK: "), "the legend: {t}");
        assert_eq!(
            render(&GraphData::default()).lines().nth(2),
            Some("(no requests in the window)")
        );
    }

    #[test]
    fn admin_addresses() {
        assert_eq!(
            admin_uri("127.0.0.1:15000").unwrap().to_string(),
            "http://127.0.0.1:15000/"
        );
        assert!(admin_uri("http://[::1]:15000").is_ok());
        assert!(admin_uri("not a uri").is_err());
    }
}
