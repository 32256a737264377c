//! Shared helpers for the benchmarks: generated Istio configs and clusters of a given size, and
//! one call end to end, bare and through mesh ([`e2e`]).
#![forbid(unsafe_code)]

pub mod e2e;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use mesh_core::model::{
    Cluster, ClusterName, ConnectionPool, Endpoint, EndpointAddress, HashKey, HealthStatus,
    LbPolicy, Locality, LocalityLbSetting, Protocol, Resolution, RetryBudget, ServiceKey,
    UpstreamTls,
};

use std::fmt::Write as _;

/// Istio YAML for `services` services in namespace `default`, each a ServiceEntry on port 8080
/// with `endpoints` endpoints labelled across `subsets` versions, a DestinationRule declaring the
/// subsets, and a VirtualService splitting traffic over them with a header route in front.
pub fn fleet_yaml(services: usize, endpoints: usize, subsets: usize) -> String {
    let mut out = String::with_capacity(services * (600 + endpoints * 120));
    for s in 0..services {
        let host = format!("svc-{s}.default.svc.cluster.local");
        let _ = write!(
            out,
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: svc-{s}\n  namespace: default\nspec:\n  hosts: [\"{host}\"]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports:\n  - number: 8080\n    name: http\n    protocol: HTTP\n  endpoints:\n"
        );
        for e in 0..endpoints {
            let _ = write!(
                out,
                "  - address: 10.{}.{}.{}\n    labels: {{app: svc-{s}, version: v{}}}\n    serviceAccount: svc-{s}\n",
                (s / 250) % 250,
                s % 250,
                e + 1,
                e % subsets.max(1) + 1
            );
        }
        out.push_str("---\n");
        let _ = write!(
            out,
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: svc-{s}\n  namespace: default\nspec:\n  host: {host}\n  trafficPolicy:\n    loadBalancer:\n      simple: LEAST_REQUEST\n  subsets:\n"
        );
        for v in 1..=subsets {
            let _ = write!(out, "  - name: v{v}\n    labels: {{version: v{v}}}\n");
        }
        out.push_str("---\n");
        let _ = write!(
            out,
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: svc-{s}\n  namespace: default\nspec:\n  hosts: [\"{host}\"]\n  http:\n  - match:\n    - headers:\n        end-user:\n          exact: jason\n    route:\n    - destination: {{host: {host}, subset: v1}}\n  - route:\n"
        );
        let weights = split_weights(subsets.max(1));
        for (v, w) in weights.iter().enumerate() {
            let _ = write!(
                out,
                "    - destination: {{host: {host}, subset: v{}}}\n      weight: {w}\n",
                v + 1
            );
        }
        out.push_str("---\n");
    }
    out
}

/// `n` weights adding up to 100.
fn split_weights(n: usize) -> Vec<usize> {
    let base = 100 / n;
    let mut w = vec![base; n];
    w[0] += 100 - base * n;
    w
}

/// One service, `inventory`, on port 7000 with `endpoints` endpoints split across v1 and v2, a
/// DestinationRule with those subsets, and a VirtualService with a header route and a 95/5 split:
/// the hot path of a canary.
pub fn canary_yaml(endpoints: usize) -> String {
    let mut out = String::from(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: inventory, namespace: default}\nspec:\n  hosts: [inventory.default.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{number: 7000, name: grpc, protocol: GRPC}]\n  endpoints:\n",
    );
    for e in 0..endpoints {
        let _ = writeln!(
            out,
            "  - {{address: 10.{}.{}.{}, labels: {{app: inventory, version: v{}}}}}",
            e / 65_536 % 256,
            e / 256 % 256,
            e % 256,
            if e % 20 == 0 { 2 } else { 1 }
        );
    }
    out.push_str(
        "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: inventory, namespace: default}\nspec:\n  host: inventory\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: inventory, namespace: default}\nspec:\n  hosts: [inventory]\n  http:\n  - match: [{headers: {end-user: {exact: jason}}}]\n    route: [{destination: {host: inventory, subset: v2}}]\n  - route:\n    - {destination: {host: inventory, subset: v1}, weight: 95}\n    - {destination: {host: inventory, subset: v2}, weight: 5}\n",
    );
    out
}

/// Everything one request's pick needs, built from [`canary_yaml`]: the snapshot and a balancer
/// per cluster, as the client keeps them.
pub struct PickFixture {
    /// The snapshot.
    pub snapshot: std::sync::Arc<mesh_core::model::Snapshot>,
    /// Balancers by cluster.
    pub balancers:
        std::collections::HashMap<mesh_core::model::ClusterName, mesh_core::balance::Balancer>,
}

impl PickFixture {
    /// Builds the fixture for `endpoints` endpoints.
    pub fn new(endpoints: usize) -> Self {
        use mesh_core::balance::{Balancer, ClientLocality, StatsRegistry};
        let ctx = mesh_core::BuildContext::default();
        let snapshot = mesh_core::istio::load_str("canary.yaml", &canary_yaml(endpoints), &ctx)
            .expect("valid canary config");
        let registry = StatsRegistry::new();
        let now = tokio::time::Instant::now();
        let balancers = snapshot
            .clusters
            .iter()
            .map(|(name, cluster)| {
                let state = registry.cluster(name, now);
                let balancer = Balancer::new(cluster, &state, &ClientLocality::default(), now)
                    .expect("balancer");
                (name.clone(), balancer)
            })
            .collect();
        Self {
            snapshot: std::sync::Arc::new(snapshot),
            balancers,
        }
    }

    /// One request's pick: route match, weighted cluster, endpoint. Returns the endpoint index.
    pub fn pick<R: rand::Rng>(
        &self,
        headers: &[(String, String)],
        rng: &mut R,
        now: tokio::time::Instant,
    ) -> Option<usize> {
        use mesh_core::balance::{PickContext, WeightedPick};
        use mesh_core::model::RouteAction;
        use mesh_core::routing::{RequestInfo, select};
        let request = RequestInfo {
            method: "POST",
            authority: "inventory:7000",
            path_and_query: "/shop.Inventory/Reserve",
            port: 7000,
            headers,
        };
        let selected = select(&self.snapshot, &request).ok()?;
        let RouteAction::Forward(destinations) = &selected.route.action else {
            return None;
        };
        let destination = WeightedPick::new(destinations).pick(rng)?;
        self.balancers
            .get(&destination.cluster)?
            .pick(&PickContext::new(now), rng)
    }
}

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
            priority: 0,
            locality_weight: None,
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
        locality_weighted_lb: false,
        tls: UpstreamTls::istio_mutual(),
        connection_pool: ConnectionPool::default(),
        outlier: None,
        retry_budget: RetryBudget::default(),
        slow_start: None,
    })
}

