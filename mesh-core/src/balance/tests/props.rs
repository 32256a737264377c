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
