//! Consistent hashing: same key, same endpoint; removing an endpoint moves about 1/N of keys.

use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::balance::test_util::{build, uniform};
use crate::balance::{ClientLocality, PickContext, hash_key};
use crate::model::{EndpointAddress, HashKey, LbPolicy};

fn ring() -> LbPolicy {
    LbPolicy::RingHash {
        key: HashKey::Header("x-user".into()),
        minimum_ring_size: 1024,
    }
}

fn maglev() -> LbPolicy {
    LbPolicy::Maglev {
        key: HashKey::Header("x-user".into()),
        table_size: 65_537,
    }
}

/// Where each of `keys` lands, by address, in a cluster of `n` endpoints minus `removed`.
fn placement(lb: &LbPolicy, n: usize, removed: Option<usize>, keys: u32) -> Vec<EndpointAddress> {
    let mut cluster = uniform(lb.clone(), n);
    if let Some(r) = removed {
        let mut endpoints = cluster.endpoints.to_vec();
        endpoints.remove(r);
        cluster.endpoints = endpoints.into();
    }
    let (_state, balancer) = build(&cluster, &ClientLocality::default());
    let mut rng = SmallRng::seed_from_u64(0);
    let now = tokio::time::Instant::now();
    (0..keys)
        .map(|k| {
            let ctx = PickContext::new(now).with_hash(hash_key(format!("user-{k}").as_bytes()));
            let i = balancer.pick(&ctx, &mut rng).unwrap();
            cluster.endpoints[i].address.clone()
        })
        .collect()
}

#[test]
fn same_key_same_endpoint() {
    for lb in [ring(), maglev()] {
        let (_state, balancer) = build(&uniform(lb, 20), &ClientLocality::default());
        let mut rng = SmallRng::seed_from_u64(3);
        let ctx = PickContext::new(tokio::time::Instant::now()).with_hash(hash_key(b"alice"));
        let first = balancer.pick(&ctx, &mut rng);
        assert!((0..100).all(|_| balancer.pick(&ctx, &mut rng) == first));
    }
}

#[test]
fn removing_one_endpoint_remaps_about_one_nth() {
    let n = 10;
    let keys = 10_000;
    for (lb, extra_allowed) in [(ring(), 0.0), (maglev(), 0.03)] {
        let before = placement(&lb, n, None, keys);
        let after = placement(&lb, n, Some(3), keys);
        let removed = crate::balance::test_util::address(3);
        let on_removed = before.iter().filter(|a| **a == removed).count() as f64;
        let moved_others = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| **b != removed && b != a)
            .count() as f64;
        let k = f64::from(keys);
        // The removed endpoint held about 1/N of the keys…
        assert!(
            (on_removed / k - 0.1).abs() < 0.05,
            "{lb:?}: {on_removed} keys on the removed endpoint"
        );
        // …and (almost) nothing else moved: a ring moves nothing else, Maglev a little.
        assert!(
            moved_others / k <= extra_allowed,
            "{lb:?}: {moved_others} other keys moved"
        );
        assert!(after.iter().all(|a| *a != removed));
    }
}

#[test]
fn ejected_endpoint_keys_move_and_come_back() {
    for lb in [ring(), maglev()] {
        let (state, balancer) = build(&uniform(lb.clone(), 10), &ClientLocality::default());
        let mut rng = SmallRng::seed_from_u64(0);
        let now = tokio::time::Instant::now();
        let ctxs: Vec<PickContext> = (0..2000)
            .map(|k| PickContext::new(now).with_hash(hash_key(format!("k{k}").as_bytes())))
            .collect();
        let before: Vec<usize> = ctxs
            .iter()
            .map(|c| balancer.pick(c, &mut rng).unwrap())
            .collect();
        let victim = before[0];
        assert!(state.endpoints()[victim].set_ejected(true));
        let during: Vec<usize> = ctxs
            .iter()
            .map(|c| balancer.pick(c, &mut rng).unwrap())
            .collect();
        assert!(during.iter().all(|&i| i != victim), "{lb:?}");
        let moved = before
            .iter()
            .zip(&during)
            .filter(|(b, d)| **b != victim && b != d)
            .count();
        assert_eq!(moved, 0, "{lb:?}: keys of healthy endpoints stay");
        state.endpoints()[victim].set_ejected(false);
        let after: Vec<usize> = ctxs
            .iter()
            .map(|c| balancer.pick(c, &mut rng).unwrap())
            .collect();
        assert_eq!(before, after);
    }
}
