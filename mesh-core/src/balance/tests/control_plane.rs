//! The control plane's EDS priorities and locality weights: failover by health across its
//! levels, and locality-weighted picks within a level, as Envoy computes them.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::balance::test_util::{
    all_policies, assert_within_5_sigma, build, cluster, endpoint, outlier,
};
use crate::balance::{Balancer, ClientLocality, PickContext};
use crate::model::{Cluster, Endpoint, HashKey, LbPolicy, Locality, LocalityLbSetting};

/// Endpoint `i` at `priority` in `locality`, whose locality weighs `locality_weight`.
fn at(i: usize, priority: u32, locality: &str, locality_weight: Option<u32>) -> Endpoint {
    Endpoint {
        priority,
        locality_weight,
        ..endpoint(i, 1, locality)
    }
}

/// Ten endpoints at priority 0 (0..10) and ten at priority 1 (10..20).
fn two_levels(lb: LbPolicy) -> Cluster {
    cluster(
        lb,
        (0..20)
            .map(|i| at(i, (i / 10) as u32, "r/z/s", None))
            .collect(),
    )
}

fn picks(balancer: &Balancer, n: u32, seed: u64) -> Vec<usize> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let ctx = PickContext::new(tokio::time::Instant::now());
    (0..n)
        .filter_map(|_| balancer.pick(&ctx, &mut rng))
        .collect()
}

#[test]
fn priority_zero_at_seventy_percent_keeps_ninety_eight_percent() {
    for lb in all_policies() {
        let (state, balancer) = build(&two_levels(lb.clone()), &ClientLocality::default());
        assert_eq!(balancer.priority_loads(), vec![100, 0], "{lb:?}");
        for i in 0..3 {
            state.endpoints()[i].set_ejected(true);
        }
        // 1.4 × 70 % = 98 %: the rest spills to priority 1.
        assert_eq!(balancer.priority_loads(), vec![98, 2], "{lb:?}");
        assert!(!balancer.in_panic(0));
        let n = 50_000;
        let picked = picks(&balancer, n, 3);
        assert_eq!(picked.len(), n as usize, "{lb:?}");
        assert!(picked.iter().all(|&i| i >= 3), "{lb:?}: ejected picked");
        let p1 = picked.iter().filter(|&&i| i >= 10).count() as u32;
        assert_within_5_sigma(p1, n, 0.02);
    }
}

#[test]
fn priority_one_takes_everything_when_priority_zero_is_down() {
    for lb in all_policies() {
        let (state, balancer) = build(&two_levels(lb.clone()), &ClientLocality::default());
        for i in 0..10 {
            state.endpoints()[i].set_ejected(true);
        }
        assert_eq!(balancer.priority_loads(), vec![0, 100], "{lb:?}");
        assert!(
            picks(&balancer, 2_000, 4).iter().all(|&i| i >= 10),
            "{lb:?}"
        );
        // Back up: priority 0 takes it all again.
        for i in 0..10 {
            state.endpoints()[i].set_ejected(false);
        }
        assert!(picks(&balancer, 2_000, 5).iter().all(|&i| i < 10), "{lb:?}");
    }
}

#[test]
fn every_level_in_panic_spreads_over_all_endpoints() {
    let mut c = two_levels(LbPolicy::Random);
    c.outlier = outlier(50);
    let (state, balancer) = build(&c, &ClientLocality::default());
    // 3 of 10 and 2 of 10 healthy: availabilities 42 + 28 < 100, both below 50 %.
    for i in (3..10).chain(12..20) {
        state.endpoints()[i].set_ejected(true);
    }
    assert!(balancer.in_panic(0) && balancer.in_panic(1));
    assert_eq!(balancer.priority_loads(), vec![50, 50]);
    let n = 40_000;
    let picked = picks(&balancer, n, 6);
    let ejected = picked
        .iter()
        .filter(|&&i| (3..10).contains(&i) || (12..20).contains(&i))
        .count() as u32;
    assert_within_5_sigma(ejected, n, 0.75);
}

