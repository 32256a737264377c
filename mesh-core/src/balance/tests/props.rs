//! Property: a pick is always in range, of an eligible endpoint, and of a non-ejected one unless
//! its level is in panic.

use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::balance::test_util::{all_policies, build, cluster, endpoint, outlier};
use crate::balance::{ClientLocality, PickContext};
use crate::model::{HealthStatus, Locality, LocalityLbSetting};

#[derive(Debug, Clone)]
struct Host {
    weight: u32,
    health: HealthStatus,
    ejected: bool,
    locality: usize,
}

fn host() -> impl Strategy<Value = Host> {
    (
        1u32..10,
        prop_oneof![
            6 => Just(HealthStatus::Healthy),
            1 => Just(HealthStatus::Unhealthy),
            1 => Just(HealthStatus::Draining),
        ],
        any::<bool>(),
        0usize..4,
    )
        .prop_map(|(weight, health, ejected, locality)| Host {
            weight,
            health,
            ejected,
            locality,
        })
}

const LOCALITIES: [&str; 4] = ["r1/z1/s1", "r1/z1/s2", "r1/z2/s1", "r2/z1/s1"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn picks_are_valid(
        hosts in proptest::collection::vec(host(), 0..40),
        policy in 0usize..6,
        locality_aware in any::<bool>(),
        min_health in prop_oneof![Just(None), Just(Some(0u32)), Just(Some(50u32))],
        seed in any::<u64>(),
    ) {
        let lb = all_policies().swap_remove(policy);
        let mut c = cluster(
            lb,
            hosts
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    let mut e = endpoint(i, h.weight, LOCALITIES[h.locality]);
                    e.health = h.health;
                    e
                })
                .collect(),
        );
        c.outlier = min_health.and_then(outlier);
        c.locality_lb = LocalityLbSetting { enabled: locality_aware, ..LocalityLbSetting::default() };
        let client = ClientLocality { locality: Locality::parse("r1/z1/s1"), ..ClientLocality::default() };
        let (state, balancer) = build(&c, &client);
        for (i, h) in hosts.iter().enumerate() {
            state.endpoints()[i].set_ejected(h.ejected);
        }
        let mut rng = SmallRng::seed_from_u64(seed);
        let ctx = PickContext::new(tokio::time::Instant::now());
        let any_healthy = hosts.iter().any(|h| h.health == HealthStatus::Healthy && !h.ejected);
        for _ in 0..50 {
            let picked = balancer.pick(&ctx.with_hash(rand::Rng::random(&mut rng)), &mut rng);
            if let Some(i) = picked {
                prop_assert!(i < hosts.len());
                prop_assert_eq!(hosts[i].health, HealthStatus::Healthy);
                let level = balancer.priority(i).unwrap() as usize;
                prop_assert!(!hosts[i].ejected || balancer.in_panic(level));
            } else {
                // Nothing picked only when nothing healthy could be (or no panic rescues it).
                prop_assert!(!any_healthy);
            }
        }
    }
}

proptest! {
    #[test]
    fn weighted_pick_never_returns_a_zero_weight(weights in proptest::collection::vec(0u32..5, 0..8), seed in any::<u64>()) {
        use crate::model::{ClusterName, HeaderMutation, WeightedCluster};
        let routes: Vec<WeightedCluster> = weights
            .iter()
            .enumerate()
            .map(|(i, &weight)| WeightedCluster {
                cluster: ClusterName::new(i.to_string()),
                weight,
                request_headers: HeaderMutation::default(),
                response_headers: HeaderMutation::default(),
            })
            .collect();
        let pick = crate::balance::WeightedPick::new(&routes);
        let mut rng = SmallRng::seed_from_u64(seed);
        for _ in 0..20 {
            match pick.pick(&mut rng) {
                Some(c) => prop_assert!(c.weight > 0),
                None => prop_assert!(weights.iter().all(|&w| w == 0)),
            }
        }
    }

    #[test]
    fn round_robin_cycles_are_exact(weights in proptest::collection::vec(1u32..20, 1..12)) {
        let endpoints = weights.iter().enumerate().map(|(i, &w)| endpoint(i, w, "")).collect();
        let (_state, balancer) = build(&cluster(crate::model::LbPolicy::RoundRobin, endpoints), &ClientLocality::default());
        let g = weights.iter().copied().fold(0, gcd);
        let cycle: u32 = weights.iter().map(|w| w / g).sum();
        let mut rng = SmallRng::seed_from_u64(0);
        let ctx = PickContext::new(tokio::time::Instant::now());
        let mut counts = vec![0u32; weights.len()];
        for _ in 0..cycle * 3 {
            counts[balancer.pick(&ctx, &mut rng).unwrap()] += 1;
        }
        for (i, &w) in weights.iter().enumerate() {
            prop_assert_eq!(counts[i], 3 * w / g);
        }
    }

    #[test]
    fn backoff_stays_below_its_ceiling(base_ms in 1u64..100, max_ms in 1u64..2000, retry in 0u32..40, seed in any::<u64>()) {
        use std::time::Duration;
        let b = crate::resilience::Backoff::new(Duration::from_millis(base_ms), Duration::from_millis(max_ms));
        let mut rng = SmallRng::seed_from_u64(seed);
        let ceiling = b.ceiling(retry);
        prop_assert!(ceiling <= Duration::from_millis(max_ms.max(base_ms)));
        prop_assert!(b.delay(retry, &mut rng) < ceiling);
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}
