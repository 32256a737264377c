use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use mesh_core::Workload;
use mesh_core::model::ServiceKey;
use mesh_core::telemetry::{
    PeerWorkload, Reporter, RequestProtocol, RequestRecord, ResponseFlag, request_labels,
};
use tokio::time::Instant;

use super::*;

fn workload(name: &str, version: &str) -> PeerWorkload {
    PeerWorkload::from_workload(
        &Workload::new("shop", name).labels([("app", name), ("version", version)]),
        "Kubernetes",
    )
}

fn record(reporter: Reporter, code: u16, ms: u64) -> RequestRecord {
    let mut r = RequestRecord::new(reporter, SystemTime::UNIX_EPOCH);
    r.method = "GET".into();
    r.path = "/reviews/1?token=secret".into();
    r.authority = "reviews:9080".into();
    r.response_code = Some(code);
    r.duration = Duration::from_millis(ms);
    r.request_bytes = 10;
    r.response_bytes = 2000;
    r.source = workload("frontend", "v1");
    r.destination = workload("reviews", "v2");
    r.destination_service = Some(ServiceKey {
        host: "reviews.shop.svc.cluster.local".into(),
        namespace: "shop".into(),
        port: 9080,
        subset: None,
    });
    r
}

fn render(f: impl FnOnce()) -> String {
    let recorder = prometheus_builder().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, f);
    handle.render()
}

fn sample_lines<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .collect()
}

#[test]
fn records_istio_metrics_for_both_reporters() {
    let text = render(|| {
        let m = RequestMetrics::default();
        for reporter in [Reporter::Source, Reporter::Destination] {
            let r = record(reporter, 200, 7);
            m.record(&request_labels(&r), &r);
            m.record(&request_labels(&r), &r);
        }
        assert_eq!(m.series(), 2);
    });
    let totals = sample_lines(&text, "istio_requests_total");
    assert_eq!(totals.len(), 2, "{text}");
    for l in &totals {
        assert!(l.ends_with(" 2"), "{l}");
        assert!(l.contains("destination_service_name=\"reviews\""), "{l}");
        assert!(l.contains("source_workload=\"frontend\""), "{l}");
        assert!(!l.contains("/reviews/1"), "no raw path in labels: {l}");
    }
    assert!(totals.iter().any(|l| l.contains("reporter=\"source\"")));
    assert!(
        totals
            .iter()
            .any(|l| l.contains("reporter=\"destination\""))
    );
    // Istio's buckets: 7 ms falls in le="10" and above, not in le="5".
    let buckets = sample_lines(&text, "istio_request_duration_milliseconds_bucket");
    assert!(
        buckets
            .iter()
            .any(|l| l.contains("le=\"0.5\"") && l.ends_with(" 0"))
    );
    assert!(
        buckets
            .iter()
            .any(|l| l.contains("le=\"5\"") && l.ends_with(" 0"))
    );
    assert!(
        buckets
            .iter()
            .any(|l| l.contains("le=\"10\"") && l.ends_with(" 2"))
    );
    assert!(buckets.iter().any(|l| l.contains("le=\"3600000\"")));
    let bytes = sample_lines(&text, "istio_response_bytes_bucket");
    assert!(
        bytes
            .iter()
            .any(|l| l.contains("le=\"1000\"") && l.ends_with(" 0"))
    );
    assert!(
        bytes
            .iter()
            .any(|l| l.contains("le=\"10000\"") && l.ends_with(" 2"))
    );
    assert_eq!(sample_lines(&text, "istio_request_bytes_count").len(), 2);
}

/// 100,000 requests with distinct paths and authorities make one series, not 100,000.
#[test]
fn distinct_paths_and_authorities_do_not_grow_series() {
    let text = render(|| {
        let m = RequestMetrics::default();
        for i in 0..100_000u32 {
            let mut r = record(Reporter::Destination, 200, 1);
            r.path = format!("/item/{i}?q={i}");
            r.authority = format!("host-{i}.example:80");
            m.record(&request_labels(&r), &r);
        }
        assert_eq!(m.series(), 1);
    });
    let totals = sample_lines(&text, "istio_requests_total");
    assert_eq!(totals.len(), 1);
    assert!(totals[0].ends_with(" 100000"), "{}", totals[0]);
}

