//! Runtime state survives config swaps for endpoints that remain.

use std::sync::Arc;

use crate::balance::test_util::{build, endpoint, uniform};
use crate::balance::{Balancer, ClientLocality, StatsRegistry};
use crate::model::LbPolicy;

#[test]
fn stats_are_kept_by_address_across_versions() {
    let v1 = uniform(LbPolicy::LeastRequest, 3);
    let (state, b1) = build(&v1, &ClientLocality::default());
    let now = tokio::time::Instant::now();
    let on_removed = b1.stats(0).unwrap().start(now);
    let on_kept = b1.stats(1).unwrap().start(now);
    let mut v2 = v1.clone();
    v2.endpoints = vec![endpoint(2, 1, ""), endpoint(1, 1, ""), endpoint(9, 1, "")].into();
    let b2 = Balancer::new(&v2, &state, &ClientLocality::default(), now).unwrap();
    // Endpoint 1 kept its stats (and its in-flight request), at its new position.
    assert!(Arc::ptr_eq(b2.stats(1).unwrap(), b1.stats(1).unwrap()));
    assert_eq!(b2.stats(1).unwrap().in_flight(), 1);
    assert!(Arc::ptr_eq(b2.stats(0).unwrap(), b1.stats(2).unwrap()));
    assert_eq!(b2.stats(2).unwrap().in_flight(), 0);
    // The removed endpoint is gone from the state but its request finishes normally.
    assert!(state.get(&crate::balance::test_util::address(0)).is_none());
    assert_eq!(on_removed.stats().in_flight(), 1);
    drop(on_removed);
    on_kept.finish(now);
    assert_eq!(b2.stats(1).unwrap().in_flight(), 0);
}

#[test]
fn registry_keeps_one_state_per_cluster() {
    let registry = StatsRegistry::new();
    let now = tokio::time::Instant::now();
    let c = uniform(LbPolicy::Random, 2);
    let a = registry.cluster(&c.name, now);
    let b = registry.cluster(&c.name, now);
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(registry.len(), 1);
    registry.retain([]);
    assert!(registry.is_empty());
}
