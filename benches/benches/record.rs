//! The metric record path of one finished request: `RequestMetrics` handles looked up (a cache
//! hit) and incremented, into a Prometheus recorder.
//!
//! Two arms in one run: `labels_then_lookup` is the path before the record-keyed cache
//! (`request_labels` builds the ~25 label strings, then the label-set cache is probed), which
//! `RequestMetrics::record` still is; `by_record` is `RequestMetrics::record_request`, what
//! `Telemetry::record` now calls (the record's label facts hashed in place, no strings).
//! Run: `cargo bench -p mesh-benches --bench record`.
#![allow(missing_docs)] // criterion_group! generates an undocumented public function.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use mesh_benches::client_record;
use mesh_core::telemetry::request_labels;
use mesh_tower::telemetry::{RequestMetrics, install_prometheus};

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
    group.finish();
}

criterion_group!(benches, record);
criterion_main!(benches);