/// A peer inventing a new workload name per request fills the cache once, then is recorded
/// as `unknown`.
#[test]
fn peer_chosen_names_are_capped() {
    let text = render(|| {
        let m = RequestMetrics::with_capacity(50);
        for i in 0..2_000u32 {
            let mut r = record(Reporter::Destination, 200, 1);
            r.source.name = Some(format!("w{i}"));
            m.record(&request_labels(&r), &r);
        }
        assert_eq!(m.series(), 51);
    });
    assert_eq!(sample_lines(&text, "istio_requests_total").len(), 51);
    let overflow = text
        .lines()
        .find(|l| l.starts_with(LABEL_OVERFLOW_TOTAL))
        .unwrap();
    assert!(overflow.ends_with(" 1950"), "{overflow}");
    let unknown = sample_lines(&text, "istio_requests_total")
        .into_iter()
        .find(|l| l.contains("source_workload=\"unknown\""))
        .unwrap();
    assert!(unknown.ends_with(" 1950"), "{unknown}");
}

#[tokio::test(start_paused = true)]
async fn graph_rates_and_quantiles() {
    let g = ServiceGraph::new(GraphWindow {
        slot: Duration::from_secs(10),
        slots: 6,
    });
    tokio::time::advance(Duration::from_secs(60)).await;
    for i in 0..100u64 {
        let code = if i < 10 { 503 } else { 200 };
        g.record(&record(Reporter::Source, code, 1 + i % 3), Instant::now());
    }
    for _ in 0..30 {
        g.record(&record(Reporter::Destination, 200, 2), Instant::now());
    }
    let data = g.snapshot(Instant::now());
    assert_eq!(data.nodes.len(), 2);
    assert_eq!(data.nodes[0].id, "shop/frontend/v1");
    assert_eq!(data.reported.len(), 2);
    assert_eq!(data.edges.len(), 1);
    let e = &data.edges[0];
    assert_eq!(e.id, "shop/frontend/v1->shop/reviews/v2");
    assert_eq!(e.reporter, Reporter::Source, "the source's report wins");
    assert_eq!(e.requests, 100);
    assert_eq!(e.errors, 10);
    assert!((e.rps - 100.0 / 60.0).abs() < 1e-9, "{}", e.rps);
    assert!((e.error_rate - 0.1).abs() < 1e-9);
    // 1..=3 ms: all in the (1, 5] bucket except the 1 ms ones in (0.5, 1].
    assert!(e.p50_ms > 1.0 && e.p50_ms <= 5.0, "{}", e.p50_ms);
    assert!(e.p99_ms > e.p50_ms && e.p99_ms <= 5.0, "{}", e.p99_ms);
    // After the window, the edge is gone.
    tokio::time::advance(Duration::from_secs(61)).await;
    let later = g.snapshot(Instant::now());
    assert!(later.edges.is_empty());
    assert!(later.nodes.is_empty());
}

/// Issue #14: an edge whose every call is refused (PERMISSION_DENIED) showed as 100 % green.
/// The graph now keeps the response codes and rates the edge as Kiali does (see `health.rs`).
#[tokio::test(start_paused = true)]
async fn graph_shows_denials_apart_from_success() {
    let g = ServiceGraph::default();
    tokio::time::advance(Duration::from_secs(60)).await;
    for _ in 0..20 {
        let mut r = record(Reporter::Source, 200, 1);
        r.protocol = RequestProtocol::Grpc;
        r.grpc_status = Some(7);
        g.record(&r, Instant::now());
    }
    let data = g.snapshot(Instant::now());
    let e = &data.edges[0];
    assert_eq!(
        e.errors, 0,
        "a denial is not a server error, as Istio counts it"
    );
    assert_eq!(e.response_codes.get("PERMISSION_DENIED"), Some(&20));
    assert_eq!(e.health.success_pct, 0.0);
    assert_eq!(e.health.denied_pct, 100.0);
    assert_eq!(e.health.health, Health::Failure);
    // The breakdown survives the JSON peers exchange and merging.
    let json = serde_json::to_string(&data).unwrap();
    let back: GraphData = serde_json::from_str(&json).unwrap();
    let merged = GraphData::merge([back]);
    assert_eq!(merged.edges[0].health, e.health);
    assert_eq!(merged.edges[0].response_codes, e.response_codes);
}

