//! Picks follow weights; load-aware policies avoid loaded and slow endpoints.

use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::balance::test_util::{
    all_policies, assert_within_5_sigma, build, cluster, endpoint, uniform,
};
use crate::balance::{ClientLocality, PickContext, WeightedPick};
use crate::model::{ClusterName, HeaderMutation, LbPolicy, WeightedCluster};

const WEIGHTS: [u32; 4] = [1, 2, 3, 4];

fn weighted(lb: LbPolicy) -> crate::model::Cluster {
    cluster(
        lb,
        WEIGHTS
            .iter()
            .enumerate()
            .map(|(i, &w)| endpoint(i, w, ""))
            .collect(),
    )
}

fn counts(lb: LbPolicy, n: u32, seed: u64) -> Vec<u32> {
    let (_state, balancer) = build(&weighted(lb), &ClientLocality::default());
    let mut rng = SmallRng::seed_from_u64(seed);
    let ctx = PickContext::new(tokio::time::Instant::now());
    let mut counts = vec![0u32; WEIGHTS.len()];
    for _ in 0..n {
        counts[balancer.pick(&ctx, &mut rng).unwrap()] += 1;
    }
    counts
}

#[test]
fn unloaded_picks_follow_weights_for_every_non_hash_policy() {
    for lb in [
        LbPolicy::Random,
        LbPolicy::LeastRequest,
        LbPolicy::PeakEwma,
        LbPolicy::RoundRobin,
    ] {
        let n = 20_000;
        let counts = counts(lb.clone(), n, 11);
        for (i, &c) in counts.iter().enumerate() {
            assert_within_5_sigma(c, n, f64::from(WEIGHTS[i]) / 10.0);
        }
    }
}

#[test]
fn round_robin_is_exact_per_cycle() {
    let counts = counts(LbPolicy::RoundRobin, 10 * 100, 0);
    assert_eq!(counts, vec![100, 200, 300, 400]);
}

#[test]
fn hash_policies_without_a_key_spread_like_weights() {
    for lb in [
        LbPolicy::RingHash {
            key: crate::model::HashKey::SourceIp,
            minimum_ring_size: 4096,
        },
        LbPolicy::Maglev {
            key: crate::model::HashKey::SourceIp,
            table_size: 65_537,
        },
    ] {
        let n = 20_000;
        let counts = counts(lb, n, 5);
        for (i, &c) in counts.iter().enumerate() {
            // Ring and table shares approximate the weights; allow 15 % relative error on top.
            let share = f64::from(c) / f64::from(n);
            let want = f64::from(WEIGHTS[i]) / 10.0;
            assert!(
                (share - want).abs() < 0.15 * want + 0.01,
                "{i}: {share} vs {want}"
            );
        }
    }
}

#[test]
fn least_request_avoids_the_loaded_endpoint() {
    let (_state, balancer) = build(
        &uniform(LbPolicy::LeastRequest, 4),
        &ClientLocality::default(),
    );
    let now = tokio::time::Instant::now();
    let busy: Vec<_> = (0..5)
        .map(|_| balancer.stats(0).unwrap().start(now))
        .collect();
    let mut rng = SmallRng::seed_from_u64(1);
    let ctx = PickContext::new(now);
    let picks_of_0 = (0..10_000)
        .filter(|_| balancer.pick(&ctx, &mut rng) == Some(0))
        .count();
    // Distinct candidates: the loaded one always loses its pair.
    assert_eq!(picks_of_0, 0);
    drop(busy);
    let picks_of_0 = (0..10_000)
        .filter(|_| balancer.pick(&ctx, &mut rng) == Some(0))
        .count() as u32;
    assert_within_5_sigma(picks_of_0, 10_000, 0.25);
}

