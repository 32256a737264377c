//! The pick path allocates nothing: route match, weighted cluster pick and endpoint pick at
//! 1,000 endpoints, and every policy's pick over two priorities of weighted localities, counted
//! by dhat's allocator in testing mode (one profiler per process, so one check, run as the
//! process's only thread).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Test helpers: a panic is a failed test.

use mesh_benches::{PickFixture, cluster, policies, zoned};
use mesh_core::balance::{Balancer, ClientLocality, ClusterState, PickContext};
use mesh_core::model::HealthStatus;
use rand::SeedableRng;
use rand::rngs::SmallRng;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Runs without libtest's harness (`harness = false` in Cargo.toml): dhat counts every thread's
/// allocations, and libtest's main thread does its bookkeeping (the running-test map, the
/// timeout queue) right after spawning the test's thread, racing the measured loop; under load
/// that showed as a few stray allocations (`left: 4, right: 0`, once in nine workspace runs).
/// Here the process has one thread. The profile goes to the temp dir, never the source tree.
fn main() {
    pick_path_does_not_allocate();
    println!("test pick_path_does_not_allocate ... ok");
}

fn pick_path_does_not_allocate() {
    let fixture = PickFixture::new(1_000);
    let headers = vec![("content-type".to_owned(), "application/grpc".to_owned())];
    let mut rng = SmallRng::seed_from_u64(3);
    let now = tokio::time::Instant::now();
    let zoned: Vec<(ClusterState, Balancer)> = policies()
        .into_iter()
        .map(|(_, lb)| {
            let mut cluster = (*zoned(&cluster(lb, 1_000), 4)).clone();
            // Some of priority 0 down: spill-over and health-scaled locality weights in play.
            let mut endpoints = cluster.endpoints.to_vec();
            for e in endpoints.iter_mut().take(400).step_by(2) {
                e.health = HealthStatus::Unhealthy;
            }
            cluster.endpoints = endpoints.into();
            let state = ClusterState::new(cluster.name.clone(), now);
            let balancer =
                Balancer::new(&cluster, &state, &ClientLocality::default(), now).unwrap();
            (state, balancer)
        })
        .collect();
    for (_, balancer) in &zoned {
        // 300 of 500 healthy at priority 0: 84 % stays, 16 % spills over.
        assert_eq!(balancer.priority_loads(), vec![84, 16]);
    }
    // Warm up: the first pick after a build may compute the balancer's healthy view.
    for _ in 0..10 {
        assert!(fixture.pick(&headers, &mut rng, now).is_some());
        for (_, balancer) in &zoned {
            assert!(balancer.pick(&PickContext::new(now), &mut rng).is_some());
        }
    }
    // A failed dhat assertion saves the profile: to the temp dir, never into the source tree.
    let _profiler = dhat::Profiler::builder()
        .testing()
        .file_name(
            std::env::temp_dir().join(format!("mesh-pick_alloc-{}.json", std::process::id())),
        )
        .build();
    let before = dhat::HeapStats::get();
    for _ in 0..10_000 {
        assert!(fixture.pick(&headers, &mut rng, now).is_some());
    }
    for (_, balancer) in &zoned {
        for _ in 0..2_000 {
            assert!(balancer.pick(&PickContext::new(now), &mut rng).is_some());
        }
    }
    let after = dhat::HeapStats::get();
    dhat::assert_eq!(after.total_blocks, before.total_blocks);
}