/// Issue #14: calls to a service that is down have no destination workload (no answer, so no
/// peer metadata); they were drawn to an anonymous `unknown` node. They go to the service's
/// node, named as `destination_service` names it, as Kiali draws a service node.
#[tokio::test(start_paused = true)]
async fn failed_calls_land_on_the_service_node() {
    let g = ServiceGraph::default();
    tokio::time::advance(Duration::from_secs(60)).await;
    for _ in 0..3 {
        let mut r = record(Reporter::Source, 503, 1);
        r.destination = PeerWorkload::default();
        r.response_flags = vec![ResponseFlag::UpstreamConnectionFailure];
        g.record(&r, Instant::now());
    }
    let data = g.snapshot(Instant::now());
    let e = &data.edges[0];
    assert_eq!(e.destination, "shop/reviews.shop.svc.cluster.local/*");
    let node = data.nodes.iter().find(|n| n.id == e.destination).unwrap();
    assert_eq!(node.kind, NodeKind::Service);
    assert_eq!(e.health.server_error_pct, 100.0);
    // Without a service either, the callee stays unknown.
    let mut r = record(Reporter::Source, 503, 1);
    r.destination = PeerWorkload::default();
    r.destination_service = None;
    g.record(&r, Instant::now());
    let data = g.snapshot(Instant::now());
    let unknown = data.nodes.iter().find(|n| n.workload == "unknown").unwrap();
    assert_eq!(unknown.kind, NodeKind::Unknown);
}

/// The map's time range: only the windows the range covers count.
#[tokio::test(start_paused = true)]
async fn graph_time_range_keeps_the_recent_windows() {
    let g = ServiceGraph::default();
    tokio::time::advance(Duration::from_secs(60)).await;
    for _ in 0..5 {
        g.record(&record(Reporter::Source, 200, 1), Instant::now());
    }
    tokio::time::advance(Duration::from_secs(30)).await;
    for _ in 0..2 {
        g.record(&record(Reporter::Source, 200, 1), Instant::now());
    }
    let all = g.snapshot(Instant::now());
    assert_eq!(all.edges[0].requests, 7);
    let recent = g.snapshot_range(Instant::now(), Some(Duration::from_secs(10)));
    assert_eq!(recent.window_seconds, 10.0);
    assert_eq!(recent.edges[0].requests, 2);
    assert!(
        (recent.edges[0].rps - 0.2).abs() < 1e-9,
        "{}",
        recent.edges[0].rps
    );
    // Longer than what is kept: everything kept.
    let long = g.snapshot_range(Instant::now(), Some(Duration::from_secs(3600)));
    assert_eq!(long.window_seconds, 60.0);
    assert_eq!(long.edges[0].requests, 7);
}

#[test]
fn quantile_interpolates_within_buckets() {
    let mut b = vec![0u64; LATENCY_BUCKETS];
    b[4] = 100; // (10, 25]
    assert!((quantile(&b, 0.5) - 17.5).abs() < 1e-9);
    assert_eq!(quantile(&[0; LATENCY_BUCKETS], 0.99), 0.0);
    let mut over = vec![0u64; LATENCY_BUCKETS];
    over[LATENCY_BUCKETS - 1] = 1;
    assert_eq!(quantile(&over, 0.5), 3_600_000.0);
}

