//! Outlier detection with explicit time values.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{EjectReason, Outcome, OutlierDetector};
use crate::balance::test_util::uniform;
use crate::balance::{ClusterState, EndpointStats};
use crate::model::{LbPolicy, OutlierDetection};

fn setup(n: usize, config: OutlierDetection) -> (Instant, Arc<ClusterState>, OutlierDetector) {
    let t0 = Instant::now();
    let cluster = uniform(LbPolicy::LeastRequest, n);
    let state = Arc::new(ClusterState::new(cluster.name.clone(), t0));
    state.update(&cluster.endpoints, t0);
    let detector = OutlierDetector::new(config, Arc::clone(&state));
    (t0, state, detector)
}

fn fail(
    d: &OutlierDetector,
    e: &EndpointStats,
    times: u32,
    outcome: Outcome,
    now: Instant,
) -> bool {
    (0..times)
        .map(|_| d.report(e, outcome, now))
        .fold(false, |ejected, r| ejected | r.is_some())
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn consecutive_5xx_ejects_and_success_resets() {
    let (t0, state, d) = setup(10, OutlierDetection::default());
    let e = &state.endpoints()[0];
    assert!(!fail(&d, e, 4, Outcome::Response(500), t0));
    d.report(e, Outcome::Response(200), t0);
    assert!(!fail(&d, e, 4, Outcome::Response(503), t0));
    let ejection = d.report(e, Outcome::Response(500), t0).unwrap();
    assert_eq!(ejection.reason, EjectReason::Consecutive5xx);
    assert_eq!(ejection.duration, secs(30));
    assert!(e.is_ejected());
    assert_eq!(d.ejected(), 1);
    // 4xx are not failures.
    let other = &state.endpoints()[1];
    assert!(!fail(&d, other, 50, Outcome::Response(404), t0));
}

#[test]
fn local_failures_count_as_5xx_unless_split() {
    let (t0, state, d) = setup(10, OutlierDetection::default());
    let e = &state.endpoints()[0];
    assert!(fail(&d, e, 5, Outcome::LocalFailure, t0));

    let split = OutlierDetection {
        split_external_local_origin_errors: true,
        consecutive_local_origin_failures: 3,
        ..OutlierDetection::default()
    };
    let (t0, state, d) = setup(10, split);
    let e = &state.endpoints()[0];
    // Local failures no longer feed the 5xx counter…
    assert!(!fail(&d, e, 2, Outcome::LocalFailure, t0));
    d.report(e, Outcome::LocalSuccess, t0);
    assert!(!fail(&d, e, 2, Outcome::LocalFailure, t0));
    assert!(!fail(&d, e, 4, Outcome::Response(500), t0));
    // …but have their own threshold.
    let ejection = d.report(e, Outcome::LocalFailure, t0).unwrap();
    assert_eq!(ejection.reason, EjectReason::ConsecutiveLocalOriginFailures);
}

#[test]
fn gateway_errors_have_their_own_threshold() {
    let config = OutlierDetection {
        consecutive_5xx: 0,
        consecutive_gateway_errors: 3,
        ..OutlierDetection::default()
    };
    let (t0, state, d) = setup(10, config);
    let e = &state.endpoints()[0];
    assert!(!fail(&d, e, 2, Outcome::Response(502), t0));
    // A non-gateway 5xx breaks the gateway streak.
    assert!(!fail(&d, e, 1, Outcome::Response(500), t0));
    assert!(!fail(&d, e, 2, Outcome::Response(504), t0));
    let ejection = d.report(e, Outcome::Response(503), t0).unwrap();
    assert_eq!(ejection.reason, EjectReason::ConsecutiveGatewayErrors);
    // consecutive_5xx 0 disables that rule.
    let f = &state.endpoints()[1];
    assert!(!fail(&d, f, 100, Outcome::Response(500), t0));
}

#[test]
fn ejection_time_grows_is_capped_and_decays() {
    let config = OutlierDetection {
        base_ejection_time: secs(30),
        max_ejection_time: secs(100),
        interval: secs(10),
        ..OutlierDetection::default()
    };
    let (t0, state, d) = setup(10, config);
    let e = &state.endpoints()[0];
    let mut now = t0;
    let mut durations = Vec::new();
    for _ in 0..5 {
        let ejection = (0..5)
            .find_map(|_| d.report(e, Outcome::Response(500), now))
            .unwrap();
        durations.push(ejection.duration.as_secs());
        // Still out just before the time is up, back at the first sweep after it.
        assert!(d.sweep(now + ejection.duration - secs(1)).is_empty());
        assert!(e.is_ejected());
        now += ejection.duration;
        assert_eq!(d.sweep(now), vec![e.address().clone()]);
        assert!(!e.is_ejected());
    }
    assert_eq!(durations, vec![30, 60, 90, 100, 100]);
    // Healthy intervals bring the multiplier down one per sweep: after two, 30 s × 2.
    now += secs(10);
    d.sweep(now);
    now += secs(10);
    d.sweep(now);
    let ejection = (0..5)
        .find_map(|_| d.report(e, Outcome::Response(500), now))
        .unwrap();
    assert_eq!(ejection.duration, secs(60));
    assert_eq!(ejection.times, 6);
}

#[test]
fn max_ejection_percent_limits_ejections_but_one_is_always_allowed() {
    let config = OutlierDetection {
        max_ejection_percent: 20,
        ..OutlierDetection::default()
    };
    let (t0, state, d) = setup(10, config.clone());
    let eps = state.endpoints();
    assert!(fail(&d, &eps[0], 5, Outcome::Response(500), t0));
    assert!(fail(&d, &eps[1], 5, Outcome::Response(500), t0));
    // A third would be 30 % > 20 %.
    assert!(!fail(&d, &eps[2], 5, Outcome::Response(500), t0));
    assert_eq!(d.ejected(), 2);
    // The refused streak starts over: another full streak is refused again while two are out…
    assert!(!fail(&d, &eps[2], 5, Outcome::Response(500), t0));
    // …and allowed once they are back.
    assert_eq!(d.sweep(t0 + secs(30)).len(), 2);
    assert!(!fail(&d, &eps[2], 4, Outcome::Response(500), t0 + secs(31)));
    assert!(fail(&d, &eps[2], 1, Outcome::Response(500), t0 + secs(31)));

    // 10 % of 3 endpoints is less than one, but one can always be ejected.
    let config = OutlierDetection {
        max_ejection_percent: 10,
        ..OutlierDetection::default()
    };
    let (t0, state, d) = setup(3, config);
    let eps = state.endpoints();
    assert!(fail(&d, &eps[0], 5, Outcome::Response(500), t0));
    assert!(!fail(&d, &eps[1], 5, Outcome::Response(500), t0));
}

#[test]
fn ejection_state_survives_a_config_swap_and_removed_endpoints_are_ignored() {
    let (t0, state, d) = setup(4, OutlierDetection::default());
    let eps = state.endpoints();
    assert!(fail(&d, &eps[0], 5, Outcome::Response(500), t0));
    // New version without endpoint 1, with endpoint 0 kept.
    let mut next = uniform(LbPolicy::LeastRequest, 4);
    let kept: Vec<_> = next
        .endpoints
        .iter()
        .filter(|e| e.address != *eps[1].address())
        .cloned()
        .collect();
    next.endpoints = kept.into();
    state.update(&next.endpoints, t0);
    let d2 = OutlierDetector::new(OutlierDetection::default(), Arc::clone(&state));
    assert!(state.endpoints()[0].is_ejected());
    assert_eq!(d2.ejected(), 1);
    // Reports for the removed endpoint (requests still in flight) never eject it.
    assert!(!fail(&d2, &eps[1], 10, Outcome::Response(500), t0));
}

#[test]
fn grpc_statuses_map_like_envoy() {
    assert_eq!(Outcome::grpc(0), Outcome::Response(200));
    assert_eq!(Outcome::grpc(14), Outcome::Response(503));
    assert_eq!(Outcome::grpc(4), Outcome::Response(504));
    assert_eq!(Outcome::grpc(13), Outcome::Response(500));
    assert_eq!(Outcome::grpc(5), Outcome::Response(404));
    let (t0, state, d) = setup(10, OutlierDetection::default());
    let e = &state.endpoints()[0];
    assert!(!fail(&d, e, 10, Outcome::grpc(5), t0));
    assert!(fail(&d, e, 5, Outcome::grpc(14), t0));
}