#[test]
fn weighted_least_request_compares_load_per_weight() {
    // Weights 1 and 4: three requests on the heavy one (0.75 per weight) still beat one on the
    // light one (1 per weight).
    let (_state, balancer) = build(
        &cluster(
            LbPolicy::LeastRequest,
            vec![endpoint(0, 1, ""), endpoint(1, 4, "")],
        ),
        &ClientLocality::default(),
    );
    let now = tokio::time::Instant::now();
    let _light = balancer.stats(0).unwrap().start(now);
    let _heavy: Vec<_> = (0..3)
        .map(|_| balancer.stats(1).unwrap().start(now))
        .collect();
    let mut rng = SmallRng::seed_from_u64(2);
    let ctx = PickContext::new(now);
    let light = (0..10_000)
        .filter(|_| balancer.pick(&ctx, &mut rng) == Some(0))
        .count() as u32;
    // The light one wins only when both draws are it: (1/5)^2.
    assert_within_5_sigma(light, 10_000, 0.04);
}

#[test]
fn peak_ewma_avoids_the_slow_endpoint() {
    let (_state, balancer) = build(&uniform(LbPolicy::PeakEwma, 5), &ClientLocality::default());
    let now = tokio::time::Instant::now();
    for i in 0..5 {
        let rtt = if i == 2 { 250 } else { 5 };
        let stats = balancer.stats(i).unwrap();
        for _ in 0..3 {
            stats.observe_rtt(Duration::from_millis(rtt), now);
        }
    }
    let mut rng = SmallRng::seed_from_u64(9);
    let ctx = PickContext::new(now);
    let slow = (0..10_000)
        .filter(|_| balancer.pick(&ctx, &mut rng) == Some(2))
        .count();
    assert_eq!(slow, 0);
    // Until its estimate has decayed for long enough (e^-5 × 250 ms < 5 ms after 50 s at τ=10 s).
    let later = PickContext::new(now + Duration::from_secs(60));
    for i in [0, 1, 3, 4] {
        balancer
            .stats(i)
            .unwrap()
            .observe_rtt(Duration::from_millis(5), later.now);
    }
    let slow = (0..10_000)
        .filter(|_| balancer.pick(&later, &mut rng) == Some(2))
        .count();
    assert!(slow > 1000, "{slow}");
}

#[test]
fn every_policy_picks_in_range_and_deterministically_under_a_seed() {
    for lb in all_policies() {
        let run = || {
            let (_state, balancer) = build(&uniform(lb.clone(), 7), &ClientLocality::default());
            let mut rng = SmallRng::seed_from_u64(42);
            let ctx = PickContext::new(tokio::time::Instant::now());
            (0..100)
                .map(|_| balancer.pick(&ctx, &mut rng).unwrap())
                .collect::<Vec<_>>()
        };
        let a = run();
        assert!(a.iter().all(|&i| i < 7));
        assert_eq!(a, run(), "{lb:?}");
    }
}

fn destination(name: &str, weight: u32) -> WeightedCluster {
    WeightedCluster {
        cluster: ClusterName::new(name),
        weight,
        request_headers: HeaderMutation::default(),
        response_headers: HeaderMutation::default(),
    }
}

#[test]
fn weighted_cluster_split_95_5() {
    let routes = [destination("v1", 95), destination("v2", 5)];
    let pick = WeightedPick::new(&routes);
    assert_eq!(pick.total_weight(), 100);
    let mut rng = SmallRng::seed_from_u64(2024);
    let n = 10_000;
    let v2 = (0..n)
        .filter(|_| pick.pick(&mut rng).unwrap().cluster.as_str() == "v2")
        .count() as u32;
    assert_within_5_sigma(v2, n, 0.05);
    // Same seed, same sequence.
    let seq = |seed| {
        let mut rng = SmallRng::seed_from_u64(seed);
        (0..50)
            .map(|_| pick.pick(&mut rng).unwrap().cluster.as_str() == "v1")
            .collect::<Vec<_>>()
    };
    assert_eq!(seq(7), seq(7));
}

#[test]
fn weighted_cluster_edge_cases() {
    let mut rng = SmallRng::seed_from_u64(0);
    assert!(WeightedPick::new(&[]).pick(&mut rng).is_none());
    let zero = [destination("a", 0), destination("b", 0)];
    assert!(WeightedPick::new(&zero).pick(&mut rng).is_none());
    let one_zero = [destination("a", 0), destination("b", 3)];
    let pick = WeightedPick::new(&one_zero);
    assert!((0..100).all(|_| pick.pick(&mut rng).unwrap().cluster.as_str() == "b"));
}