#[tokio::test(start_paused = true)]
async fn graphs_merge_without_double_counting() {
    let a = ServiceGraph::default();
    let b = ServiceGraph::default();
    let c = ServiceGraph::default();
    tokio::time::advance(Duration::from_secs(60)).await;
    for _ in 0..40 {
        a.record(&record(Reporter::Source, 200, 3), Instant::now());
    }
    for _ in 0..60 {
        b.record(&record(Reporter::Source, 500, 300), Instant::now());
    }
    // The server's view of the same calls, reported by a third process.
    for _ in 0..100 {
        c.record(&record(Reporter::Destination, 200, 1), Instant::now());
    }
    let (a, b, c) = (
        a.snapshot(Instant::now()),
        b.snapshot(Instant::now()),
        c.snapshot(Instant::now()),
    );
    let merged = GraphData::merge([a.clone(), b, c, a.clone()]);
    assert_eq!(merged.instances.len(), 3);
    assert_eq!(merged.edges.len(), 1);
    let e = &merged.edges[0];
    assert_eq!(e.reporter, Reporter::Source);
    assert_eq!(e.requests, 100, "a listed twice counts once");
    assert_eq!(e.errors, 60);
    assert!((e.rps - 100.0 / 60.0).abs() < 1e-9);
    assert!(e.p99_ms > 250.0 && e.p99_ms <= 500.0, "{}", e.p99_ms);
    assert_eq!(merged.reported.len(), 2);
    // Round-trips through JSON (what peers exchange).
    let json = serde_json::to_string(&merged).unwrap();
    let back: GraphData = serde_json::from_str(&json).unwrap();
    assert_eq!(back.instances, merged.instances);
    assert_eq!(back.reported.len(), merged.reported.len());
    assert_eq!(back.edges[0].latency_buckets, e.latency_buckets);
    assert!((back.edges[0].rps - e.rps).abs() < 1e-9);
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn access_log(mode: AccessLogMode, records: &[RequestRecord]) -> Vec<serde_json::Value> {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        for r in records {
            log_request(mode, r);
        }
    });
    let bytes = capture.0.lock().unwrap().clone();
    String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn access_log_records_what_an_auditor_asks_for() {
    let mut r = record(Reporter::Destination, 200, 42);
    r.start = SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_463_516_123);
    r.path = "/a/../reviews//1?token=secret".into();
    r.source_principal = Some("spiffe://cluster.local/ns/shop/sa/frontend".into());
    r.request_id = Some("b0f7c7a4-0000-4000-8000-000000000001".into());
    r.peer_address = Some("10.0.0.7:51234".into());
    let events = access_log(AccessLogMode::All, &[r]);
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e["target"], ACCESS_LOG_TARGET);
    assert_eq!(e["start_time"], "2025-11-30T00:45:16.123Z");
    assert_eq!(e["method"], "GET");
    assert_eq!(e["path"], "/reviews/1", "normalised, no query");
    assert_eq!(e["authority"], "reviews:9080");
    assert_eq!(e["status"], 200);
    assert_eq!(e["duration_ms"], 42);
    assert_eq!(e["bytes_received"], 10);
    assert_eq!(e["bytes_sent"], 2000);
    assert_eq!(e["response_flags"], "-");
    assert_eq!(e["reporter"], "destination");
    assert_eq!(
        e["source_principal"],
        "spiffe://cluster.local/ns/shop/sa/frontend"
    );
    assert_eq!(e["request_id"], "b0f7c7a4-0000-4000-8000-000000000001");
    assert_eq!(e["peer_address"], "10.0.0.7:51234");
    assert!(!e.to_string().contains("secret"));
}

#[test]
fn access_log_modes() {
    let ok = record(Reporter::Source, 200, 1);
    let mut failed = record(Reporter::Source, 503, 1);
    failed.response_flags = vec![ResponseFlag::NoHealthyUpstream];
    failed.protocol = RequestProtocol::Grpc;
    failed.grpc_status = Some(14);
    let all = [ok.clone(), failed.clone()];
    assert_eq!(access_log(AccessLogMode::Off, &all).len(), 0);
    let errors = access_log(AccessLogMode::ErrorsOnly, &all);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["response_flags"], "UH");
    assert_eq!(errors[0]["grpc_status"], 14);
    assert_eq!(access_log(AccessLogMode::All, &all).len(), 2);
}

