//! Endpoint pick cost per policy at 10, 100 and 1,000 endpoints (what the outbound client pays
//! per request on top of route matching).
#![allow(missing_docs)] // criterion_group! generates an undocumented public function.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use mesh_benches::{cluster, policies, zoned};
use mesh_core::balance::{Balancer, ClientLocality, ClusterState, PickContext, WeightedPick};
use mesh_core::model::{ClusterName, HeaderMutation, WeightedCluster};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::time::Instant;

fn build(lb: mesh_core::model::LbPolicy, n: usize) -> (ClusterState, Balancer, Instant) {
    let t0 = Instant::now();
    let cluster = cluster(lb, n);
    let state = ClusterState::new(cluster.name.clone(), t0);
    let balancer = Balancer::new(&cluster, &state, &ClientLocality::default(), t0)
        .expect("bench clusters are valid");
    // Give every endpoint a latency sample and a little load so peak EWMA and P2C compare real
    // numbers (and EWMA decays: the pick time is later than the samples).
    for i in 0..n {
        let stats = balancer.stats(i).expect("index in range");
        stats.observe_rtt(Duration::from_micros(500 + (i as u64 % 7) * 100), t0);
    }
    (state, balancer, t0)
}

fn pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick");
    for (name, lb) in policies() {
        for n in [10usize, 100, 1000] {
            let (_state, balancer, t0) = build(lb.clone(), n);
            let held: Vec<_> = (0..n / 3)
                .map(|i| balancer.stats(i * 3).expect("in range").start(t0))
                .collect();
            let mut rng = SmallRng::seed_from_u64(1);
            let now = t0 + Duration::from_millis(10);
            let mut key = 0u64;
            group.bench_function(BenchmarkId::new(name, n), |b| {
                b.iter(|| {
                    key = key.wrapping_add(0x9E37_79B9_7F4A_7C15);
                    let ctx = PickContext::new(now).with_hash(key);
                    black_box(balancer.pick(black_box(&ctx), &mut rng))
                })
            });
            drop(held);
        }
    }
    group.finish();
}

fn pick_locality_weighted(c: &mut Criterion) {
    // Two priorities of four weighted localities: a locality draw before the policy's pick.
    let mut group = c.benchmark_group("pick_locality_weighted");
    let n = 1000;
    for (name, lb) in policies() {
        let t0 = Instant::now();
        let cluster = zoned(&cluster(lb, n), 4);
        let state = ClusterState::new(cluster.name.clone(), t0);
        let balancer = Balancer::new(&cluster, &state, &ClientLocality::default(), t0)
            .expect("bench clusters are valid");
        let mut rng = SmallRng::seed_from_u64(1);
        let mut key = 0u64;
        group.bench_function(BenchmarkId::new(name, n), |b| {
            b.iter(|| {
                key = key.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let ctx = PickContext::new(t0).with_hash(key);
                black_box(balancer.pick(black_box(&ctx), &mut rng))
            })
        });
    }
    group.finish();
}

fn pick_and_track(c: &mut Criterion) {
    // The whole per-request balancer cost: pick, count in flight, record the latency.
    let mut group = c.benchmark_group("pick_and_track");
    for (name, lb) in policies()
        .into_iter()
        .filter(|(n, _)| ["least_request", "peak_ewma"].contains(n))
    {
        let (_state, balancer, t0) = build(lb, 1000);
        let mut rng = SmallRng::seed_from_u64(2);
        let now = t0 + Duration::from_millis(10);
        let done = now + Duration::from_micros(700);
        group.bench_function(BenchmarkId::new(name, 1000), |b| {
            b.iter(|| {
                let ctx = PickContext::new(now);
                let i = balancer.pick(&ctx, &mut rng).expect("healthy cluster");
                let guard = balancer.stats(i).expect("in range").start(now);
                guard.finish(done);
            })
        });
    }
    group.finish();
}

fn weighted_cluster(c: &mut Criterion) {
    let destination = |name: &str, weight| WeightedCluster {
        cluster: ClusterName::new(name),
        weight,
        request_headers: HeaderMutation::default(),
        response_headers: HeaderMutation::default(),
    };
    let routes = [
        destination("v1", 90),
        destination("v2", 5),
        destination("v3", 5),
    ];
    let (_state, balancer, t0) = build(mesh_core::model::LbPolicy::LeastRequest, 1000);
    let mut rng = SmallRng::seed_from_u64(3);
    c.bench_function("weighted_cluster/3", |b| {
        b.iter(|| black_box(WeightedPick::new(black_box(&routes)).pick(&mut rng)))
    });
    c.bench_function("weighted_cluster_then_least_request/1000", |b| {
        b.iter(|| {
            let chosen = WeightedPick::new(black_box(&routes)).pick(&mut rng);
            black_box(chosen);
            black_box(balancer.pick(&PickContext::new(t0), &mut rng))
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = pick, pick_locality_weighted, pick_and_track, weighted_cluster
}
criterion_main!(benches);
