//! Slow start (Istio `loadBalancer.warmup`): a new endpoint's share ramps as Envoy's
//! `EdfLoadBalancerBase::applySlowStartFactor` (load_balancer_impl.cc) scales its weight by
//! `max(min_weight_percent, (age / window) ^ (1 / aggression))`; an endpoint's age counts from
//! the config version that first had it (Envoy: `recalculateHostsInSlowStart`, a host's slow start
//! starts when it is first seen healthy with no active health checks).

use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::time::Instant;

use crate::balance::test_util::{assert_within_5_sigma, cluster, endpoint};
use crate::balance::{Balancer, ClientLocality, ClusterState, PickContext};
use crate::model::{LbPolicy, SlowStart};

const WINDOW: Duration = Duration::from_secs(100);

/// Endpoints 0 and 1 from `t0`, endpoint 2 joining at `t0 + 200 s`; picks at `t0 + 200 s + age`.
/// Returns endpoint 2's share of `n` picks.
fn new_endpoint_picks(lb: LbPolicy, slow_start: SlowStart, age: Duration, n: u32) -> u32 {
    let t0 = Instant::now();
    let lb_is_peak_ewma = lb == LbPolicy::PeakEwma;
    let old = cluster(lb.clone(), vec![endpoint(0, 1, ""), endpoint(1, 1, "")]);
    let state = Arc::new(ClusterState::new(old.name.clone(), t0));
    Balancer::new(&old, &state, &ClientLocality::default(), t0).expect("valid");
    let joined = t0 + Duration::from_secs(200);
    let mut grown = cluster(
        lb,
        vec![endpoint(0, 1, ""), endpoint(1, 1, ""), endpoint(2, 1, "")],
    );
    grown.slow_start = Some(slow_start);
    let balancer =
        Balancer::new(&grown, &state, &ClientLocality::default(), joined).expect("valid");
    let ctx = PickContext::new(joined + age);
    if lb_is_peak_ewma {
        // PEAK_EWMA prefers the endpoint with the lower latency estimate, and a newer endpoint's
        // starting estimate has decayed less: one equal (peak) sample for all makes their costs
        // equal, so proposals follow the weights as under LEAST_REQUEST with no load.
        for i in 0..balancer.len() {
            let stats = balancer.stats(i).expect("an endpoint");
            stats.observe_rtt(Duration::from_secs(1000), ctx.now);
        }
    }
    let mut rng = SmallRng::seed_from_u64(7);
    (0..n)
        .filter(|_| balancer.pick(&ctx, &mut rng) == Some(2))
        .count() as u32
}

fn istio_default(window: Duration) -> SlowStart {
    // istiod's `setWarmup` defaults: aggression 1.0, minimum 10 %.
    SlowStart {
        window,
        aggression: 1.0,
        min_weight_percent: 10.0,
    }
}

/// Share of the new endpoint when its factor is `f` and two old ones have factor 1.
fn share(f: f64) -> f64 {
    f / (2.0 + f)
}

#[test]
fn a_new_endpoint_ramps_linearly_under_least_request_and_round_robin() {
    let n = 60_000;
    // PEAK_EWMA is mesh's stand-in for LEAST_REQUEST, so it ramps too.
    for lb in [
        LbPolicy::LeastRequest,
        LbPolicy::RoundRobin,
        LbPolicy::PeakEwma,
    ] {
        // Half way through the window: half its weight.
        let c = new_endpoint_picks(lb.clone(), istio_default(WINDOW), WINDOW / 2, n);
        assert_within_5_sigma(c, n, share(0.5));
        // Early on: the 10 % floor.
        let c = new_endpoint_picks(lb.clone(), istio_default(WINDOW), Duration::from_secs(2), n);
        assert_within_5_sigma(c, n, share(0.1));
        // After the window: a full share.
        let c = new_endpoint_picks(lb.clone(), istio_default(WINDOW), WINDOW, n);
        assert_within_5_sigma(c, n, 1.0 / 3.0);
    }
}

#[test]
fn aggression_bends_the_ramp() {
    let n = 60_000;
    // (0.25) ^ (1 / 2) = 0.5: aggression 2 ramps faster at first.
    let fast = SlowStart {
        aggression: 2.0,
        min_weight_percent: 0.0,
        ..istio_default(WINDOW)
    };
    let c = new_endpoint_picks(LbPolicy::LeastRequest, fast, WINDOW / 4, n);
    assert_within_5_sigma(c, n, share(0.5));
    // (0.5) ^ (1 / 0.5) = 0.25: aggression below 1 ramps slower.
    let slow = SlowStart {
        aggression: 0.5,
        min_weight_percent: 0.0,
        ..istio_default(WINDOW)
    };
    let c = new_endpoint_picks(LbPolicy::RoundRobin, slow, WINDOW / 2, n);
    assert_within_5_sigma(c, n, share(0.25));
}

#[test]
fn without_warmup_or_under_other_policies_a_new_endpoint_gets_its_full_share() {
    let n = 30_000;
    // Envoy supports slow start for ROUND_ROBIN and LEAST_REQUEST only.
    let c = new_endpoint_picks(LbPolicy::Random, istio_default(WINDOW), WINDOW / 10, n);
    assert_within_5_sigma(c, n, 1.0 / 3.0);
    // A zero-length window is no slow start.
    let c = new_endpoint_picks(
        LbPolicy::LeastRequest,
        istio_default(Duration::ZERO),
        Duration::ZERO,
        n,
    );
    assert_within_5_sigma(c, n, 1.0 / 3.0);
}

/// Endpoints that all joined together are equally new, so they share evenly (Envoy's docs: slow
/// start "is not very effective" for a fresh deployment).
#[test]
fn endpoints_that_joined_together_share_evenly() {
    let t0 = Instant::now();
    let mut c = cluster(
        LbPolicy::RoundRobin,
        (0..3).map(|i| endpoint(i, 1, "")).collect(),
    );
    c.slow_start = Some(istio_default(WINDOW));
    let state = Arc::new(ClusterState::new(c.name.clone(), t0));
    let balancer = Balancer::new(&c, &state, &ClientLocality::default(), t0).expect("valid");
    let ctx = PickContext::new(t0 + WINDOW / 5);
    let mut rng = SmallRng::seed_from_u64(3);
    let n = 30_000;
    let mut counts = [0u32; 3];
    for _ in 0..n {
        counts[balancer.pick(&ctx, &mut rng).expect("a pick")] += 1;
    }
    for c in counts {
        assert_within_5_sigma(c, n, 1.0 / 3.0);
    }
}
