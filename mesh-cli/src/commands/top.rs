//! `mesh top --admin ADDR...`: a live table of the traffic between workloads, read from the
//! admin endpoints' `/graph`: per source → destination workload version, requests per second,
//! success rate and latency percentiles over the last minute.
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

/// The table: one row per edge, busiest first, then any admin that could not be read.
pub(crate) fn render(graph: &GraphData) -> String {
    let mut edges: Vec<_> = graph.edges.iter().collect();
    edges.sort_by(|a, b| b.rps.total_cmp(&a.rps).then_with(|| a.id.cmp(&b.id)));
    let rows: Vec<[String; 6]> = edges
        .iter()
        .map(|e| {
            [
                e.source.clone(),
                e.destination.clone(),
                format!("{:.2}", e.rps),
                format!("{:.2}", 100.0 * (1.0 - e.error_rate)),
                format!("{:.1}", e.p50_ms),
                format!("{:.1}", e.p99_ms),
            ]
        })
        .collect();
    let header = [
        "SOURCE",
        "DESTINATION",
        "RPS",
        "SUCCESS%",
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
    let line = |out: &mut String, cells: [&str; 6]| {
        let _ = writeln!(
            out,
            "{:<w0$}  {:<w1$}  {:>w2$}  {:>w3$}  {:>w4$}  {:>w5$}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            cells[5],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
            w4 = widths[4],
            w5 = widths[5],
        );
    };
    line(&mut out, header);
    for r in &rows {
        line(&mut out, [&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]);
    }
    if rows.is_empty() {
        out.push_str("(no requests in the window)\n");
    }
    for e in &graph.peer_errors {
        let _ = writeln!(out, "error: {e}");
    }
    out
}

#[cfg(test)]
mod tests {
    use mesh_core::telemetry::Reporter;
    use mesh_tower::telemetry::GraphEdge;

    use super::*;

    fn edge(src: &str, dst: &str, rps: f64, err: f64) -> GraphEdge {
        GraphEdge {
            id: format!("{src}->{dst}"),
            reporter: Reporter::Source,
            source: src.into(),
            destination: dst.into(),
            requests: 10,
            errors: 1,
            rps,
            error_rate: err,
            p50_ms: 3.25,
            p99_ms: 24.5,
            latency_buckets: vec![],
        }
    }

    #[test]
    fn renders_busiest_first_with_aligned_columns() {
        let g = GraphData::from_reported(
            vec!["a".into()],
            60.0,
            vec![
                edge("default/a/v1", "default/b/v1", 1.0, 0.0),
                edge("default/productpage/v1", "default/reviews/v2", 12.5, 0.1),
            ],
        );
        let t = render(&g);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "mesh top: 2 edge(s), last 60s, 1 process(es)");
        assert!(lines[1].starts_with("SOURCE"));
        assert!(lines[2].starts_with("default/productpage/v1  default/reviews/v2"));
        assert!(lines[2].contains("12.50") && lines[2].contains("90.00"));
        assert!(lines[2].ends_with("24.5"));
        assert!(lines[3].starts_with("default/a/v1"));
        assert_eq!(lines[1].len(), lines[2].len());
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