#[test]
fn explicit_priorities_win_over_client_failover() {
    // The client's locality would put r2 first; the control plane says r1 is priority 0.
    let mut c = cluster(
        LbPolicy::RoundRobin,
        vec![
            at(0, 0, "r1/z/s", None),
            at(1, 1, "r2/z/s", None),
            at(2, 2, "r3/z/s", None),
        ],
    );
    c.outlier = outlier(0);
    c.locality_lb = LocalityLbSetting {
        enabled: true,
        ..LocalityLbSetting::default()
    };
    let client = ClientLocality {
        locality: Locality::parse("r2/z/s"),
        labels: BTreeMap::new(),
    };
    let (_, balancer) = build(&c, &client);
    assert_eq!(
        (0..3).map(|i| balancer.priority(i)).collect::<Vec<_>>(),
        vec![Some(0), Some(1), Some(2)]
    );
    assert!(picks(&balancer, 100, 7).iter().all(|&i| i == 0));
}

#[test]
fn gaps_in_a_hand_built_model_are_compacted() {
    let c = cluster(
        LbPolicy::Random,
        vec![
            at(0, 0, "", None),
            at(1, 7, "", None),
            at(2, 4_000_000_000, "", None),
        ],
    );
    let (_, balancer) = build(&c, &ClientLocality::default());
    assert_eq!(balancer.priority(1), Some(1));
    assert_eq!(balancer.priority(2), Some(2));
    assert_eq!(balancer.priority_loads(), vec![100, 0, 0]);
}

/// Locality `a` (endpoints 0..2) weighs 3, locality `b` (endpoints 2..6) weighs 1.
fn three_to_one(lb: LbPolicy) -> Cluster {
    let mut c = cluster(
        lb,
        (0..6)
            .map(|i| {
                if i < 2 {
                    at(i, 0, "r/a/s", Some(3))
                } else {
                    at(i, 0, "r/b/s", Some(1))
                }
            })
            .collect(),
    );
    c.locality_weighted_lb = true;
    c
}

#[test]
fn locality_weights_split_a_level_three_to_one() {
    let mut policies = all_policies();
    // A big ring, so its arcs follow the weights closely.
    policies.push(LbPolicy::RingHash {
        key: HashKey::SourceIp,
        minimum_ring_size: 65_536,
    });
    for lb in policies {
        let (_, balancer) = build(&three_to_one(lb.clone()), &ClientLocality::default());
        let n = 40_000;
        let picked = picks(&balancer, n, 9);
        assert_eq!(picked.len(), n as usize);
        let a = picked.iter().filter(|&&i| i < 2).count() as u32;
        match lb {
            // Hash tables hold folded weights: exact up to the table's granularity.
            LbPolicy::RingHash {
                minimum_ring_size, ..
            } if minimum_ring_size < 65_536 => {
                let share = f64::from(a) / f64::from(n);
                assert!((share - 0.75).abs() < 0.1, "{lb:?}: {share}");
            }
            _ => assert_within_5_sigma(a, n, 0.75),
        }
        // Within a locality, endpoints share evenly.
        let b0 = picked.iter().filter(|&&i| i == 2).count() as u32;
        if !matches!(lb, LbPolicy::RingHash { .. }) {
            assert_within_5_sigma(b0, n, 0.25 / 4.0);
        }
    }
}

#[test]
fn explicit_locality_weights_count_without_the_flag_as_grpc_does() {
    // istiod sends gRPC nodes `distribute` weights without `locality_weighted_lb_config`.
    let mut c = three_to_one(LbPolicy::Random);
    c.locality_weighted_lb = false;
    let (_, balancer) = build(&c, &ClientLocality::default());
    assert_eq!(
        balancer.locality_shares(0),
        vec![(0, 750_000), (2, 250_000)]
    );
    let n = 30_000;
    let a = picks(&balancer, n, 10).iter().filter(|&&i| i < 2).count() as u32;
    assert_within_5_sigma(a, n, 0.75);
}

