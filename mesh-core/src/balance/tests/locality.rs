//! Locality priorities, failover, failoverPriority and distribute.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::balance::test_util::{assert_within_5_sigma, build, cluster, endpoint, outlier};
use crate::balance::{Balancer, ClientLocality, PickContext};
use crate::model::{Cluster, LbPolicy, Locality, LocalityFailover, LocalityLbSetting};

fn client(locality: &str) -> ClientLocality {
    ClientLocality {
        locality: Locality::parse(locality),
        labels: BTreeMap::new(),
    }
}

/// Two endpoints per locality: same subzone, same zone, same region, failover region, other.
fn spread(lb: LbPolicy) -> Cluster {
    let localities = [
        "us-east/a/1",
        "us-east/a/2",
        "us-east/b/1",
        "us-west/a/1",
        "eu/a/1",
    ];
    let mut c = cluster(
        lb,
        (0..10).map(|i| endpoint(i, 1, localities[i / 2])).collect(),
    );
    c.outlier = outlier(0);
    c.locality_lb = LocalityLbSetting {
        enabled: true,
        failover: vec![LocalityFailover {
            from: "us-east".into(),
            to: "us-west".into(),
        }],
        ..LocalityLbSetting::default()
    };
    c
}

fn picked(balancer: &Balancer, n: usize) -> Vec<usize> {
    let mut rng = SmallRng::seed_from_u64(8);
    let ctx = PickContext::new(tokio::time::Instant::now());
    (0..n)
        .filter_map(|_| balancer.pick(&ctx, &mut rng))
        .collect()
}

#[test]
fn priorities_follow_istio_and_fail_over_in_order() {
    let (state, balancer) = build(&spread(LbPolicy::RoundRobin), &client("us-east/a/1"));
    let priorities: Vec<_> = (0..10).map(|i| balancer.priority(i).unwrap()).collect();
    assert_eq!(priorities, vec![0, 0, 1, 1, 2, 2, 3, 3, 4, 4]);
    assert!(picked(&balancer, 100).iter().all(|&i| i < 2));
    // Eject level after level: traffic moves to the next, and to the failover region before
    // the other one.
    for level in 0..4 {
        for i in [2 * level, 2 * level + 1] {
            state.endpoints()[i].set_ejected(true);
        }
        let next = 2 * (level + 1);
        assert!(
            picked(&balancer, 100)
                .iter()
                .all(|&i| i == next || i == next + 1),
            "after ejecting level {level}"
        );
    }
}

#[test]
fn partial_health_spills_over_by_overprovisioning() {
    let mut c = cluster(
        LbPolicy::Random,
        (0..8)
            .map(|i| endpoint(i, 1, if i < 4 { "r/z/s" } else { "r/z/other" }))
            .collect(),
    );
    c.outlier = outlier(0);
    c.locality_lb.enabled = true;
    let (state, balancer) = build(&c, &client("r/z/s"));
    assert_eq!(balancer.priority_loads(), vec![100, 0]);
    // 3 of 4 healthy: 1.4 × 75 % ≥ 100 %, level 0 keeps everything.
    state.endpoints()[0].set_ejected(true);
    assert_eq!(balancer.priority_loads(), vec![100, 0]);
    // 2 of 4: 1.4 × 50 % = 70 %, the rest spills to level 1.
    state.endpoints()[1].set_ejected(true);
    assert_eq!(balancer.priority_loads(), vec![70, 30]);
    let n = 10_000;
    let level1 = picked(&balancer, n as usize)
        .iter()
        .filter(|&&i| i >= 4)
        .count() as u32;
    assert_within_5_sigma(level1, n, 0.3);
}

#[test]
fn no_outlier_detection_means_no_failover_priorities() {
    let mut c = spread(LbPolicy::Random);
    c.outlier = None;
    let (_state, balancer) = build(&c, &client("us-east/a/1"));
    assert!((0..10).all(|i| balancer.priority(i) == Some(0)));
    let mut c = spread(LbPolicy::Random);
    c.locality_lb.enabled = false;
    let (_state, balancer) = build(&c, &client("us-east/a/1"));
    assert!((0..10).all(|i| balancer.priority(i) == Some(0)));
}

#[test]
fn failover_priority_labels_order_endpoints() {
    let mut c = cluster(
        LbPolicy::Random,
        (0..4).map(|i| endpoint(i, 1, "r/z/s")).collect(),
    );
    let mut eps = c.endpoints.to_vec();
    let label = |e: &mut crate::model::Endpoint, net: &str, ver: &str| {
        e.labels
            .insert("topology.istio.io/network".into(), net.into());
        e.labels.insert("version".into(), ver.into());
    };
    label(&mut eps[0], "n1", "v1");
    label(&mut eps[1], "n1", "v2");
    label(&mut eps[2], "n2", "v1");
    label(&mut eps[3], "n2", "v2");
    c.endpoints = eps.into();
    c.outlier = outlier(0);
    c.locality_lb = LocalityLbSetting {
        enabled: true,
        failover_priority: vec!["topology.istio.io/network".into(), "version".into()],
        ..LocalityLbSetting::default()
    };
    let mut me = client("r/z/s");
    me.labels
        .insert("topology.istio.io/network".into(), "n1".into());
    me.labels.insert("version".into(), "v1".into());
    let (_state, balancer) = build(&c, &me);
    let priorities: Vec<_> = (0..4).map(|i| balancer.priority(i).unwrap()).collect();
    // Both labels match → 0; network only → 1; neither (first label differs) → 2.
    assert_eq!(priorities, vec![0, 1, 2, 2]);
}

#[test]
fn distribute_splits_by_percent_and_drops_unlisted_localities() {
    let mut c = cluster(
        LbPolicy::Random,
        vec![
            endpoint(0, 1, "us-east/a/1"),
            endpoint(1, 1, "us-east/b/1"),
            endpoint(2, 1, "us-west/a/1"),
            endpoint(3, 3, "us-west/a/1"),
            endpoint(4, 1, "eu/a/1"),
        ],
    );
    let mut to = BTreeMap::new();
    to.insert("us-east/*".to_string(), 80);
    to.insert("us-west/*".to_string(), 20);
    c.locality_lb = LocalityLbSetting {
        enabled: true,
        distribute: vec![("us-east/*".into(), to)],
        ..LocalityLbSetting::default()
    };
    let (_state, balancer) = build(&c, &client("us-east/a/1"));
    assert_eq!(balancer.priority(4), None);
    assert_eq!(balancer.weight(4), 0);
    let n = 20_000u32;
    let picks = picked(&balancer, n as usize);
    let count = |i: usize| picks.iter().filter(|&&p| p == i).count() as u32;
    assert_eq!(count(4), 0);
    // us-east 80 % split by weight over its two localities; us-west 20 % split 1:3.
    assert_within_5_sigma(count(0), n, 0.40);
    assert_within_5_sigma(count(1), n, 0.40);
    assert_within_5_sigma(count(2), n, 0.05);
    assert_within_5_sigma(count(3), n, 0.15);
    // A caller elsewhere is not matched by the rule: every endpoint, by weight.
    let (_state, balancer) = build(&c, &client("eu/a/1"));
    assert_eq!(balancer.priority(4), Some(0));
}