/// `istio_build` as Istio's proxies export it (istio_stats.cc `recordVersion`): labels
/// `component` and `tag`, value 1.
#[test]
fn istio_build_gauge() {
    let text = render(record_build_metric);
    let lines = sample_lines(&text, ISTIO_BUILD);
    assert_eq!(
        lines,
        [format!(
            "istio_build{{component=\"proxy\",tag=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )],
        "{text}"
    );
}

/// The client's line in Istio's default text format (istio telemetry_logging.go
/// `EnvoyTextLogFormat`): upstream host and cluster, the flags of a call whose retries ran out
/// after connection failures, and the details Envoy gives them.
#[test]
fn istio_text_line_of_a_client_call() {
    let mut r = record(Reporter::Source, 503, 12);
    r.start = SystemTime::UNIX_EPOCH + Duration::from_millis(1_500);
    r.request_bytes = 0;
    r.response_bytes = 91;
    r.response_flags = vec![
        ResponseFlag::UpstreamConnectionFailure,
        ResponseFlag::UpstreamRetryLimitExceeded,
    ];
    r.request_id = Some("r-1".into());
    r.peer_address = Some("10.0.0.7:9080".into());
    r.upstream_cluster = Some(mesh_core::model::ClusterName::new(
        "outbound|9080|v2|reviews.shop.svc.cluster.local",
    ));
    r.details.http_version = Some("HTTP/2");
    r.details.user_agent = Some("grpc-go/1.60".into());
    assert_eq!(
        istio_text_line(&r),
        "[1970-01-01T00:00:01.500Z] \"GET /reviews/1 HTTP/2\" 503 UF,URX \
         upstream_reset_before_response_started{connection_failure} - \"-\" 0 91 12 - \"-\" \
         \"grpc-go/1.60\" \"r-1\" \"reviews:9080\" \"10.0.0.7:9080\" \
         outbound|9080|v2|reviews.shop.svc.cluster.local - - - - -"
    );
    r.response_flags.clear();
    r.response_code = Some(200);
    assert_eq!(response_code_details(&r), "via_upstream");
    r.details.response_code_details = Some("rbac_access_denied".into());
    assert_eq!(response_code_details(&r), "rbac_access_denied");
}

#[test]
fn rfc3339_dates() {
    assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
    assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
}

#[test]
fn telemetry_records_everywhere() {
    let t = Telemetry::new().access_log(AccessLogMode::Off);
    let text = render(|| t.record(&record(Reporter::Source, 200, 1)));
    assert_eq!(sample_lines(&text, "istio_requests_total").len(), 1);
    assert_eq!(t.request_metrics().series(), 1);
    assert_eq!(t.service_graph().snapshot(Instant::now()).edges.len(), 1);
}

#[test]
fn header_facts_and_metadata_exchange() {
    use ::http::HeaderMap;
    use mesh_core::telemetry::PeerMetadata;

    let mut h = HeaderMap::new();
    assert_eq!(request_protocol(&h), RequestProtocol::Http);
    for (ct, proto) in [
        ("application/grpc", RequestProtocol::Grpc),
        ("application/grpc+proto", RequestProtocol::Grpc),
        ("application/grpc;charset=utf-8", RequestProtocol::Grpc),
        ("application/grpcx", RequestProtocol::Http),
        ("application/json", RequestProtocol::Http),
    ] {
        h.insert("content-type", ct.parse().unwrap());
        assert_eq!(request_protocol(&h), proto, "{ct}");
    }
    assert_eq!(grpc_status(&h), None);
    h.insert("grpc-status", "14".parse().unwrap());
    assert_eq!(grpc_status(&h), Some(14));

    let me = Workload::new("shop", "frontend").labels([("app", "frontend"), ("version", "v1")]);
    let (value, id) = peer_metadata_headers(
        &PeerMetadata::from_workload(&me, "Kubernetes"),
        "cluster.local",
    )
    .unwrap();
    let mut req = HeaderMap::new();
    insert_peer_metadata(&mut req, &value, &id);
    assert_eq!(
        req["x-envoy-peer-metadata-id"],
        "sidecar~0.0.0.0~frontend.shop~shop.svc.cluster.local"
    );
    let peer = peer_workload(&req).unwrap();
    assert_eq!(peer, workload("frontend", "v1"));
    remove_peer_metadata(&mut req);
    assert!(req.is_empty());
    req.insert("x-envoy-peer-metadata", "%%%garbage".parse().unwrap());
    assert_eq!(peer_workload(&req), None);
}

#[test]
fn config_gauges_follow_the_mesh_status() {
    use mesh_core::model::Snapshot;
    use mesh_core::{BuildContext, Mesh, istio};

    let ctx = BuildContext::default();
    let mesh = Mesh::from_snapshot(ctx.clone(), Snapshot::empty());
    let gauge = |text: &str, name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap()
    };
    let text = render(|| record_config_metrics(&mesh));
    assert_eq!(gauge(&text, CONFIG_REJECTED), 0.0);
    assert_eq!(gauge(&text, CONFIG_APPLIED), 1.0);
    assert!(gauge(&text, CONFIG_APPLIED_TIMESTAMP) > 1.7e9);
    // Weights are relative; only a total of 0 across several destinations is invalid.
    let bad = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [r]\n  http:\n  - route:\n    - destination: {host: r, subset: a}\n      weight: 0\n    - destination: {host: r, subset: b}\n      weight: 0\n";
    mesh.reject(istio::load_str("bad.yaml", bad, &ctx).unwrap_err());
    let text = render(|| record_config_metrics(&mesh));
    assert_eq!(gauge(&text, CONFIG_REJECTED), 1.0);
    assert_eq!(gauge(&text, CONFIG_REJECTED_COUNT), 1.0);
    assert_eq!(gauge(&text, CONFIG_CLUSTERS), 0.0);
}

/// `record_request` (labels looked up by record) writes byte-for-byte the series `record`
/// (labels computed first) writes, over records that share and differ in label facts.
#[test]
fn record_request_matches_record() {
    let records: Vec<RequestRecord> = (0..300u32)
        .map(|i| {
            let mut r = record(
                [Reporter::Source, Reporter::Destination][(i % 2) as usize],
                [200, 404, 503][(i % 3) as usize],
                u64::from(i % 7),
            );
            r.path = format!("/item/{i}");
            if i % 5 == 0 {
                r.protocol = RequestProtocol::Grpc;
                r.grpc_status = Some((i % 17) as i32);
            }
            if i % 11 == 0 {
                r.response_flags.push(ResponseFlag::UpstreamRequestTimeout);
            }
            r.source.name = Some(format!("w{}", i % 13));
            r
        })
        .collect();
    let by_labels = render(|| {
        let m = RequestMetrics::with_capacity(40);
        for r in &records {
            m.record(&request_labels(r), r);
        }
    });
    let by_record = render(|| {
        let m = RequestMetrics::with_capacity(40);
        for r in &records {
            m.record_request(r);
        }
    });
    assert!(by_labels.contains(LABEL_OVERFLOW_TOTAL), "{by_labels}");
    // The exporter's family order is not fixed; the lines are.
    let sorted = |text: &str| {
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        lines.sort();
        lines
    };
    assert_eq!(sorted(&by_labels), sorted(&by_record));
}

/// The same cap as `record`: every overflowing request counts, none is cached as its own.
#[test]
fn record_request_caps_peer_chosen_names() {
    let text = render(|| {
        let m = RequestMetrics::with_capacity(50);
        for _ in 0..2 {
            for i in 0..1_000u32 {
                let mut r = record(Reporter::Destination, 200, 1);
                r.source.name = Some(format!("w{i}"));
                m.record_request(&r);
            }
        }
        assert_eq!(m.series(), 51);
    });
    let overflow = text
        .lines()
        .find(|l| l.starts_with(LABEL_OVERFLOW_TOTAL))
        .unwrap();
    assert!(overflow.ends_with(" 1900"), "{overflow}");
    let unknown = sample_lines(&text, "istio_requests_total")
        .into_iter()
        .find(|l| l.contains("source_workload=\"unknown\""))
        .unwrap();
    assert!(unknown.ends_with(" 1900"), "{unknown}");
}

/// The cache answers what `peer_workload` answers, decodes a value once, never keeps a refused
/// value, and stops growing at its capacity (still answering correctly past it).
#[test]
fn peer_metadata_cache_matches_decoding() {
    use ::http::HeaderMap;
    use mesh_core::telemetry::PeerMetadata;

    let headers = |name: &str, version: &str| {
        let w = Workload::new("shop", name).labels([("app", name), ("version", version)]);
        let (value, id) = peer_metadata_headers(
            &PeerMetadata::from_workload(&w, "Kubernetes"),
            "cluster.local",
        )
        .unwrap();
        let mut h = HeaderMap::new();
        insert_peer_metadata(&mut h, &value, &id);
        h
    };
    let cache = PeerMetadataCache::default();
    assert_eq!(cache.peer_workload(&HeaderMap::new()), None);
    let h = headers("frontend", "v1");
    for _ in 0..3 {
        assert_eq!(cache.peer_workload(&h), peer_workload(&h));
        assert_eq!(cache.peer_workload(&h), Some(workload("frontend", "v1")));
    }
    assert_eq!(cache.len(), 1);
    let mut bad = HeaderMap::new();
    bad.insert("x-envoy-peer-metadata", "%%%garbage".parse().unwrap());
    assert_eq!(cache.peer_workload(&bad), None);
    assert_eq!(cache.len(), 1);
    for i in 0..PEER_CACHE_CAPACITY + 10 {
        let h = headers(&format!("w{i}"), "v2");
        assert_eq!(
            cache.peer_workload(&h),
            Some(workload(&format!("w{i}"), "v2"))
        );
    }
    assert_eq!(cache.len(), PEER_CACHE_CAPACITY);
    assert_eq!(cache.peer_workload(&h), Some(workload("frontend", "v1")));
}

/// The shared answer is the cache's own value: equal to the decoded one, the same `Arc` on
/// every hit (what the server compares per connection), none for a refused value.
#[test]
fn peer_metadata_cache_shares_its_values() {
    use ::http::HeaderMap;
    use mesh_core::telemetry::PeerMetadata;

    let w = Workload::new("shop", "frontend").labels([("app", "frontend"), ("version", "v1")]);
    let (value, id) = peer_metadata_headers(
        &PeerMetadata::from_workload(&w, "Kubernetes"),
        "cluster.local",
    )
    .unwrap();
    let mut h = HeaderMap::new();
    insert_peer_metadata(&mut h, &value, &id);
    let cache = PeerMetadataCache::default();
    let first = cache.peer_workload_shared(&h).unwrap();
    assert_eq!(Some(&*first), peer_workload(&h).as_ref());
    assert!(Arc::ptr_eq(
        &first,
        &cache.peer_workload_shared(&h).unwrap()
    ));
    let mut bad = HeaderMap::new();
    bad.insert("x-envoy-peer-metadata", "%%%garbage".parse().unwrap());
    assert!(cache.peer_workload_shared(&bad).is_none());
}

/// The byte limit binds before the count when label values are long: the rendered
/// `/metrics` stays under it (plus the one set without peer values), and the estimate is an
/// upper bound of the rendering.
#[test]
fn long_peer_values_are_capped_in_bytes() {
    const MAX: usize = 300_000;
    let m = RequestMetrics::with_limits(10_000, MAX);
    let text = render(|| {
        for i in 0..2_000u32 {
            let mut r = record(Reporter::Destination, 200, 1);
            r.source.name = Some(format!("w{i:05}-{}", "x".repeat(50)));
            r.source.app = r.source.name.clone();
            m.record(&request_labels(&r), &r);
        }
    });
    let series = sample_lines(&text, "istio_requests_total").len();
    assert_eq!(series, m.series());
    assert!(series < 20, "{series} label sets");
    assert!(
        text.len() <= m.estimated_bytes(),
        "{} > {}",
        text.len(),
        m.estimated_bytes()
    );
    assert!(
        m.estimated_bytes() <= MAX + MAX / (series - 1),
        "{}",
        m.estimated_bytes()
    );
    let overflow = text
        .lines()
        .find(|l| l.starts_with(LABEL_OVERFLOW_TOTAL))
        .unwrap();
    assert!(
        overflow.ends_with(&format!(" {}", 2_000 - (series - 1))),
        "{overflow}"
    );
}
