//! Ejected and unhealthy endpoints are excluded; panic mode as Envoy.

use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::balance::test_util::{all_policies, build, outlier, uniform};
use crate::balance::{ClientLocality, PickContext};
use crate::model::{HealthStatus, LbPolicy};

fn picks(balancer: &crate::balance::Balancer, n: usize) -> Vec<usize> {
    let mut rng = SmallRng::seed_from_u64(17);
    let ctx = PickContext::new(tokio::time::Instant::now());
    (0..n)
        .filter_map(|_| balancer.pick(&ctx, &mut rng))
        .collect()
}

#[test]
fn ejected_endpoints_are_never_picked() {
    for lb in all_policies() {
        let (state, balancer) = build(&uniform(lb.clone(), 10), &ClientLocality::default());
        for i in [1, 4, 7] {
            state.endpoints()[i].set_ejected(true);
        }
        let picked = picks(&balancer, 5000);
        assert_eq!(picked.len(), 5000, "{lb:?}");
        assert!(picked.iter().all(|i| ![1, 4, 7].contains(i)), "{lb:?}");
        // Every healthy one still gets traffic.
        for i in [0, 2, 3, 5, 6, 8, 9] {
            assert!(picked.contains(&i), "{lb:?}: {i} never picked");
        }
    }
}

#[test]
fn unhealthy_and_draining_in_config_are_never_picked_even_in_panic() {
    for lb in all_policies() {
        let mut cluster = uniform(lb.clone(), 10);
        let mut endpoints = cluster.endpoints.to_vec();
        endpoints[0].health = HealthStatus::Unhealthy;
        endpoints[1].health = HealthStatus::Draining;
        cluster.endpoints = endpoints.into();
        let (state, balancer) = build(&cluster, &ClientLocality::default());
        assert!(picks(&balancer, 2000).iter().all(|&i| i > 1), "{lb:?}");
        // Eject four more: 4 of 10 healthy, below the 50 % panic threshold.
        for i in 2..6 {
            state.endpoints()[i].set_ejected(true);
        }
        assert!(balancer.in_panic(0));
        let picked = picks(&balancer, 4000);
        assert!(picked.iter().all(|&i| i > 1), "{lb:?}");
        assert!(
            picked.iter().any(|&i| (2..6).contains(&i)),
            "{lb:?}: panic uses ejected"
        );
    }
}

#[test]
fn panic_threshold_is_fifty_percent_by_default() {
    let (state, balancer) = build(&uniform(LbPolicy::Random, 10), &ClientLocality::default());
    assert_eq!(balancer.panic_threshold(), 50);
    for i in 0..5 {
        state.endpoints()[i].set_ejected(true);
    }
    // 5 of 10 healthy is not below 50 %: no panic, only healthy ones.
    assert!(!balancer.in_panic(0));
    assert!(picks(&balancer, 2000).iter().all(|&i| i >= 5));
    state.endpoints()[5].set_ejected(true);
    // 4 of 10: panic, all ten are used.
    assert!(balancer.in_panic(0));
    let picked = picks(&balancer, 4000);
    for i in 0..10 {
        assert!(picked.contains(&i), "{i} not picked in panic");
    }
}

#[test]
fn istio_min_health_percent_zero_disables_panic() {
    let mut cluster = uniform(LbPolicy::LeastRequest, 4);
    cluster.outlier = outlier(0);
    let (state, balancer) = build(&cluster, &ClientLocality::default());
    assert_eq!(balancer.panic_threshold(), 0);
    for i in 0..3 {
        state.endpoints()[i].set_ejected(true);
    }
    assert!(picks(&balancer, 1000).iter().all(|&i| i == 3));
    state.endpoints()[3].set_ejected(true);
    // Nobody healthy and no panic: no endpoint (503 UH).
    assert!(picks(&balancer, 10).is_empty());
    assert_eq!(balancer.priority_loads(), vec![0]);
}

#[test]
fn empty_cluster_picks_nothing() {
    for lb in all_policies() {
        let (_state, balancer) = build(&uniform(lb, 0), &ClientLocality::default());
        assert!(balancer.is_empty());
        assert!(picks(&balancer, 10).is_empty());
    }
}
