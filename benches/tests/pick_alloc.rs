//! The pick path allocates nothing: route match, weighted cluster pick and endpoint pick at
//! 1,000 endpoints, counted by dhat's allocator in testing mode.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.

use mesh_benches::PickFixture;
use rand::SeedableRng;
use rand::rngs::SmallRng;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

#[test]
fn pick_path_does_not_allocate() {
    let fixture = PickFixture::new(1_000);
    let headers = vec![("content-type".to_owned(), "application/grpc".to_owned())];
    let mut rng = SmallRng::seed_from_u64(3);
    let now = tokio::time::Instant::now();
    // Warm up: the first pick after a build may compute the balancer's healthy view.
    for _ in 0..10 {
        assert!(fixture.pick(&headers, &mut rng, now).is_some());
    }
    let _profiler = dhat::Profiler::builder().testing().build();
    let before = dhat::HeapStats::get();
    for _ in 0..10_000 {
        assert!(fixture.pick(&headers, &mut rng, now).is_some());
    }
    let after = dhat::HeapStats::get();
    dhat::assert_eq!(after.total_blocks, before.total_blocks);
}
