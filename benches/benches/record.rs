//! The metric record path of one finished request: `RequestMetrics` handles looked up (a cache
//! hit) and incremented, into a Prometheus recorder.
//!
//! Two arms in one run: `labels_then_lookup` is the path before the record-keyed cache
//! (`request_labels` builds the ~25 label strings, then the label-set cache is probed), which
//! `RequestMetrics::record` still is; `by_record` is `RequestMetrics::record_request`, what
//! `Telemetry::record` now calls (the record's label facts hashed in place, no strings).
//! `telemetry` is the whole `Telemetry::record` (metrics and service graph, access log off), and
//! `trace_ids` the two ids made per request; those compare across commits (run on each).
//! Run: `cargo bench -p mesh-benches --bench record`.
#![allow(missing_docs)] // criterion_group! generates an undocumented public function.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::HeaderMap;
use mesh_benches::client_record;
use mesh_core::Workload;
use mesh_core::telemetry::PeerMetadata;
use mesh_core::telemetry::request_labels;
use mesh_tower::telemetry::{
    AccessLogMode, RequestMetrics, Telemetry, insert_peer_metadata, install_prometheus,
    peer_metadata_headers, peer_workload,
};
use mesh_tower::trace::{TraceId, uuid_v4};
use rand::SeedableRng;
use rand::rngs::SmallRng;

fn record(c: &mut Criterion) {
    // The handle must outlive the benchmark: it owns the recorder's upkeep.
    let _prometheus = install_prometheus().ok();
    let metrics = RequestMetrics::default();
    let r = client_record();
    metrics.record_request(&r);
    let mut group = c.benchmark_group("telemetry_record_hit");
    group.bench_function("labels_then_lookup", |b| {
        b.iter(|| metrics.record(&request_labels(black_box(&r)), &r))
    });
    group.bench_function("by_record", |b| {
        b.iter(|| metrics.record_request(black_box(&r)))
    });
    // Everything `Telemetry::record` does with the access log off (Istio's default): the
    // metrics and the service graph.
    let telemetry = Telemetry::new().access_log(AccessLogMode::Off);
    telemetry.record(&r);
    group.bench_function("telemetry", |b| b.iter(|| telemetry.record(black_box(&r))));
    group.finish();
}

/// The ids made for every request: a `x-request-id` and the trace id's hex for the record.
fn ids(c: &mut Criterion) {
    let mut group = c.benchmark_group("trace_ids");
    let mut rng = SmallRng::seed_from_u64(1);
    group.bench_function("uuid_v4", |b| b.iter(|| uuid_v4(&mut rng)));
    let id = TraceId::random(&mut rng);
    group.bench_function("trace_id_to_string", |b| {
        b.iter(|| black_box(&id).to_string())
    });
    group.finish();
}

/// The peer's metadata header read on every request (server) and response (client): decoded
/// each time (`peer_workload`) and through `Telemetry`'s cache, in one run.
fn peer_metadata(c: &mut Criterion) {
    let server =
        Workload::new("default", "greeter").labels([("app", "greeter"), ("version", "v1")]);
    let Some((value, id)) = peer_metadata_headers(
        &PeerMetadata::from_workload(&server, "Kubernetes"),
        "cluster.local",
    ) else {
        return;
    };
    let mut headers = HeaderMap::new();
    insert_peer_metadata(&mut headers, &value, &id);
    let telemetry = Telemetry::new();
    let mut group = c.benchmark_group("peer_metadata");
    group.bench_function("decode", |b| b.iter(|| peer_workload(black_box(&headers))));
    group.bench_function("cached", |b| {
        b.iter(|| telemetry.peer_workload(black_box(&headers)))
    });
    group.finish();
}

criterion_group!(benches, record, ids, peer_metadata);
criterion_main!(benches);
