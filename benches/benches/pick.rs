//! The per-request pick path: route match + weighted cluster pick + endpoint pick.
//!
//! Target (issue 4): under 300 ns for all three at 1,000 endpoints, no heap allocation (checked
//! by `tests/pick_alloc.rs`). Run: `cargo bench -p mesh-benches --bench pick`.
#![allow(missing_docs)] // criterion_group! generates an undocumented public function.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mesh_benches::PickFixture;
use rand::SeedableRng;
use rand::rngs::SmallRng;

fn pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick_route_weighted_endpoint");
    let headers = vec![("content-type".to_owned(), "application/grpc".to_owned())];
    for n in [10, 100, 1_000] {
        let fixture = PickFixture::new(n);
        let mut rng = SmallRng::seed_from_u64(1);
        let now = tokio::time::Instant::now();
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| black_box(fixture.pick(&headers, &mut rng, now)))
        });
    }
    group.finish();
}

criterion_group!(benches, pick);
criterion_main!(benches);