/// `cluster` as a control plane with priorities and locality weights sends it: endpoints spread
/// round-robin over `localities` localities (`r/z<k>/s`, locality `k` weighing `k + 1`) and, in
/// contiguous halves, over priorities 0 and 1; locality-weighted balancing on.
pub fn zoned(cluster: &Cluster, localities: usize) -> Arc<Cluster> {
    let n = cluster.endpoints.len();
    let endpoints: Vec<Endpoint> = cluster
        .endpoints
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let k = i % localities.max(1);
            Endpoint {
                locality: Locality::parse(&format!("r/z{k}/s")),
                locality_weight: u32::try_from(k + 1).ok(),
                priority: u32::from(i >= n / 2),
                ..e.clone()
            }
        })
        .collect();
    Arc::new(Cluster {
        endpoints: endpoints.into(),
        locality_weighted_lb: true,
        ..cluster.clone()
    })
}

/// A finished `reporter="source"` gRPC record as `MeshClient` fills one in for the sidecar-tax
/// call (`helloworld.Greeter/SayHello` to `greeter.default`, mutual TLS, the server's peer
/// metadata received): the record-path benchmark's and allocation test's input.
pub fn client_record() -> mesh_core::telemetry::RequestRecord {
    use mesh_core::Workload;
    use mesh_core::telemetry::{PeerWorkload, Reporter, RequestProtocol, RequestRecord};
    let workload = |name: &str| {
        PeerWorkload::from_workload(
            &Workload::new("default", name).labels([("app", name), ("version", "v1")]),
            "Kubernetes",
        )
    };
    let mut r = RequestRecord::new(Reporter::Source, std::time::SystemTime::now());
    r.method = "POST".into();
    r.path = "/helloworld.Greeter/SayHello".into();
    r.authority = "greeter.default.svc.cluster.local:50051".into();
    r.protocol = RequestProtocol::Grpc;
    r.source = workload("client");
    r.request_id = Some("5f1b7a6e-0c3d-4a8e-9b2f-6d4c3b2a1908".into());
    r.trace_id = Some("0af7651916cd43dd8448eb211c80319c".into());
    r.destination_service = Some(ServiceKey {
        host: "greeter.default.svc.cluster.local".into(),
        namespace: "default".into(),
        port: 50051,
        subset: None,
    });
    r.upstream_cluster = Some(ClusterName::outbound(
        "greeter.default.svc.cluster.local",
        50051,
        None,
    ));
    r.response_code = Some(200);
    r.grpc_status = Some(0);
    r.destination_principal = Some("spiffe://cluster.local/ns/default/sa/greeter".into());
    r.destination = workload("greeter");
    r.peer_address = Some("127.0.0.1:50051".into());
    r.duration = std::time::Duration::from_micros(250);
    r.request_bytes = 1029;
    r.response_bytes = 1029;
    r
}

#[cfg(test)]
mod tests {
    #[test]
    fn weights_total_100() {
        for n in 1..10 {
            assert_eq!(super::split_weights(n).iter().sum::<usize>(), 100);
        }
    }
}
