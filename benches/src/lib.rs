//! Shared helpers for the benchmarks.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use mesh_core::model::{
    Cluster, ClusterName, ConnectionPool, Endpoint, EndpointAddress, HashKey, HealthStatus,
    LbPolicy, Locality, LocalityLbSetting, Protocol, Resolution, RetryBudget, ServiceKey,
    UpstreamTls,
};

/// The six load-balancing policies with Istio's default table sizes, named for reports.
pub fn policies() -> Vec<(&'static str, LbPolicy)> {
    vec![
        ("least_request", LbPolicy::LeastRequest),
        ("round_robin", LbPolicy::RoundRobin),
        ("random", LbPolicy::Random),
        ("peak_ewma", LbPolicy::PeakEwma),
        (
            "ring_hash",
            LbPolicy::RingHash {
                key: HashKey::Header("x-user".into()),
                minimum_ring_size: 1024,
            },
        ),
        (
            "maglev",
            LbPolicy::Maglev {
                key: HashKey::Header("x-user".into()),
                table_size: 65_537,
            },
        ),
    ]
}

/// A cluster of `n` healthy endpoints of weight 1 on `10.x.y.z:8080` under `lb`.
pub fn cluster(lb: LbPolicy, n: usize) -> Arc<Cluster> {
    let endpoints: Vec<Endpoint> = (0..n)
        .map(|i| Endpoint {
            address: EndpointAddress::Socket(SocketAddr::from((
                [10, (i >> 16) as u8, (i >> 8) as u8, i as u8],
                8080,
            ))),
            labels: BTreeMap::new(),
            weight: 1,
            locality: Locality::default(),
            identity: None,
            health: HealthStatus::Healthy,
        })
        .collect();
    Arc::new(Cluster {
        name: ClusterName::outbound("bench.default.svc.cluster.local", 8080, None),
        service: ServiceKey {
            host: "bench.default.svc.cluster.local".into(),
            namespace: "default".into(),
            port: 8080,
            subset: None,
        },
        protocol: Protocol::Http,
        resolution: Resolution::Static,
        endpoints: endpoints.into(),
        lb,
        locality_lb: LocalityLbSetting::default(),
        tls: UpstreamTls::istio_mutual(),
        connection_pool: ConnectionPool::default(),
        outlier: None,
        retry_budget: RetryBudget::default(),
    })
}
