//! Helpers for the balancing tests: clusters, endpoints, statistics.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::time::Instant;

use super::{Balancer, ClientLocality, ClusterState};
use crate::model::{
    Cluster, ClusterName, ConnectionPool, Endpoint, EndpointAddress, HealthStatus, LbPolicy,
    Locality, LocalityLbSetting, OutlierDetection, Protocol, Resolution, RetryBudget, ServiceKey,
    UpstreamTls,
};

/// Asserts that `count` successes out of `n` draws fit probability `p` within 5 standard
/// deviations of the binomial.
pub(crate) fn assert_within_5_sigma(count: u32, n: u32, p: f64) {
    let n = f64::from(n);
    let expected = n * p;
    let sigma = (n * p * (1.0 - p)).sqrt();
    let diff = (f64::from(count) - expected).abs();
    assert!(
        diff <= 5.0 * sigma.max(1.0),
        "count {count} of {n} draws, expected {expected:.1} ± 5×{sigma:.2}"
    );
}

/// The address of test endpoint `i`.
pub(crate) fn address(i: usize) -> EndpointAddress {
    let addr: SocketAddr = format!("10.0.{}.{}:8080", i / 256, i % 256)
        .parse()
        .expect("a valid socket address");
    EndpointAddress::Socket(addr)
}

/// A healthy endpoint `i` with `weight` in `locality`.
pub(crate) fn endpoint(i: usize, weight: u32, locality: &str) -> Endpoint {
    Endpoint {
        address: address(i),
        labels: BTreeMap::new(),
        weight,
        locality: Locality::parse(locality),
        identity: None,
        health: HealthStatus::Healthy,
        priority: 0,
        locality_weight: None,
    }
}

/// A cluster of `endpoints` under `lb`.
pub(crate) fn cluster(lb: LbPolicy, endpoints: Vec<Endpoint>) -> Cluster {
    Cluster {
        name: ClusterName::outbound("svc.default.svc.cluster.local", 80, None),
        service: ServiceKey {
            host: "svc.default.svc.cluster.local".into(),
            namespace: "default".into(),
            port: 80,
            subset: None,
        },
        protocol: Protocol::Http,
        resolution: Resolution::Static,
        endpoints: endpoints.into(),
        lb,
        locality_lb: LocalityLbSetting::default(),
        locality_weighted_lb: false,
        tls: UpstreamTls::istio_mutual(),
        connection_pool: ConnectionPool::default(),
        outlier: None,
        retry_budget: RetryBudget::default(),
        slow_start: None,
    }
}

/// `n` endpoints of weight 1, no locality.
pub(crate) fn uniform(lb: LbPolicy, n: usize) -> Cluster {
    cluster(lb, (0..n).map(|i| endpoint(i, 1, "")).collect())
}

/// Outlier detection with Istio's defaults except the panic threshold.
pub(crate) fn outlier(min_health_percent: u32) -> Option<OutlierDetection> {
    Some(OutlierDetection {
        min_health_percent,
        ..OutlierDetection::default()
    })
}

/// A state and balancer for `cluster`, seen from `client`.
pub(crate) fn build(cluster: &Cluster, client: &ClientLocality) -> (Arc<ClusterState>, Balancer) {
    let now = Instant::now();
    let state = Arc::new(ClusterState::new(cluster.name.clone(), now));
    let balancer = Balancer::new(cluster, &state, client, now).expect("a valid cluster");
    (state, balancer)
}

/// Every policy, hash ones with small tables.
pub(crate) fn all_policies() -> Vec<LbPolicy> {
    vec![
        LbPolicy::LeastRequest,
        LbPolicy::RoundRobin,
        LbPolicy::Random,
        LbPolicy::PeakEwma,
        LbPolicy::RingHash {
            key: crate::model::HashKey::SourceIp,
            minimum_ring_size: 1024,
        },
        LbPolicy::Maglev {
            key: crate::model::HashKey::SourceIp,
            table_size: 1009,
        },
    ]
}
