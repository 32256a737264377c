//! The metric record path allocates nothing on a cache hit: `RequestMetrics::record_request`
//! (what `Telemetry::record` calls) looks the handles up by the record's label facts, with no
//! label strings built. Counted by dhat's allocator in testing mode (one profiler per process,
//! so one test). No recorder is installed, so the handles are the facade's no-ops and what is
//! counted is mesh's own work.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.

use mesh_benches::client_record;
use mesh_core::telemetry::request_labels;
use mesh_tower::telemetry::RequestMetrics;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Runs without libtest's harness (`harness = false` in Cargo.toml): dhat counts every thread's
/// allocations, and libtest's main thread does its bookkeeping (the running-test map, the
/// timeout queue) right after spawning the test's thread, racing the measured loop; under load
/// that showed as a few stray allocations (`left: 4, right: 0`, once in nine workspace runs).
/// Here the process has one thread. The profile goes to the temp dir, never the source tree.
fn main() {
    record_hit_does_not_allocate();
    println!("test record_hit_does_not_allocate ... ok");
}

fn record_hit_does_not_allocate() {
    let metrics = RequestMetrics::default();
    let mut records: Vec<_> = (0..4).map(|_| client_record()).collect();
    records[1].response_code = Some(503);
    records[2].grpc_status = Some(14);
    records[3].path = "/helloworld.Greeter/SayGoodbye".into();
    // Warm up: first sight of each label set registers its handles.
    for r in &records {
        metrics.record_request(r);
    }
    assert_eq!(metrics.series(), 3);
    // A failed dhat assertion saves the profile: to the temp dir, never into the source tree.
    let _profiler = dhat::Profiler::builder()
        .testing()
        .file_name(
            std::env::temp_dir().join(format!("mesh-record_alloc-{}.json", std::process::id())),
        )
        .build();
    let before = dhat::HeapStats::get();
    for _ in 0..2_500 {
        for r in &records {
            metrics.record_request(r);
        }
    }
    let after = dhat::HeapStats::get();
    dhat::assert_eq!(after.total_blocks, before.total_blocks);
    // The path before: the label strings of every request, hit or not.
    let r = &records[0];
    metrics.record(&request_labels(r), r);
    let labelled = dhat::HeapStats::get();
    dhat::assert!(labelled.total_blocks > after.total_blocks);
    assert_eq!(metrics.series(), 3);
}
