//! Requests for hosts no resource declares, as Istio's `outboundTrafficPolicy` has them:
//! `ALLOW_ANY` sends them to Istio's `PassthroughCluster` — plaintext, to the host and port the
//! application named, resolved by DNS — and `REGISTRY_ONLY` to the `BlackHoleCluster` (502).
//!
//! istiod builds both as catch-all virtual hosts of each outbound HTTP route configuration
//! (pilot/pkg/networking/core/httproute.go: the `allow_any` virtual host routing to
//! `PassthroughCluster`, or `block_all` answering 502). mesh does the same when routing finds no
//! virtual host (or no route configuration) for the authority; a virtual host whose routes do
//! not match still answers 404.
//!
//! Metrics name the cluster, never the authority (an unbounded input): `destination_service`
//! and `destination_service_name` are `PassthroughCluster` / `BlackHoleCluster`.

use std::net::IpAddr;
use std::sync::Arc;

use mesh_core::model::{
    Cluster, ClusterName, ConnectionPool, Endpoint, EndpointAddress, HealthStatus, LbPolicy,
    LocalityLbSetting, Protocol, Resolution, RetryBudget, ServiceKey, TlsMode, UpstreamTls,
};

/// Istio's name of the pass-through cluster.
pub(crate) const PASSTHROUGH: &str = "PassthroughCluster";
/// Istio's name of the cluster that drops traffic.
pub(crate) const BLACKHOLE: &str = "BlackHoleCluster";

/// The service key metrics carry for `name` (`PASSTHROUGH` or `BLACKHOLE`).
pub(crate) fn service(name: &str, port: u16) -> ServiceKey {
    ServiceKey {
        host: name.to_owned(),
        namespace: String::new(),
        port,
        subset: None,
    }
}

/// The host of an authority (`host`, `host:port`, `[v6]:port`), without brackets.
pub(crate) fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(h, _)| h);
    }
    authority
        .rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(authority, |(h, _)| h)
}

/// The pass-through cluster for `host:port`: one plaintext endpoint, by IP when `host` is
/// one, else by DNS name.
pub(crate) fn cluster(host: &str, port: u16) -> Cluster {
    let address = match host.parse::<IpAddr>() {
        Ok(ip) => EndpointAddress::Socket((ip, port).into()),
        Err(_) => EndpointAddress::Dns {
            host: host.to_ascii_lowercase(),
            port,
        },
    };
    Cluster {
        name: ClusterName::new(PASSTHROUGH),
        service: service(PASSTHROUGH, port),
        protocol: Protocol::Unspecified,
        resolution: Resolution::Dns,
        endpoints: Arc::from([Endpoint {
            address,
            labels: Default::default(),
            weight: 1,
            locality: Default::default(),
            identity: None,
            health: HealthStatus::Healthy,
            priority: 0,
            locality_weight: None,
        }]),
        lb: LbPolicy::RoundRobin,
        slow_start: None,
        locality_lb: LocalityLbSetting::default(),
        locality_weighted_lb: false,
        tls: UpstreamTls {
            mode: TlsMode::Disable,
            ..UpstreamTls::istio_mutual()
        },
        connection_pool: ConnectionPool::default(),
        outlier: None,
        retry_budget: RetryBudget::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_authorities() {
        assert_eq!(host_of("example.com"), "example.com");
        assert_eq!(host_of("localhost:8080"), "localhost");
        assert_eq!(host_of("[::1]:80"), "::1");
        assert_eq!(host_of("127.0.0.1:9"), "127.0.0.1");
    }

    #[test]
    fn ip_hosts_skip_dns() {
        let c = cluster("127.0.0.1", 9);
        assert_eq!(
            c.endpoints[0].address,
            EndpointAddress::Socket(([127, 0, 0, 1], 9).into())
        );
        let c = cluster("LocalHost", 9);
        assert_eq!(
            c.endpoints[0].address,
            EndpointAddress::Dns {
                host: "localhost".into(),
                port: 9
            }
        );
        assert_eq!(c.tls.mode, TlsMode::Disable);
    }
}