#[test]
fn implied_locality_weights_without_the_flag_balance_flat() {
    let mut c = three_to_one(LbPolicy::Random);
    c.locality_weighted_lb = false;
    c.endpoints = c
        .endpoints
        .iter()
        .map(|e| Endpoint {
            locality_weight: None,
            ..e.clone()
        })
        .collect();
    let (_, balancer) = build(&c, &ClientLocality::default());
    assert!(balancer.locality_shares(0).is_empty());
    let n = 30_000;
    let a = picks(&balancer, n, 10).iter().filter(|&&i| i < 2).count() as u32;
    assert_within_5_sigma(a, n, 2.0 / 6.0);
}

#[test]
fn a_locality_with_half_its_hosts_ejected_loses_share_as_envoy_computes() {
    for lb in [
        LbPolicy::Random,
        LbPolicy::RoundRobin,
        LbPolicy::LeastRequest,
        LbPolicy::PeakEwma,
    ] {
        // Two localities of four endpoints, equal weights.
        let mut c = cluster(
            lb.clone(),
            (0..8)
                .map(|i| at(i, 0, if i < 4 { "r/a/s" } else { "r/b/s" }, Some(5)))
                .collect(),
        );
        c.locality_weighted_lb = true;
        let (state, balancer) = build(&c, &ClientLocality::default());
        assert_eq!(
            balancer.locality_shares(0),
            vec![(0, 500_000), (4, 500_000)]
        );
        // Half of `a` ejected: its effective weight is 5 × min(1, 1.4 × 2/4) = 3.5 against 5,
        // so it keeps 3.5 / 8.5 = 41.2 % (flat balancing would leave it 2/6 = 33.3 %).
        state.endpoints()[0].set_ejected(true);
        state.endpoints()[1].set_ejected(true);
        // One of `b` ejected: 1.4 × 3/4 ≥ 1, it keeps its whole weight.
        state.endpoints()[4].set_ejected(true);
        assert_eq!(balancer.priority_loads(), vec![100]);
        let shares = balancer.locality_shares(0);
        assert_eq!(shares[0].0, 0);
        assert_eq!(shares[0].1, 3_500_000 * 1_000_000 / 8_500_000, "{lb:?}");
        let n = 40_000;
        let picked = picks(&balancer, n, 11);
        assert!(picked.iter().all(|&i| ![0, 1, 4].contains(&i)), "{lb:?}");
        let a = picked.iter().filter(|&&i| i < 4).count() as u32;
        assert_within_5_sigma(a, n, 3.5 / 8.5);
    }
}

#[test]
fn locality_weights_apply_per_level_and_priorities_still_fail_over() {
    // Priority 0: localities a (weight 1) and b (weight 4); priority 1: locality c.
    let mut c = cluster(
        LbPolicy::Random,
        vec![
            at(0, 0, "r/a/s", Some(1)),
            at(1, 0, "r/b/s", Some(4)),
            at(2, 1, "r/c/s", Some(9)),
        ],
    );
    c.locality_weighted_lb = true;
    let (state, balancer) = build(&c, &ClientLocality::default());
    let n = 20_000;
    let picked = picks(&balancer, n, 12);
    assert!(picked.iter().all(|&i| i < 2));
    let b = picked.iter().filter(|&&i| i == 1).count() as u32;
    assert_within_5_sigma(b, n, 0.8);
    // b down: availability of priority 0 is 1.4 × 1/2 = 70 %, the rest spills to c.
    state.endpoints()[1].set_ejected(true);
    assert_eq!(balancer.priority_loads(), vec![70, 30]);
    let picked = picks(&balancer, n, 13);
    let spilled = picked.iter().filter(|&&i| i == 2).count() as u32;
    assert_within_5_sigma(spilled, n, 0.3);
    assert!(picked.iter().all(|&i| i != 1));
}
